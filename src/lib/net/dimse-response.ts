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

function text(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end).replace(/[\0 ]+$/, '').trim();
}

/** Decode a response command set; undefined when the bytes are not one (malformed, no status). */
export function parseResponse(buf: Buffer): DimseResponse | undefined {
  let commandField: number | undefined;
  let messageId: number | undefined;
  let status: number | undefined;
  let dataSetType: number | undefined;
  const out: Partial<DimseResponse> = {};
  let off = 0;
  while (off + 8 <= buf.length) {
    const group = buf.readUInt16LE(off);
    const element = buf.readUInt16LE(off + 2);
    const length = buf.readUInt32LE(off + 4);
    const start = off + 8;
    const end = start + length;
    if (group !== 0x0000 || length === 0xffffffff || end > buf.length) return undefined;
    const us = (): number | undefined => (length === 2 ? buf.readUInt16LE(start) : undefined);
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
    off = end;
  }
  if (off !== buf.length || commandField === undefined || messageId === undefined || status === undefined || (commandField & 0x8000) === 0) return undefined;
  return { ...out, commandField, messageIdBeingRespondedTo: messageId, status, hasDataset: dataSetType !== undefined && dataSetType !== 0x0101 };
}
