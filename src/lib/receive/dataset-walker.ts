/**
 * Walks the structure of a data set while its bytes stream in, without holding them: element
 * headers are read, values are skipped (a few top-level values are captured), undefined-length
 * sequences, items and encapsulated pixel data are followed to their delimiters.
 *
 * The receiver uses it to refuse a data set whose bytes end early (the sender's last PDV came
 * but the data set stops inside an element, an item or a sequence) and to learn the Study,
 * Series and SOP Instance UIDs for the archive path, at the cost of a few comparisons per
 * element and no second read of the file. It checks structure, not content: a data set cut
 * exactly at an element boundary cannot be told from a short one (PS3.5 has no end marker).
 *
 * Encodings (PS3.5 7.1): explicit or implicit VR, little or big endian. Items and delimiters
 * (FFFE,xxxx) always have a 4-byte length. An explicit VR UN element of undefined length holds
 * a sequence in Implicit VR Little Endian (PS3.5 6.2.2).
 */
import { formatTag } from '../dicom/tags.js';
import { isLongVrBytes, vrCode as vrBytesCode } from '../dicom/vr.js';

export interface WalkerEncoding {
  explicitVr: boolean;
  littleEndian: boolean;
}

export interface WalkResult {
  /** Undefined when the structure is whole. */
  problem?: string;
  /** Captured top-level values by tag (trailing NUL/space removed). */
  values: Map<number, string>;
  /** Data set bytes walked. */
  bytes: number;
}

/** A VR as its two bytes in one number ('SQ' = 0x5351): no string per element on the hot path. */
function vrCode(vr: string): number {
  return vrBytesCode(vr.charCodeAt(0), vr.charCodeAt(1));
}
const VR_SQ = vrCode('SQ');
const VR_UN = vrCode('UN');
const VR_OB = vrCode('OB');
const VR_OW = vrCode('OW');

