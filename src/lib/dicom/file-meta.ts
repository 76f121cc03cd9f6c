/**
 * The head of a Part 10 file (PS3.10 7.1): 128-byte preamble, "DICM", and the File Meta
 * Information group in Explicit VR Little Endian. The receiver builds it from the C-STORE
 * request and the accepted presentation context (the data set bytes follow exactly as the
 * sender sent them); fiona-synth from the instance it writes.
 */

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  implementationClassUid: string;
  implementationVersionName: string;
  /** The calling AE title: who sent it (0002,0016). */
  sourceAet?: string;
}

function element(elem: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(0x0002, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** A string value padded to even length (UI with NUL, others with space). */
function padded(value: string, vr: string): Buffer {
  const s = value.length % 2 === 1 ? value + (vr === 'UI' ? '\0' : ' ') : value;
  return Buffer.from(s, 'latin1');
}

export function buildFileHead(f: FileMetaFields): Buffer {
  const elements = [
    element(0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 'UI', padded(f.sopClassUid, 'UI')),
    element(0x0003, 'UI', padded(f.sopInstanceUid, 'UI')),
    element(0x0010, 'UI', padded(f.transferSyntaxUid, 'UI')),
    element(0x0012, 'UI', padded(f.implementationClassUid, 'UI')),
    element(0x0013, 'SH', padded(f.implementationVersionName.slice(0, 16), 'SH')),
  ];
  if (f.sourceAet) elements.push(element(0x0016, 'AE', padded(f.sourceAet.slice(0, 16), 'AE')));
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, element(0x0000, 'UL', groupLength), body]);
}
