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

/** VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

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

export function formatTag(tag: number): string {
  const g = (tag >>> 16).toString(16).toUpperCase().padStart(4, '0');
  const e = (tag & 0xffff).toString(16).toUpperCase().padStart(4, '0');
  return `(${g},${e})`;
}

export class DatasetWalker {
  private pos = 0;
  private state: State = 'header';
  private readonly head = Buffer.alloc(12);
  private headFill = 0;
  private headStart = 0;
  private skip = 0;
  private readonly stack: Context[] = [];
  private problem?: string;
  private element = { tag: 0, offset: 0, length: 0 };
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
          this.values.set(this.element.tag, this.captureBuf.toString('latin1').replace(/[\0 ]+$/, '').trim());
          this.state = 'header';
        }
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
          this.onHeader();
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
        problem = `the data set ends inside element ${formatTag(this.element.tag)} at byte ${this.element.offset}: ${missing} of ${this.element.length} value bytes missing`;
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
    return LONG_VRS.has(this.head.toString('latin1', 4, 6)) ? 12 : 8;
  }

  private fail(message: string): void {
    this.problem = message;
  }

  private onHeader(): void {
    const { explicitVr, littleEndian } = this.mode;
    const h = this.head;
    const group = littleEndian ? h.readUInt16LE(0) : h.readUInt16BE(0);
    const elem = littleEndian ? h.readUInt16LE(2) : h.readUInt16BE(2);
    const tag = ((group << 16) | elem) >>> 0;
    const offset = this.headStart;
    let vr = '';
    let length: number;
    if (group === 0xfffe || !explicitVr) {
      length = littleEndian ? h.readUInt32LE(4) : h.readUInt32BE(4);
    } else {
      vr = h.toString('latin1', 4, 6);
      if (!/^[A-Z]{2}$/.test(vr)) return this.fail(`bad VR bytes 0x${h.toString('hex', 4, 6)} in element ${formatTag(tag)} at byte ${offset}`);
      if (LONG_VRS.has(vr)) length = littleEndian ? h.readUInt32LE(8) : h.readUInt32BE(8);
      else length = littleEndian ? h.readUInt16LE(6) : h.readUInt16BE(6);
    }
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
      if (!explicitVr || vr === 'SQ') {
        this.stack.push({ kind: 'sequence', explicitVr, littleEndian, tag, offset });
      } else if (vr === 'UN') {
        this.stack.push({ kind: 'sequence', explicitVr: false, littleEndian: true, tag, offset });
      } else if (vr === 'OB' || vr === 'OW') {
        // Encapsulated pixel data: fragments as items, then a sequence delimiter.
        this.stack.push({ kind: 'sequence', explicitVr, littleEndian, tag, offset });
      } else {
        this.fail(`element ${formatTag(tag)} at byte ${offset} has VR ${vr} with undefined length`);
      }
      return;
    }
    if (this.stack.length === 0 && this.capture.has(tag) && length <= MAX_CAPTURE) {
      this.element = { tag, offset, length };
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
    this.element = { tag, offset, length };
    if (length === 0) return;
    this.skip = length;
    this.state = 'skip';
  }
}
