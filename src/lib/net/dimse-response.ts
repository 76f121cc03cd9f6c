/**
 * DIMSE response command sets (PS3.7 9.3, E.1) as the requesting side reads them: Implicit VR
 * Little Endian, group 0000. scp/command.ts reads requests; this reads the fields a response
 * adds (status, error comment, the message it answers).
 */

export interface DimseResponse {
  commandField: number;
  messageIdBeingRespondedTo: number;
  status: number;
  errorComment?: string;
  affectedSopClassUid?: string;
  affectedSopInstanceUid?: string;
  hasDataset: boolean;
}

import { commandText as text, forEachCommandElement } from './scp/command.js';

/** Decode a response command set; undefined when the bytes are not one (malformed, no status). */
export function parseResponse(buf: Buffer): DimseResponse | undefined {
  let commandField: number | undefined;
  let messageId: number | undefined;
  let status: number | undefined;
  let dataSetType: number | undefined;
  const out: Partial<DimseResponse> = {};
  try {
    forEachCommandElement(buf, visit);
  } catch {
    return undefined; // not a command set
  }
  function visit(element: number, start: number, end: number): void {
    const us = (): number | undefined => (end - start === 2 ? buf.readUInt16LE(start) : undefined);
    switch (element) {
      case 0x0002:
        out.affectedSopClassUid = text(buf, start, end);
        break;
      case 0x0100:
        commandField = us();
        break;
      case 0x0120:
        messageId = us();
        break;
      case 0x0800:
        dataSetType = us();
        break;
      case 0x0900:
        status = us();
        break;
      case 0x0902:
        out.errorComment = text(buf, start, end) || undefined;
        break;
      case 0x1000:
        out.affectedSopInstanceUid = text(buf, start, end);
        break;
      default:
        break; // offending element, error ID, counts...: not needed here
    }
  }
  if (commandField === undefined || messageId === undefined || status === undefined || (commandField & 0x8000) === 0) return undefined;
  return { ...out, commandField, messageIdBeingRespondedTo: messageId, status, hasDataset: dataSetType !== undefined && dataSetType !== 0x0101 };
}