function isUpper(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
/** Longest value captured; UIDs are at most 64 bytes. */
const MAX_CAPTURE = 1024;

interface Context {
  kind: 'sequence' | 'item';
  explicitVr: boolean;
  littleEndian: boolean;
  tag: number;
  offset: number;
}

type State = 'header' | 'skip' | 'capture';

export class DatasetWalker {
  private pos = 0;
  private state: State = 'header';
  private readonly head = Buffer.alloc(12);
  private headFill = 0;
  private headStart = 0;
  private skip = 0;
  private readonly stack: Context[] = [];
  private problem?: string;
  // The element whose value is being skipped or captured (fields, not an object: no garbage).
  private elTag = 0;
  private elOffset = 0;
  private elLength = 0;
  private captureBuf: Buffer = Buffer.alloc(0);
  private captureFill = 0;
  private readonly values = new Map<number, string>();
  private readonly capture: Set<number>;

  constructor(private readonly encoding: WalkerEncoding, capture: number[] = []) {
    this.capture = new Set(capture);
  }

  /** Feed the next bytes of the data set. Never throws; the first problem is kept. */
  feed(chunk: Buffer): void {
    if (this.problem !== undefined) {
      this.pos += chunk.length;
      return;
    }
    let off = 0;
    const len = chunk.length;
    while (off < len && this.problem === undefined) {
      if (this.state === 'skip') {
        const n = Math.min(this.skip, len - off);
        this.skip -= n;
        off += n;
        this.pos += n;
        if (this.skip === 0) this.state = 'header';
      } else if (this.state === 'capture') {
        const n = Math.min(this.captureBuf.length - this.captureFill, len - off);
        chunk.copy(this.captureBuf, this.captureFill, off, off + n);
        this.captureFill += n;
        off += n;
        this.pos += n;
        if (this.captureFill === this.captureBuf.length) {
          this.values.set(this.elTag, this.captureBuf.toString('latin1').replace(/[\0 ]+$/, '').trim());
          this.state = 'header';
        }
      } else if (this.headFill === 0 && len - off >= 12) {
        // Fast path: the whole header is in this chunk; read it where it is.
        const n = this.headerAt(chunk, off);
        off += n;
        this.pos += n;
      } else {
        if (this.headFill === 0) this.headStart = this.pos;
        const need = this.headerLength();
        const n = Math.min(need - this.headFill, len - off);
        chunk.copy(this.head, this.headFill, off, off + n);
        this.headFill += n;
        off += n;
        this.pos += n;
        // The first 8 bytes tell whether an explicit VR header has 4 more.
        if (this.headFill === need && this.headerLength() === need) {
          this.headFill = 0;
          this.headerAt(this.head, 0);
        }
      }
    }
    if (off < len) this.pos += len - off;
  }

  /** The data set is over: say whether it was whole. */
  finish(): WalkResult {
    let problem = this.problem;
    if (problem === undefined) {
      if (this.pos === 0) {
        problem = 'the data set is empty';
      } else if (this.state === 'header' && this.headFill > 0) {
        problem = `the data set ends inside an element header at byte ${this.headStart} (${this.headFill} of ${this.headerLength()} header bytes)`;
      } else if (this.state === 'skip' || this.state === 'capture') {
        const missing = this.state === 'skip' ? this.skip : this.captureBuf.length - this.captureFill;
        problem = `the data set ends inside element ${formatTag(this.elTag)} at byte ${this.elOffset}: ${missing} of ${this.elLength} value bytes missing`;
      } else if (this.stack.length > 0) {
        const open = this.stack[this.stack.length - 1] as Context;
        problem = `the data set ends inside ${open.kind === 'item' ? 'an item of ' : ''}sequence ${formatTag(open.tag)} opened at byte ${open.offset} (no delimiter)`;
      }
    }
    return { problem, values: this.values, bytes: this.pos };
  }

  private get mode(): { explicitVr: boolean; littleEndian: boolean } {
    return this.stack.length > 0 ? (this.stack[this.stack.length - 1] as Context) : this.encoding;
  }

  /** 8 until the first 8 bytes are known, then 8 or 12. */
  private headerLength(): number {
    if (this.headFill < 8 || !this.mode.explicitVr) return 8;
    const group = this.mode.littleEndian ? this.head.readUInt16LE(0) : this.head.readUInt16BE(0);
    if (group === 0xfffe) return 8;
    return isLongVrBytes(this.head[4] as number, this.head[5] as number) ? 12 : 8;
  }

  private fail(message: string): void {
    this.problem = message;
  }

  /**
   * Read the element header at buf[at] (at least 12 bytes there, or a complete header in
   * this.head) and act on it. Returns the header's length. The header starts at stream
   * offset this.pos (fast path) or this.headStart (assembled).
   */
  private headerAt(h: Buffer, at: number): number {
    const { explicitVr, littleEndian } = this.mode;
    const offset = h === this.head ? this.headStart : this.pos;
    const group = littleEndian ? h.readUInt16LE(at) : h.readUInt16BE(at);
    const elem = littleEndian ? h.readUInt16LE(at + 2) : h.readUInt16BE(at + 2);
    const tag = ((group << 16) | elem) >>> 0;
    let vr = 0;
    let length: number;
    let headerLength = 8;
    if (group === 0xfffe || !explicitVr) {
      length = littleEndian ? h.readUInt32LE(at + 4) : h.readUInt32BE(at + 4);
    } else {
      const v0 = h[at + 4] as number;
      const v1 = h[at + 5] as number;
      if (!isUpper(v0) || !isUpper(v1)) {
        this.fail(`bad VR bytes 0x${h.toString('hex', at + 4, at + 6)} in element ${formatTag(tag)} at byte ${offset}`);
        return 8;
      }
      vr = vrBytesCode(v0, v1);
      if (isLongVrBytes(v0, v1)) {
        length = littleEndian ? h.readUInt32LE(at + 8) : h.readUInt32BE(at + 8);
        headerLength = 12;
      } else {
        length = littleEndian ? h.readUInt16LE(at + 6) : h.readUInt16BE(at + 6);
      }
    }
    this.onElement(tag, vr, length, offset, explicitVr, littleEndian);
    return headerLength;
  }

  private onElement(tag: number, vr: number, length: number, offset: number, explicitVr: boolean, littleEndian: boolean): void {
    const top = this.stack[this.stack.length - 1];

    if (top?.kind === 'sequence') {
      if (tag === ITEM) {
        if (length === UNDEFINED) this.stack.push({ kind: 'item', explicitVr, littleEndian, tag: top.tag, offset });
        else this.skipValue(tag, offset, length);
      } else if (tag === SEQUENCE_DELIMITER) {
        this.stack.pop();
      } else {
        this.fail(`element ${formatTag(tag)} at byte ${offset} inside sequence ${formatTag(top.tag)} where an item or a sequence delimiter belongs`);
      }
      return;
    }
    if (tag === ITEM_DELIMITER) {
      if (top?.kind === 'item') this.stack.pop();
      else this.fail(`item delimiter at byte ${offset} outside an item`);
      return;
    }
    if (tag === ITEM || tag === SEQUENCE_DELIMITER) {
      return this.fail(`${tag === ITEM ? 'item' : 'sequence delimiter'} tag at byte ${offset} outside a sequence`);
    }
    if (length === UNDEFINED) {
      if (!explicitVr || vr === VR_SQ) {
        this.stack.push({ kind: 'sequence', explicitVr, littleEndian, tag, offset });
      } else if (vr === VR_UN) {
        this.stack.push({ kind: 'sequence', explicitVr: false, littleEndian: true, tag, offset });
      } else if (vr === VR_OB || vr === VR_OW) {
        // Encapsulated pixel data: fragments as items, then a sequence delimiter.
        this.stack.push({ kind: 'sequence', explicitVr, littleEndian, tag, offset });
      } else {
        this.fail(`element ${formatTag(tag)} at byte ${offset} has VR ${String.fromCharCode(vr >> 8, vr & 0xff)} with undefined length`);
      }
      return;
    }
    if (this.stack.length === 0 && this.capture.has(tag) && length <= MAX_CAPTURE) {
      this.elTag = tag;
      this.elOffset = offset;
      this.elLength = length;
      if (length === 0) {
        this.values.set(tag, '');
        return;
      }
      this.captureBuf = Buffer.alloc(length);
      this.captureFill = 0;
      this.state = 'capture';
      return;
    }
    this.skipValue(tag, offset, length);
  }

  private skipValue(tag: number, offset: number, length: number): void {
    this.elTag = tag;
    this.elOffset = offset;
    this.elLength = length;
    if (length === 0) return;
    this.skip = length;
    this.state = 'skip';
  }
}
