/**
 * DIMSE command sets (PS3.7 9.3, E.1): always Implicit VR Little Endian, group 0000 only.
 *
 * The receiver decodes every C-STORE-RQ and encodes every C-STORE-RSP; doing that through
 * dcmjs (naturalize, denaturalize, write a buffer stream) cost more per instance than the
 * file write itself. A command set is a handful of fixed elements, so it is read and written
 * here directly.
 */

export const CommandField = {
  CStoreRq: 0x0001,
  CStoreRsp: 0x8001,
  CGetRq: 0x0010,
  CFindRq: 0x0020,
  CMoveRq: 0x0021,
  CEchoRq: 0x0030,
  CEchoRsp: 0x8030,
  CCancelRq: 0x0fff,
} as const;

/** (0000,0800) value meaning "no data set follows". */
export const NO_DATASET = 0x0101;

export const Status = {
  Success: 0x0000,
  /** Refused: out of resources (disk full). */
  OutOfResources: 0xa700,
  /** Error: data set does not match SOP class (or the command's SOP instance). */
  DataSetMismatch: 0xa900,
  /** Error: cannot understand (truncated or malformed data set, unusable UIDs). */
  CannotUnderstand: 0xc000,
  /** Failure: processing failure (the site cannot be written, ...). */
  ProcessingFailure: 0x0110,
  /** Failure: SOP class not supported. */
  SopClassNotSupported: 0x0122,
  /** Failure: unrecognized operation. */
  UnrecognizedOperation: 0x0211,
} as const;

export interface DimseCommand {
  commandField: number;
  messageId: number;
  affectedSopClassUid?: string;
  affectedSopInstanceUid?: string;
  priority?: number;
  hasDataset: boolean;
  moveOriginatorAet?: string;
  moveOriginatorMessageId?: number;
}

export class CommandError extends Error {}

/** Strip the padding of a UI/AE/LO value (NUL or space) and surrounding blanks. */
export function commandText(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end).replace(/[\0 ]+$/, '').trim();
}

/**
 * Visit the elements of a command set in order (requests here, responses in
 * ../dimse-response.ts). Throws CommandError when the bytes are not a command set: an
 * element outside group 0000, a length that overruns, stray bytes after the last element.
 */
export function forEachCommandElement(buf: Buffer, visit: (element: number, start: number, end: number) => void): void {
  let off = 0;
  while (off + 8 <= buf.length) {
    const group = buf.readUInt16LE(off);
    const element = buf.readUInt16LE(off + 2);
    const length = buf.readUInt32LE(off + 4);
    const start = off + 8;
    const end = start + length;
    if (group !== 0x0000) throw new CommandError(`command set holds element (${hex(group)},${hex(element)}) outside group 0000`);
    if (length === 0xffffffff || end > buf.length) {
      throw new CommandError(`command element (0000,${hex(element)}) length ${length} overruns the command set (${buf.length} bytes)`);
    }
    visit(element, start, end);
    off = end;
  }
  if (off !== buf.length) throw new CommandError(`command set ends inside an element header (${buf.length - off} stray bytes)`);
}

/** Decode a command set. Throws CommandError when the bytes are not one. */
export function parseCommand(buf: Buffer): DimseCommand {
  let commandField: number | undefined;
  let messageId: number | undefined;
  let dataSetType: number | undefined;
  const cmd: Partial<DimseCommand> = {};
  const text = commandText;
  forEachCommandElement(buf, (element, start, end) => {
    const us = (): number => (end - start >= 2 ? buf.readUInt16LE(start) : 0);
    switch (element) {
      case 0x0002:
        cmd.affectedSopClassUid = text(buf, start, end);
        break;
      case 0x0100:
        commandField = us();
        break;
      case 0x0110:
        messageId = us();
        break;
      case 0x0700:
        cmd.priority = us();
        break;
      case 0x0800:
        dataSetType = us();
        break;
      case 0x1000:
        cmd.affectedSopInstanceUid = text(buf, start, end);
        break;
      case 0x1030:
        cmd.moveOriginatorAet = text(buf, start, end);
        break;
      case 0x1031:
        cmd.moveOriginatorMessageId = us();
        break;
      default:
        break;
    }
  });
  if (commandField === undefined) throw new CommandError('command set without CommandField (0000,0100)');
  if (dataSetType === undefined) throw new CommandError('command set without CommandDataSetType (0000,0800)');
  return {
    ...cmd,
    commandField,
    messageId: messageId ?? 0,
    hasDataset: dataSetType !== NO_DATASET,
  };
}

function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

type CommandValue = { tag: number; kind: 'US'; value: number } | { tag: number; kind: 'UI' | 'LO'; value: string };

/** Encode a command set (elements in ascending tag order, group length first). */
export function encodeCommand(values: CommandValue[]): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (const v of [...values].sort((a, b) => a.tag - b.tag)) {
    let value: Buffer;
    if (v.kind === 'US') {
      value = Buffer.alloc(2);
      value.writeUInt16LE(v.value & 0xffff);
    } else {
      const s = v.kind === 'LO' ? v.value.replace(/[\\\r\n]/g, ' ').slice(0, 64) : v.value;
      const padded = s.length % 2 === 1 ? s + (v.kind === 'UI' ? '\0' : ' ') : s;
      value = Buffer.from(padded, 'latin1');
    }
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0x0000, 0);
    head.writeUInt16LE(v.tag & 0xffff, 2);
    head.writeUInt32LE(value.length, 4);
    parts.push(head, value);
    total += 8 + value.length;
  }
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(0x00000000, 0);
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(total, 8);
  return Buffer.concat([groupLength, ...parts], 12 + total);
}

/** The response to a request: command field | 0x8000, no data set, status, optional comment. */
export function encodeResponse(
  request: DimseCommand,
  status: number,
  errorComment?: string,
): Buffer {
  const values: CommandValue[] = [
    { tag: 0x0100, kind: 'US', value: request.commandField | 0x8000 },
    { tag: 0x0120, kind: 'US', value: request.messageId },
    { tag: 0x0800, kind: 'US', value: NO_DATASET },
    { tag: 0x0900, kind: 'US', value: status },
  ];
  if (request.affectedSopClassUid) values.push({ tag: 0x0002, kind: 'UI', value: request.affectedSopClassUid });
  if (request.affectedSopInstanceUid) values.push({ tag: 0x1000, kind: 'UI', value: request.affectedSopInstanceUid });
  if (errorComment && status !== Status.Success) values.push({ tag: 0x0902, kind: 'LO', value: errorComment });
  return encodeCommand(values);
}

/** One P-DATA-TF PDU holding one PDV (command or data set, last fragment). */
export function encodePDataTf(pcId: number, value: Buffer, isCommand: boolean, isLast = true): Buffer {
  const out = Buffer.allocUnsafe(12 + value.length);
  out.writeUInt8(0x04, 0);
  out.writeUInt8(0, 1);
  out.writeUInt32BE(6 + value.length, 2);
  out.writeUInt32BE(2 + value.length, 6);
  out.writeUInt8(pcId, 10);
  out.writeUInt8((isCommand ? 1 : 0) | (isLast ? 2 : 0), 11);
  value.copy(out, 12);
  return out;
}
