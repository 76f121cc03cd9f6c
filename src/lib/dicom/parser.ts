import { latin1 } from './charset.js';
import { implicitVr } from './dictionary.js';
import { DicomParseError } from './errors.js';
import { PIXEL_DATA, formatTag, privateBlockKey } from './tags.js';
import { UNDEFINED_LENGTH, type DicomElement, type ItemRange } from './types.js';
import { BULK_VRS, isLongVrBytes, vrFromBytes } from './vr.js';

/**
 * The element index: a resumable, iterative walk over a dataset's bytes.
 *
 * The parser sees the file through windows ("chunks") of bytes at absolute offsets. When it
 * needs bytes the current window lacks, run() returns what it needs and the caller comes
 * back with a window that starts there; the walk state (open sequences, items, fragments) is
 * kept on an explicit stack, so a 2 GB file is walked with a few small windows, seeking over
 * large values. Over a whole file in memory it never needs anything: a need is a truncation.
 */

export const ITEM = 0xfffee000;
export const ITEM_DELIMITER = 0xfffee00d;
export const SEQUENCE_DELIMITER = 0xfffee0dd;
const FLOAT_PIXEL_DATA = 0x7fe00008;
const DOUBLE_PIXEL_DATA = 0x7fe00009;

/** Text values above this size are still kept in memory (nobody reads a 16 MB report into a window by accident). */
const TEXT_KEEP_CAP = 16 * 1024 * 1024;

const enum Kind {
  Dataset,
  Item,
  Sequence,
  Fragments,
}

interface Frame {
  kind: Kind;
  end: number; // absolute; Infinity for undefined length
  list: DicomElement[]; // Dataset/Item: their elements
  owner: DicomElement | undefined; // Sequence/Fragments: the element they belong to
  range: ItemRange | undefined; // Item: its range, closed when the item ends
  explicit: boolean;
  le: boolean;
  creators: Map<number, string> | undefined; // Dataset/Item: private creators by block (made on the first one)
}

export interface ParserOptions {
  explicit: boolean;
  littleEndian: boolean;
  /** Absolute offset where the walk starts. */
  start: number;
  /** Absolute end of the dataset (the file size). */
  end: number;
  /** Stop at top-level pixel data: its element is recorded (header only), nothing after it. */
  stopBeforePixels?: boolean;
  /** File meta mode: stop before the first element whose group is not 0002. */
  metaOnly?: boolean;
  /** Bulk values longer than this are skipped when they are not in the window. Infinity: never skip. */
  keepLimit?: number;
  file?: string;
  /** Start inside a sequence (used to try reading a VR UN value as a sequence). */
  sequenceOwner?: DicomElement;
}

export interface Need {
  offset: number;
  length: number;
}

export class ElementParser {
  readonly elements: DicomElement[] = [];
  pos: number;
  done = false;
  /** Set when the walk stopped at top-level pixel data (stopBeforePixels). */
  stoppedAtPixels = false;
  /** Whether the last run() recorded a value that lives in its window (so the window must be kept). */
  keptInWindow = false;
  private readonly stack: Frame[];
  private readonly fileEnd: number;
  private readonly opts: ParserOptions;
  private readonly keepLimit: number;

  constructor(opts: ParserOptions) {
    this.opts = opts;
    this.pos = opts.start;
    this.fileEnd = opts.end;
    this.keepLimit = opts.keepLimit ?? Infinity;
    // Frames are built with the same shape everywhere (no spreads) so the walk stays monomorphic.
    const owner = opts.sequenceOwner;
    this.stack = [
      {
        kind: owner ? Kind.Sequence : Kind.Dataset,
        end: opts.end,
        list: this.elements,
        owner,
        range: undefined,
        explicit: opts.explicit,
        le: opts.littleEndian,
        creators: undefined,
      },
    ];
  }

