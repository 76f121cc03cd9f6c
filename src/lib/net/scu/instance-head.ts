/**
 * What a C-STORE needs to know of a DICOM file, read by a scanner that does nothing else:
 * the transfer syntax and where the data set starts (File Meta), the SOP Class, SOP Instance
 * and Study Instance UIDs, and the file's size. Element headers are walked up to the
 * top-level pixel data (as the full reader's stopBeforePixels does), values are skipped by
 * their length and only the three UIDs are decoded.
 *
 * Why not the DICOM core's reader (src/lib/dicom/read.ts): on the send path it cost ~9 ms
 * of imports per run and ~35 us of parsing per file, and for an implicit VR file its element
 * parser asks the data dictionary for every VR, which loads dcmjs (~60 ms per run). Skipping
 * an element needs no VR in implicit VR, and C-STORE needs no value but three UIDs.
 *
 * The scanner only answers for the plain cases: preamble + "DICM" + File Meta, a data set
 * in the transfer syntax the meta names (not deflated), well-formed elements, and clean
 * UIDs. Anything else (no meta, a mislabelled encoding, a deflated data set, a malformed
 * element, an odd or missing UID) returns undefined, and the caller asks the full reader,
 * whose answer and error wording stay the reference. Nothing here throws for bad content.
 */
import { readSync } from 'node:fs';
import { encodingOf } from '../../dicom/transfer-syntax.js';
import { KNOWN_VRS, LONG_VRS, vrCode as vrBytesCode } from '../../dicom/vr.js';

export interface InstanceHead {
  transferSyntaxUid: string;
  /** Where the data set starts (after the File Meta group). */
  datasetOffset: number;
  fileSize: number;
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid?: string;
}

/** The tags a C-STORE needs (and their File Meta stand-ins); the core's reader path uses them too. */
export const SOP_CLASS_UID = 0x00080016;
export const SOP_INSTANCE_UID = 0x00080018;
export const STUDY_INSTANCE_UID = 0x0020000d;
export const MEDIA_SOP_CLASS_UID = 0x00020002;
export const MEDIA_SOP_INSTANCE_UID = 0x00020003;
const TRANSFER_SYNTAX_UID = 0x00020010;
/** Top-level elements from here on are pixel data and what follows it: the walk stops. */
const PIXEL_DATA_GROUP_START = 0x7fe00000;
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQUENCE_END = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
/** A UID value longer than this is not clean (64 characters, padded). */
const MAX_UID_BYTES = 66;
/** Nested sequences deeper than this are left to the full reader. */
const MAX_DEPTH = 32;

/**
 * Explicit VRs by their two bytes (first << 8 | second): 1 for a 16-bit length, 2 for the
 * long form with 2 reserved bytes and a 32-bit length (PS3.5 7.1.2), 0 for no VR. A table,
 * not a Set of strings: ~100 element headers per file, no string made for each.
 */
const VR_KIND = new Uint8Array(65536);
const vrCode = (vr: string): number => vrBytesCode(vr.charCodeAt(0), vr.charCodeAt(1));
for (const vr of KNOWN_VRS) VR_KIND[vrCode(vr)] = LONG_VRS.has(vr) ? 2 : 1;
const VR_UI = vrCode('UI');
const VR_UL = vrCode('UL');
const VR_SQ = vrCode('SQ');
const VR_UN = vrCode('UN');

/** Not a plain case: the full reader decides. */
class Unsure extends Error {}

/**
 * Reads of one file through a window into a buffer reused from file to file (the scan is
 * synchronous, and nothing keeps a reference into the buffer after it returns).
 */
class Cursor {
  private start = 0;
  private end = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    private buf: Buffer,
  ) {}

  /** The buffer offset of file bytes [pos, pos + n), reading them when the window lacks them. */
  at(pos: number, n: number): number {
    if (pos >= this.start && pos + n <= this.end) return pos - this.start;
    if (pos + n > this.size) throw new Unsure();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
    // The first read is small: the File Meta and a plain header up to the pixel data fit in
    // 4 KiB, and page-cache copies are dear here (open + 4 KiB read + close: 6 us a file,
    // with 16 KiB: 25 us). A longer header (vendor private groups) is read on in WINDOW blocks.
    const want = Math.min(this.end === 0 ? Math.max(n, FIRST_READ) : this.buf.length, this.size - pos);
    let got = 0;
    while (got < want) {
      const r = readSync(this.fd, this.buf, got, want - got, pos + got);
      if (r === 0) break; // shorter than fstat said: a file being written or cut
      got += r;
    }
    this.start = pos;
    this.end = pos + got;
    if (got < n) throw new Unsure();
    return 0;
  }

  get bytes(): Buffer {
    return this.buf;
  }
}

/** How the data set's elements are laid out. */
interface Layout {
  explicit: boolean;
  littleEndian: boolean;
}

