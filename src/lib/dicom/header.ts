import { parseTagKey } from './dictionary.js';
import { decodeNumbers, decodeStrings, parseCharsets } from './values.js';
import type { DicomElement } from './types.js';

/**
 * What reading a file's head gives: the element index plus the bytes of the values that
 * were read, decoded on demand (lazily: most callers look at a handful of values).
 */
export interface DicomHeader {
  file?: string;
  transferSyntaxUid: string;
  datasetOffset: number;
  meta: DicomElement[];
  elements: DicomElement[];
  string(key: string | number): string | undefined;
  strings(key: string | number): string[];
  number(key: string | number): number | undefined;
  numbers(key: string | number): number[];
  has(key: string | number): boolean;
  element(key: string | number): DicomElement | undefined;
}

/** Windows of file bytes at absolute offsets; a value is readable when one window holds all of it. */
export class ByteStore {
  readonly windows: { start: number; bytes: Uint8Array }[] = [];

  add(start: number, bytes: Uint8Array): void {
    this.windows.push({ start, bytes });
  }

  /** Let a window go (nothing indexed lives in it). */
  drop(bytes: Uint8Array): void {
    const k = this.windows.findIndex((w) => w.bytes === bytes);
    if (k >= 0) this.windows.splice(k, 1);
  }

  /** The window holding [offset, offset + length), as (bytes, index into bytes). */
  locate(offset: number, length: number): { bytes: Uint8Array; at: number } | undefined {
    // Newest first: the window just read is the likeliest, and windows are few.
    for (let k = this.windows.length - 1; k >= 0; k--) {
      const w = this.windows[k]!;
      if (offset >= w.start && offset + length <= w.start + w.bytes.length) return { bytes: w.bytes, at: offset - w.start };
    }
    return undefined;
  }

  slice(offset: number, length: number): Uint8Array | undefined {
    const loc = this.locate(offset, length);
    return loc ? loc.bytes.subarray(loc.at, loc.at + length) : undefined;
  }
}

export interface HeaderInit {
  file?: string;
  transferSyntaxUid: string;
  datasetOffset: number;
  meta: DicomElement[];
  elements: DicomElement[];
  store: ByteStore;
  littleEndian: boolean;
  explicit: boolean;
  /** True when the dataset was deflated: offsets past datasetOffset are in the inflated stream. */
  inflated?: boolean;
  /** True when reading stopped at top-level pixel data. */
  stoppedAtPixels?: boolean;
  /** Size of the file read (for a deflated file: of the file as stored). */
  fileSize?: number;
}

const SPECIFIC_CHARACTER_SET = 0x00080005;

/** Strictly ascending tags (so also no tag twice). */
function isAscending(list: readonly DicomElement[]): boolean {
  for (let i = 1; i < list.length; i++) if (list[i]!.tag <= list[i - 1]!.tag) return false;
  return true;
}

function findSorted(list: readonly DicomElement[], tag: number): DicomElement | undefined {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const t = list[mid]!.tag;
    if (t === tag) return list[mid];
    if (t < tag) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

export class Header implements DicomHeader {
  file?: string;
  transferSyntaxUid: string;
  datasetOffset: number;
  meta: DicomElement[];
  elements: DicomElement[];
  readonly store: ByteStore;
  readonly littleEndian: boolean;
  readonly explicit: boolean;
  readonly inflated: boolean;
  readonly stoppedAtPixels: boolean;
  readonly fileSize: number | undefined;
  private index: Map<number, DicomElement> | undefined;
  private ascending: boolean | undefined;
  private charsetCache: string[] | undefined;

  constructor(init: HeaderInit) {
    this.file = init.file;
    this.transferSyntaxUid = init.transferSyntaxUid;
    this.datasetOffset = init.datasetOffset;
    this.meta = init.meta;
    this.elements = init.elements;
    this.store = init.store;
    this.littleEndian = init.littleEndian;
    this.explicit = init.explicit;
    this.inflated = init.inflated ?? false;
    this.stoppedAtPixels = init.stoppedAtPixels ?? false;
    this.fileSize = init.fileSize;
  }

  /** SpecificCharacterSet values (top level); [] means the default repertoire. */
  get charsets(): string[] {
    if (this.charsetCache === undefined) {
      const el = this.element(SPECIFIC_CHARACTER_SET);
      const raw = el ? this.rawText(el) : undefined;
      this.charsetCache = parseCharsets(raw);
    }
    return this.charsetCache;
  }

  private rawText(el: DicomElement): string | undefined {
    const b = this.store.slice(el.valueOffset, el.length);
    if (!b) return undefined;
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1').replace(/[\0 ]+$/, '');
  }

  element(key: string | number): DicomElement | undefined {
    const tag = parseTagKey(key);
    if (tag >>> 16 === 0x0002) return this.meta.find((e) => e.tag === tag);
    // Top-level elements are in ascending tag order in every conforming file: there a binary
    // search finds one with no index to build (a Map of ~100 entries per file was the largest
    // allocation of a header after the elements). A file out of order (or with a tag twice)
    // gets the Map, which keeps the first of each tag.
    this.ascending ??= isAscending(this.elements);
    if (this.ascending) return findSorted(this.elements, tag);
    if (!this.index) {
      this.index = new Map();
      for (const e of this.elements) if (!this.index.has(e.tag)) this.index.set(e.tag, e);
    }
    return this.index.get(tag);
  }

  has(key: string | number): boolean {
    return this.element(key) !== undefined;
  }

  /** Values of any element of this file (also one inside a sequence); `implicitLE` for items of a VR UN sequence. */
  valuesOf(el: DicomElement, opts: { implicitLE?: boolean; charsets?: readonly string[] } = {}): string[] {
    const b = this.store.locate(el.valueOffset, el.length);
    if (!b || el.length === 0xffffffff) return [];
    return decodeStrings(b.bytes, b.at, el.length, el.vr, { littleEndian: this.byteOrderOf(el, opts.implicitLE), charsets: opts.charsets ?? this.charsets });
  }

  numbersOf(el: DicomElement, opts: { implicitLE?: boolean } = {}): number[] {
    const b = this.store.locate(el.valueOffset, el.length);
    if (!b || el.length === 0xffffffff) return [];
    return decodeNumbers(b.bytes, b.at, el.length, el.vr, { littleEndian: this.byteOrderOf(el, opts.implicitLE), charsets: this.charsets });
  }

  /** The raw value bytes, when they were read (large bulk values are skipped, not read). */
  bytesOf(el: DicomElement): Uint8Array | undefined {
    if (el.length === 0xffffffff) return undefined;
    return this.store.slice(el.valueOffset, el.length);
  }

  private byteOrderOf(el: DicomElement, implicitLE?: boolean): boolean {
    if (implicitLE) return true;
    return el.tag >>> 16 === 0x0002 && el.headerOffset < this.datasetOffset ? true : this.littleEndian;
  }

  strings(key: string | number): string[] {
    const el = this.element(key);
    return el ? this.valuesOf(el) : [];
  }

  string(key: string | number): string | undefined {
    return this.strings(key)[0];
  }

  numbers(key: string | number): number[] {
    const el = this.element(key);
    return el ? this.numbersOf(el) : [];
  }

  number(key: string | number): number | undefined {
    return this.numbers(key)[0];
  }
}