  private fail(reason: string, offset: number, tag?: number): never {
    throw new DicomParseError(reason, offset, { file: this.opts.file, tag });
  }

  /** The tag of the innermost open sequence, to name it in errors. */
  private enclosingTag(): number | undefined {
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const o = this.stack[i]!.owner;
      if (o) return o.tag;
    }
    return undefined;
  }

  /**
   * Walk as far as the window [base, base + bytes.length) allows. Returns undefined when the
   * walk is done, else the bytes it needs next (the caller passes a window starting at need.offset).
   */
  run(bytes: Uint8Array, base: number): Need | undefined {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const lim = base + bytes.length;
    const stack = this.stack;
    this.keptInWindow = false;
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!;
      const p = this.pos;
      if (p >= f.end) {
        if (p > f.end) this.fail(`element runs past the end of its ${f.kind === Kind.Item ? 'item' : 'sequence'}`, p, this.enclosingTag());
        this.close(f, p);
        continue;
      }
      if (p + 8 > lim) {
        if (p + 8 > this.fileEnd) this.truncatedHeader(p, f);
        return { offset: p, length: 8 };
      }
      const i = p - base;
      const le = f.le;
      const group = dv.getUint16(i, le);
      const elem = dv.getUint16(i + 2, le);
      const tag = ((group << 16) | elem) >>> 0;
      if (group === 0xfffe) {
        const need = this.itemTag(f, tag, dv.getUint32(i + 4, le), p, lim);
        if (need) return need;
        continue;
      }
      if (f.kind === Kind.Sequence || f.kind === Kind.Fragments) {
        this.fail(`expected an item tag (FFFE,E000) in sequence ${formatTag(f.owner!.tag)}, found ${formatTag(tag)}`, p, tag);
      }
      if (this.opts.metaOnly && group !== 0x0002) {
        this.done = true;
        return undefined;
      }
      let vr: string;
      let length: number;
      let hdr: number;
      if (f.explicit) {
        const v = vrFromBytes(bytes[i + 4]!, bytes[i + 5]!);
        if (v === undefined) {
          this.fail(`invalid VR "${printable(bytes[i + 4]!, bytes[i + 5]!)}" (is the transfer syntax right?)`, p, tag);
        }
        vr = v;
        if (isLongVrBytes(bytes[i + 4]!, bytes[i + 5]!)) {
          if (p + 12 > lim) {
            if (p + 12 > this.fileEnd) this.truncatedHeader(p, f);
            return { offset: p, length: 12 };
          }
          length = dv.getUint32(i + 8, le);
          hdr = 12;
        } else {
          length = dv.getUint16(i + 6, le);
          hdr = 8;
        }
      } else {
        vr = implicitVr(tag);
        length = dv.getUint32(i + 4, le);
        hdr = 8;
      }
      const vo = p + hdr;
      const el: DicomElement = {
        tag,
        vr,
        headerOffset: p,
        valueOffset: vo,
        length,
        end: vo,
        items: undefined,
        fragments: undefined,
        privateCreator: undefined,
        itemRanges: undefined,
      };
      if (group & 1 && elem >= 0x1000 && f.creators) el.privateCreator = f.creators.get(privateBlockKey(tag));

      if (f.kind === Kind.Dataset && this.opts.stopBeforePixels && (tag === PIXEL_DATA || tag === FLOAT_PIXEL_DATA || tag === DOUBLE_PIXEL_DATA)) {
        el.end = length === UNDEFINED_LENGTH ? vo : vo + length;
        el.skipped = true;
        f.list.push(el);
        this.stoppedAtPixels = true;
        this.done = true;
        stack.length = 0;
        return undefined;
      }

      if (length === UNDEFINED_LENGTH) {
        this.openUndefined(f, el, vr, p);
        continue;
      }
      const ve = vo + length;
      el.end = ve;
      if (ve > this.fileEnd) {
        this.fail(`value of length ${length} runs past the end of the file (${this.fileEnd} bytes): truncated or wrong length`, p, tag);
      }
      if (ve > f.end) {
        if (f.kind === Kind.Dataset && f.end === this.fileEnd) {
          this.fail(`value of length ${length} runs past the end of the file (${this.fileEnd} bytes): truncated or wrong length`, p, tag);
        }
        this.fail(`value of length ${length} runs past the end of its item (at ${f.end}): wrong length`, p, tag);
      }
      if (vr === 'SQ') {
        this.openSequence(f, el, vo, ve, f.explicit, f.le);
        continue;
      }
      if (ve > lim) {
        if (length > this.keepLimit && (BULK_VRS.has(vr) || length > TEXT_KEEP_CAP)) {
          el.skipped = true;
          f.list.push(el);
          this.pos = ve;
          continue;
        }
        return { offset: p, length: hdr + length };
      }
      if (vr === 'UN' && length >= 8 && looksLikeItem(dv, i + hdr)) {
        // A sequence stored as UN (PS3.5 6.2.2): its items are implicit VR little endian.
        const items = this.tryUnSequence(el, bytes, base, vo, ve);
        if (items) {
          el.items = items.items;
          el.itemRanges = items.ranges;
          el.itemsImplicit = true;
        }
      }
      if (length > 0) {
        this.keptInWindow = true;
        if (group & 1 && elem >= 0x10 && elem <= 0xff && (f.kind === Kind.Dataset || f.kind === Kind.Item)) {
          (f.creators ??= new Map()).set(((group << 8) | elem) >>> 0, creatorText(bytes, i + hdr, length));
        }
      }
      f.list.push(el);
      this.pos = ve;
    }
    this.done = true;
    return undefined;
  }

  private truncatedHeader(p: number, f: Frame): never {
    if (f.end === Infinity) {
      this.fail(`file ends inside sequence ${formatTag(this.enclosingTag() ?? 0)} before its delimiter: truncated`, p, this.enclosingTag());
    }
    this.fail(`file ends inside an element header (${this.fileEnd - p} bytes left): truncated`, p);
  }

  private openUndefined(f: Frame, el: DicomElement, vr: string, p: number): void {
    const vo = el.valueOffset;
    if (vr === 'SQ') {
      this.openSequence(f, el, vo, Infinity, f.explicit, f.le);
    } else if (vr === 'UN' && el.tag !== PIXEL_DATA) {
      // PS3.5 6.2.2: a UN with undefined length is a sequence in implicit VR little endian.
      el.itemsImplicit = true;
      this.openSequence(f, el, vo, Infinity, false, true);
    } else if (vr === 'OB' || vr === 'OW' || vr === 'UN') {
      el.fragments = [];
      f.list.push(el);
      this.stack.push({ kind: Kind.Fragments, end: Infinity, list: f.list, owner: el, range: undefined, explicit: f.explicit, le: f.le, creators: undefined });
      this.pos = vo;
    } else {
      this.fail(`undefined length is not allowed for VR ${vr}`, p, el.tag);
    }
  }

  private openSequence(f: Frame, el: DicomElement, vo: number, end: number, explicit: boolean, le: boolean): void {
    el.items = [];
    el.itemRanges = [];
    if (end !== Infinity) el.end = end;
    f.list.push(el);
    this.stack.push({ kind: Kind.Sequence, end, list: f.list, owner: el, range: undefined, explicit, le, creators: undefined });
    this.pos = vo;
  }

  /** An item or delimiter tag (group FFFE). Returns a need when a fragment's header is not in the window. */
  private itemTag(f: Frame, tag: number, len: number, p: number, lim: number): Need | undefined {
    if (tag === ITEM) {
      if (f.kind === Kind.Sequence) {
        const owner = f.owner!;
        const list: DicomElement[] = [];
        const range: ItemRange = { offset: p, length: len, end: -1 };
        owner.items!.push(list);
        owner.itemRanges!.push(range);
        const end = len === UNDEFINED_LENGTH ? Infinity : p + 8 + len;
        if (end > f.end && end !== Infinity) this.fail(`item of length ${len} runs past the end of sequence ${formatTag(owner.tag)}`, p, owner.tag);
        if (end > this.fileEnd && end !== Infinity) this.fail(`item of length ${len} runs past the end of the file: truncated`, p, owner.tag);
        this.stack.push({ kind: Kind.Item, end, list, owner: undefined, range, explicit: f.explicit, le: f.le, creators: undefined });
        this.pos = p + 8;
        return undefined;
      }
      if (f.kind === Kind.Fragments) {
        const owner = f.owner!;
        if (len === UNDEFINED_LENGTH) this.fail('pixel data fragment with undefined length', p, owner.tag);
        const ve = p + 8 + len;
        if (ve > this.fileEnd) this.fail(`pixel data fragment of length ${len} runs past the end of the file: truncated`, p, owner.tag);
        owner.fragments!.push({ offset: p + 8, length: len });
        this.pos = ve;
        void lim;
        return undefined;
      }
      this.fail('item tag (FFFE,E000) outside a sequence', p, tag);
    }
    if (tag === ITEM_DELIMITER) {
      if (f.kind === Kind.Item && f.end === Infinity) {
        f.range!.end = p + 8;
        this.stack.pop();
        this.pos = p + 8;
        return undefined;
      }
      this.fail('unexpected item delimitation tag', p, tag);
    }
    if (tag === SEQUENCE_DELIMITER) {
      if ((f.kind === Kind.Sequence || f.kind === Kind.Fragments) && f.end === Infinity) {
        f.owner!.end = p + 8;
        this.stack.pop();
        this.pos = p + 8;
        return undefined;
      }
      if ((f.kind === Kind.Dataset || f.kind === Kind.Item) && len === 0) {
        // A stray sequence delimiter between elements: DCMTK warns and reads on; so do we.
        // The rewriter copies the gaps between elements, so these bytes are kept.
        this.pos = p + 8;
        return undefined;
      }
      this.fail('unexpected sequence delimitation tag', p, tag);
    }
    this.fail(`unknown item-group tag ${formatTag(tag)}`, p, tag);
  }

  /** Close a defined-length frame whose end was reached. */
  private close(f: Frame, p: number): void {
    this.stack.pop();
    if (f.kind === Kind.Item) f.range!.end = p;
    else if (f.kind === Kind.Sequence && f.owner) f.owner.end = p;
  }

  /** Try to read a UN value in the window as an implicit VR LE sequence; undefined when it is not one. */
  private tryUnSequence(el: DicomElement, bytes: Uint8Array, base: number, vo: number, ve: number): { items: DicomElement[][]; ranges: ItemRange[] } | undefined {
    const owner: DicomElement = { ...el, items: [], itemRanges: [] };
    const sub = new ElementParser({ explicit: false, littleEndian: true, start: vo, end: ve, file: this.opts.file, sequenceOwner: owner });
    try {
      if (sub.run(bytes, base) !== undefined) return undefined;
    } catch (err) {
      if (err instanceof DicomParseError) return undefined;
      throw err;
    }
    if (sub.pos !== ve) return undefined;
    return { items: owner.items!, ranges: owner.itemRanges! };
  }
}

function looksLikeItem(dv: DataView, i: number): boolean {
  return dv.getUint16(i, true) === 0xfffe && dv.getUint16(i + 2, true) === 0xe000;
}

function printable(a: number, b: number): string {
  const c = (x: number): string => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, '0')}`);
  return c(a) + c(b);
}

/** A private creator's text: LO, trimmed of spaces and NUL padding. */
function creatorText(bytes: Uint8Array, start: number, length: number): string {
  const s = latin1(bytes, start, start + length);
  return s.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}