const IMPLICIT_LAYOUT: Layout = { explicit: false, littleEndian: true };
const META_LAYOUT: Layout = { explicit: true, littleEndian: true };

interface ElementHeader {
  tag: number;
  /** The VR's two bytes (vrCode), 0 in implicit VR and for item tags. */
  vr: number;
  /** Value length, UNDEFINED for an undefined length. */
  length: number;
  /** Bytes of the element header. */
  headerLength: number;
}

function readTag(b: Buffer, o: number, le: boolean): number {
  return le ? ((b.readUInt16LE(o) << 16) | b.readUInt16LE(o + 2)) >>> 0 : ((b.readUInt16BE(o) << 16) | b.readUInt16BE(o + 2)) >>> 0;
}

function elementHeader(c: Cursor, pos: number, layout: Layout): ElementHeader {
  let o = c.at(pos, 8);
  const b = c.bytes;
  const le = layout.littleEndian;
  const tag = readTag(b, o, le);
  // Item and delimitation tags have no VR in either encoding.
  if (tag >>> 16 === 0xfffe || !layout.explicit) return { tag, vr: 0, length: le ? b.readUInt32LE(o + 4) : b.readUInt32BE(o + 4), headerLength: 8 };
  const vr = (b[o + 4]! << 8) | b[o + 5]!;
  const kind = VR_KIND[vr];
  if (kind === 1) return { tag, vr, length: le ? b.readUInt16LE(o + 6) : b.readUInt16BE(o + 6), headerLength: 8 };
  if (kind !== 2) throw new Unsure();
  o = c.at(pos, 12);
  return { tag, vr, length: le ? c.bytes.readUInt32LE(o + 8) : c.bytes.readUInt32BE(o + 8), headerLength: 12 };
}

/** The UID value of an element: trailing NUL/space padding removed; anything but digits and dots is not clean. */
function uidValue(c: Cursor, pos: number, length: number): string {
  if (length === 0 || length > MAX_UID_BYTES) throw new Unsure();
  const o = c.at(pos, length);
  let end = o + length;
  const b = c.bytes;
  while (end > o && (b[end - 1] === 0 || b[end - 1] === 0x20)) end--;
  for (let i = o; i < end; i++) {
    const ch = b[i]!;
    if (ch !== 0x2e && (ch < 0x30 || ch > 0x39)) throw new Unsure();
  }
  if (end === o) throw new Unsure();
  return b.toString('latin1', o, end);
}

/**
 * Skip an undefined-length value from `pos` (its first item): items up to the sequence
 * delimiter. Returns the position after it. Item contents are elements in `layout`
 * (an explicit VR UN of undefined length holds implicit VR little endian, PS3.5 6.2.2).
 */
function skipSequence(c: Cursor, pos: number, layout: Layout, depth: number): number {
  if (depth > MAX_DEPTH) throw new Unsure();
  for (;;) {
    const o = c.at(pos, 8);
    const tag = readTag(c.bytes, o, layout.littleEndian);
    const length = layout.littleEndian ? c.bytes.readUInt32LE(o + 4) : c.bytes.readUInt32BE(o + 4);
    pos += 8;
    if (tag === SEQUENCE_END) return pos;
    if (tag !== ITEM) throw new Unsure();
    pos = length === UNDEFINED ? skipElements(c, pos, layout, depth + 1) : pos + length;
    if (pos > c.size) throw new Unsure();
  }
}

/** Skip the elements of an undefined-length item up to its delimiter; returns the position after it. */
function skipElements(c: Cursor, pos: number, layout: Layout, depth: number): number {
  for (;;) {
    const h = elementHeader(c, pos, layout);
    pos += h.headerLength;
    if (h.tag === ITEM_END) return pos;
    if (h.tag >>> 16 === 0xfffe) throw new Unsure();
    pos = skipValue(c, pos, h, layout, depth);
  }
}

function skipValue(c: Cursor, pos: number, h: ElementHeader, layout: Layout, depth: number): number {
  if (h.length !== UNDEFINED) {
    if (pos + h.length > c.size) throw new Unsure();
    return pos + h.length;
  }
  if (layout.explicit && h.vr !== VR_SQ && h.vr !== VR_UN) throw new Unsure();
  // UN of undefined length holds implicit VR little endian; inside big endian data, leave it to the full reader.
  if (h.vr === VR_UN && !layout.littleEndian) throw new Unsure();
  const inner = h.vr === VR_UN ? IMPLICIT_LAYOUT : layout;
  return skipSequence(c, pos, inner, depth + 1);
}

/** The File Meta: its transfer syntax, media SOP UIDs, and where it ends. */
function readMeta(c: Cursor): { ts: string; end: number; mediaClass?: string; mediaInstance?: string } {
  const o = c.at(128, 4);
  if (c.bytes.toString('latin1', o, o + 4) !== 'DICM') throw new Unsure();
  const layout = META_LAYOUT;
  let pos = 132;
  let ts: string | undefined;
  let mediaClass: string | undefined;
  let mediaInstance: string | undefined;
  let groupEnd: number | undefined;
  while (pos + 8 <= c.size) {
    const o = c.at(pos, 2);
    if (c.bytes.readUInt16LE(o) !== 0x0002) break;
    const h = elementHeader(c, pos, layout);
    if (h.length === UNDEFINED) throw new Unsure();
    const value = pos + h.headerLength;
    if ((h.tag === TRANSFER_SYNTAX_UID || h.tag === MEDIA_SOP_CLASS_UID || h.tag === MEDIA_SOP_INSTANCE_UID) && h.vr !== VR_UI) throw new Unsure();
    if (h.tag === 0x00020000) {
      if (h.vr !== VR_UL || h.length !== 4) throw new Unsure();
      groupEnd = value + 4 + c.bytes.readUInt32LE(c.at(value, 4));
    } else if (h.tag === TRANSFER_SYNTAX_UID) ts = uidValue(c, value, h.length);
    else if (h.tag === MEDIA_SOP_CLASS_UID) mediaClass = optionalUid(c, value, h.length);
    else if (h.tag === MEDIA_SOP_INSTANCE_UID) mediaInstance = optionalUid(c, value, h.length);
    pos = value + h.length;
    if (pos > c.size) throw new Unsure();
  }
  // Where the elements end and where the group length says the meta ends must agree: the
  // data set's first byte is what C-STORE sends first, and a disagreement is the full reader's call.
  if (!ts || (groupEnd !== undefined && groupEnd !== pos)) throw new Unsure();
  return { ts, end: pos, mediaClass, mediaInstance };
}

/** A media SOP UID is only a fallback: an unclean one is remembered as absent-but-unclean. */
function optionalUid(c: Cursor, pos: number, length: number): string | undefined {
  try {
    return uidValue(c, pos, length);
  } catch (err) {
    if (err instanceof Unsure) return '';
    throw err;
  }
}

/** Whether the first data set element's bytes agree with the layout the meta names. */
function layoutAgrees(c: Cursor, pos: number, layout: Layout): boolean {
  if (pos + 8 > c.size) return true; // an empty data set: nothing to disagree
  const o = c.at(pos, 8);
  const looksExplicit = VR_KIND[(c.bytes[o + 4]! << 8) | c.bytes[o + 5]!] !== 0;
  return looksExplicit === layout.explicit;
}

let scratch: Buffer | undefined;
/** Reads after the first one, for headers longer than FIRST_READ. */
const WINDOW = 16 * 1024;
const FIRST_READ = 4 * 1024;

/**
 * Scan an open file (fd) of `size` bytes. Undefined when the file is not a plain case
 * (see the module comment): ask the full reader then.
 */
export function scanInstanceHead(fd: number, size: number): InstanceHead | undefined {
  scratch ??= Buffer.allocUnsafe(WINDOW);
  const c = new Cursor(fd, size, scratch);
  try {
    const meta = readMeta(c);
    const layout: Layout & { deflated: boolean } = encodingOf(meta.ts);
    if (layout.deflated) return undefined;
    if (!layoutAgrees(c, meta.end, layout)) return undefined;
    let sopClassUid: string | undefined;
    let sopInstanceUid: string | undefined;
    let studyInstanceUid: string | undefined;
    let pos = meta.end;
    let last = -1;
    while (pos < size) {
      const h = elementHeader(c, pos, layout);
      // Out of order or an item at the top level: not plain.
      if (h.tag <= last || h.tag >>> 16 === 0xfffe) return undefined;
      last = h.tag;
      if (h.tag >= PIXEL_DATA_GROUP_START) break;
      const value = pos + h.headerLength;
      if (h.tag === SOP_CLASS_UID || h.tag === SOP_INSTANCE_UID || h.tag === STUDY_INSTANCE_UID) {
        // Another VR than UI (UN, say) is a value the full reader does not read as a string.
        if (layout.explicit && h.vr !== VR_UI) return undefined;
        const uid = uidValue(c, value, h.length);
        if (h.tag === SOP_CLASS_UID) sopClassUid = uid;
        else if (h.tag === SOP_INSTANCE_UID) sopInstanceUid = uid;
        else studyInstanceUid = uid;
      }
      pos = skipValue(c, value, h, layout, 0);
    }
    // As the full reader: the data set's UIDs, else the File Meta's.
    sopClassUid ??= meta.mediaClass;
    sopInstanceUid ??= meta.mediaInstance;
    if (!sopClassUid || !sopInstanceUid) return undefined;
    return { transferSyntaxUid: meta.ts, datasetOffset: meta.end, fileSize: size, sopClassUid, sopInstanceUid, studyInstanceUid };
  } catch (err) {
    if (err instanceof Unsure) return undefined;
    throw err;
  }
}
