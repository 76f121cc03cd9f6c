import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { implicitVr } from './dictionary.js';
import { DicomParseError } from './errors.js';
import { ByteStore, Header, type DicomHeader } from './header.js';
import { ElementParser, type Need } from './parser.js';
import { encodingOf, uidOf, type Encoding } from './transfer-syntax.js';
import type { DicomElement } from './types.js';
import { vrFromBytes } from './vr.js';

/**
 * Reading files: find where the dataset starts (preamble + DICM + File Meta, or a bare
 * dataset), which transfer syntax it is in, and walk it with the element parser, reading
 * only the windows of the file the walk needs.
 */

const TRANSFER_SYNTAX_UID = 0x00020010;
const FIRST_READ = 64 * 1024;
const MAX_READ = 16 * 1024 * 1024;

interface Start {
  /** Offset of the File Meta group, or undefined for a bare dataset. */
  metaStart: number | undefined;
}

function isDicm(b: Uint8Array, at: number): boolean {
  return b.length >= at + 4 && b[at] === 0x44 && b[at + 1] === 0x49 && b[at + 2] === 0x43 && b[at + 3] === 0x4d;
}

/** Where the File Meta starts: after preamble + DICM, after a bare DICM, or a meta group at offset 0. */
function findStart(b: Uint8Array): Start {
  if (isDicm(b, 128)) return { metaStart: 132 };
  if (isDicm(b, 0)) return { metaStart: 4 };
  if (b.length >= 8 && b[0] === 0x02 && b[1] === 0x00 && vrFromBytes(b[4]!, b[5]!)) return { metaStart: 0 };
  return { metaStart: undefined };
}

/** A group a dataset plausibly starts with (command, meta, identifying, patient, ... groups). */
function plausibleGroup(g: number): boolean {
  return g % 2 === 0 && g >= 0x0002 && g <= 0x0028;
}

/**
 * Guess the encoding of a dataset without File Meta (or whose meta lacks a transfer syntax)
 * from its first element: explicit when bytes 4-5 are a VR; byte order from the group.
 */
function guessEncoding(b: Uint8Array, at: number, size: number, file?: string): Encoding {
  if (b.length < at + 8) throw new DicomParseError('not a DICOM file: too short', at, { file });
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const gLE = dv.getUint16(at, true);
  const gBE = dv.getUint16(at, false);
  const explicit = vrFromBytes(b[at + 4]!, b[at + 5]!) !== undefined;
  if (plausibleGroup(gLE)) {
    if (explicit) return { explicit: true, littleEndian: true, deflated: false };
    if (dv.getUint32(at + 4, true) <= size) return { explicit: false, littleEndian: true, deflated: false };
  }
  if (plausibleGroup(gBE) && explicit) return { explicit: true, littleEndian: false, deflated: false };
  throw new DicomParseError('not a DICOM file: no "DICM" at offset 128 and no dataset at offset 0', at, { file });
}

/**
 * Files whose File Meta names the wrong transfer syntax exist (implicit data under an
 * explicit UID and the reverse). Trust the bytes of the first element when they disagree.
 */
function checkEncoding(b: Uint8Array, at: number, enc: Encoding): Encoding {
  if (enc.deflated || b.length < at + 8) return enc;
  const hasVr = vrFromBytes(b[at + 4]!, b[at + 5]!) !== undefined;
  if (enc.explicit && !hasVr && enc.littleEndian) return { ...enc, explicit: false };
  if (!enc.explicit && hasVr) {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const tag = ((dv.getUint16(at, true) << 16) | dv.getUint16(at + 2, true)) >>> 0;
    const vr = String.fromCharCode(b[at + 4]!, b[at + 5]!);
    if (implicitVr(tag) === vr) return { ...enc, explicit: true };
  }
  return enc;
}

function tsFromMeta(meta: DicomElement[], store: ByteStore): string | undefined {
  const el = meta.find((e) => e.tag === TRANSFER_SYNTAX_UID);
  if (!el) return undefined;
  const b = store.slice(el.valueOffset, el.length);
  if (!b) return undefined;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1').replace(/[\0 ]+$/, '').trim();
}

export interface ParseOptions {
  stopBeforePixels?: boolean;
  file?: string;
}

/**
 * Index a whole file (or bare dataset) held in memory. Default: the whole dataset,
 * pixel data included (pass stopBeforePixels to stop there). Throws DicomParseError.
 */
export function parseDicom(bytes: Uint8Array, opts: ParseOptions = {}): DicomHeader {
  return parseBytes(bytes, opts);
}

export function parseBytes(bytes: Uint8Array, opts: ParseOptions = {}): Header {
  const file = opts.file;
  const store = new ByteStore();
  store.add(0, bytes);
  const size = bytes.length;
  const { metaStart } = findStart(bytes);
  let meta: DicomElement[] = [];
  let datasetOffset = 0;
  let ts: string | undefined;
  if (metaStart !== undefined) {
    const mp = new ElementParser({ explicit: true, littleEndian: true, start: metaStart, end: size, metaOnly: true, file });
    if (mp.run(bytes, 0)) throw new DicomParseError('file ends inside the File Meta: truncated', mp.pos, { file });
    meta = mp.elements;
    datasetOffset = mp.pos;
    ts = tsFromMeta(meta, store);
  }
  let enc = ts ? encodingOf(ts) : guessEncoding(bytes, datasetOffset, size, file);
  if (enc.deflated) return parseDeflated(bytes, meta, datasetOffset, ts!, opts);
  if (ts) enc = checkEncoding(bytes, datasetOffset, enc);
  const dp = new ElementParser({ explicit: enc.explicit, littleEndian: enc.littleEndian, start: datasetOffset, end: size, stopBeforePixels: opts.stopBeforePixels, file });
  if (dp.run(bytes, 0)) throw new DicomParseError('truncated', dp.pos, { file });
  return indexedHeader({ file, ts: ts ?? uidOf(enc), enc, datasetOffset, meta, dp, store });
}

/** Inflate the dataset of a deflated file and index meta + inflated dataset as one byte stream. */
function parseDeflated(bytes: Uint8Array, meta: DicomElement[], datasetOffset: number, ts: string, opts: ParseOptions): Header {
  let inflated: Buffer;
  try {
    inflated = inflateRawSync(bytes.subarray(datasetOffset));
  } catch (err) {
    throw new DicomParseError(`deflated dataset cannot be inflated: ${(err as Error).message}`, datasetOffset, { file: opts.file });
  }
  const whole = Buffer.concat([bytes.subarray(0, datasetOffset), inflated]);
  const store = new ByteStore();
  store.add(0, whole);
  const dp = new ElementParser({ explicit: true, littleEndian: true, start: datasetOffset, end: whole.length, stopBeforePixels: opts.stopBeforePixels, file: opts.file });
  dp.run(whole, 0);
  return indexedHeader({ file: opts.file, ts, enc: { explicit: true, littleEndian: true, deflated: true }, datasetOffset, meta, dp, store, inflated: true });
}

/**
 * Read [offset, offset + length) of an open file (short only at end of file). Synchronous on
 * purpose: a header read is a few small reads of cached pages, and the thread-pool round trip
 * of each async call costs more than the read (measured: 3x slower headers).
 */
export function readAt(fd: number, offset: number, length: number, into?: Buffer, shortIsEnd = false): Uint8Array {
  const buf = into && into.length >= length ? into : Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
    // A regular file reads short only at its end: asking again would be one more syscall
    // per file just to be told 0 (the head read of every small file).
    if (shortIsEnd) break;
  }
  return buf.length === got ? buf : buf.subarray(0, got);
}

let scratch: Buffer | undefined;

export interface WalkOptions {
  stopBeforePixels: boolean;
  /** Read the head into this caller-owned block (sized for the whole head) and keep it as the first window, uncopied. */
  headBlock?: Buffer;
  /** Size of the first read (default 64 KiB). */
  firstRead?: number;
  /** Bulk values above this are skipped (seeked over), not read. */
  keepLimit: number;
  /** Size of the windows read after the first; grows x4 per read when growRead is set. */
  readSize: number;
  growRead: boolean;
}

/**
 * Walk an open file with windows: the first window is the head of the file; each need
 * reads a new window there. Windows that hold no kept value are let go, so memory stays
 * bounded by the header, not the file.
 */
export function walkFile(fd: number, knownSize: number | undefined, file: string, opts: WalkOptions): Header {
  const store = new ByteStore();
  // The head is read into a reused scratch block; what the index needs of it is copied out
  // at the end (a few KiB, not 64 KiB per file: less garbage on a batch of 10,000 files).
  scratch ??= Buffer.allocUnsafe(FIRST_READ);
  const block = opts.headBlock ?? scratch;
  const want = Math.min(block.length, opts.firstRead ?? FIRST_READ);
  const head = readAt(fd, 0, knownSize === undefined ? want : Math.min(knownSize, want), block, knownSize === undefined);
  // A short first read is the end of the file: no fstat needed for most files.
  const size = knownSize ?? (head.length < want ? head.length : fstatSync(fd).size);
  store.add(0, head);
  let readSize = opts.readSize;

  // Windows a parser recorded a kept value in stay in the store; the others (a window that
  // only held the header of a value too large to keep, or fragment headers) are let go.
  const kept = new Set<Uint8Array>([head]);
  const drive = (parser: ElementParser, first: { start: number; bytes: Uint8Array }): void => {
    let win = first;
    let need: Need | undefined = parser.run(win.bytes, win.start);
    while (need) {
      if (parser.keptInWindow) kept.add(win.bytes);
      else if (!kept.has(win.bytes)) store.drop(win.bytes);
      const len = Math.min(size - need.offset, Math.max(need.length, readSize));
      const bytes = readAt(fd, need.offset, len);
      if (bytes.length < need.length) throw new DicomParseError('file ends early: truncated', need.offset, { file });
      win = { start: need.offset, bytes };
      store.add(win.start, bytes);
      if (opts.growRead) readSize = Math.min(MAX_READ, readSize * 4);
      need = parser.run(win.bytes, win.start);
    }
    if (parser.keptInWindow) kept.add(win.bytes);
  };

  const { metaStart } = findStart(head);
  let meta: DicomElement[] = [];
  let datasetOffset = 0;
  let ts: string | undefined;
  if (metaStart !== undefined) {
    const mp = new ElementParser({ explicit: true, littleEndian: true, start: metaStart, end: size, metaOnly: true, file });
    drive(mp, { start: 0, bytes: head });
    meta = mp.elements;
    datasetOffset = mp.pos;
    ts = tsFromMeta(meta, store);
  }
  // The dataset's first bytes decide the encoding when there is no meta (or it is wrong).
  const firstWin = store.locate(datasetOffset, Math.min(8, size - datasetOffset));
  const probe = firstWin ? firstWin.bytes.subarray(firstWin.at) : readAt(fd, datasetOffset, Math.min(size - datasetOffset, 64));
  let enc = ts ? encodingOf(ts) : guessEncoding(probe, 0, size, file);
  if (enc.deflated) {
    const all = readAt(fd, 0, size);
    return parseDeflated(all, meta, datasetOffset, ts!, { stopBeforePixels: opts.stopBeforePixels, file });
  }
  if (ts) enc = checkEncoding(probe, 0, enc);
  const dp = new ElementParser({
    explicit: enc.explicit,
    littleEndian: enc.littleEndian,
    start: datasetOffset,
    end: size,
    stopBeforePixels: opts.stopBeforePixels,
    keepLimit: opts.keepLimit,
    file,
  });
  // Resume where the meta ended: the window that holds datasetOffset (the head, normally).
  const w = store.windows.find((x) => datasetOffset >= x.start && datasetOffset <= x.start + x.bytes.length) ?? { start: datasetOffset, bytes: new Uint8Array(0) };
  drive(dp, w);
  if (!opts.headBlock) {
    const used = dp.pos <= head.length ? dp.pos : head.length;
    store.windows[0] = { start: 0, bytes: new Uint8Array(head.subarray(0, used)) };
  }
  return indexedHeader({ file, ts: ts ?? uidOf(enc), enc, datasetOffset, meta, dp, store, fileSize: size });
}

/** The Header of a finished parse; the in-memory, deflated and file-window paths all end here. */
function indexedHeader(p: {
  file?: string;
  ts: string;
  enc: Encoding;
  datasetOffset: number;
  meta: DicomElement[];
  dp: ElementParser;
  store: ByteStore;
  inflated?: boolean;
  fileSize?: number;
}): Header {
  return new Header({
    file: p.file,
    transferSyntaxUid: p.ts,
    datasetOffset: p.datasetOffset,
    meta: p.meta,
    elements: p.dp.elements,
    store: p.store,
    littleEndian: p.enc.littleEndian,
    explicit: p.enc.explicit,
    stoppedAtPixels: p.dp.stoppedAtPixels,
    ...(p.inflated ? { inflated: true } : {}),
    ...(p.fileSize !== undefined ? { fileSize: p.fileSize } : {}),
  });
}

export async function withFile<T>(path: string, fn: (fd: number) => T | Promise<T>): Promise<T> {
  const fd = openSync(path, 'r');
  try {
    return await fn(fd);
  } catch (err) {
    if (err instanceof DicomParseError) throw err.withFile(path);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Read a file's header: only the head of the file is read (64 KiB, grown when the header
 * is longer); by default reading stops at the top-level pixel data.
 */
export async function readHeader(path: string, opts: { stopBeforePixels?: boolean } = {}): Promise<DicomHeader> {
  return readHeaderFull(path, opts);
}

export async function readHeaderFull(path: string, opts: { stopBeforePixels?: boolean } = {}): Promise<Header> {
  const stop = opts.stopBeforePixels ?? true;
  return withFile(path, (fd) =>
    walkFile(fd, undefined, path, { stopBeforePixels: stop, keepLimit: 1024 * 1024, readSize: FIRST_READ * 4, growRead: true }),
  );
}

/**
 * Walk a whole file's structure, seeking over large values (nothing near the file's size
 * is held in memory). Throws DicomParseError on a truncated file or a length that does not fit.
 */
export async function verifyDicomFile(path: string): Promise<DicomHeader> {
  return indexFile(path);
}

/** The full index of a file with small values in memory and large bulk values skipped (used by the rewriter). */
export async function indexFile(path: string): Promise<Header> {
  return withFile(path, (fd) => walkFile(fd, undefined, path, INDEX_OPTIONS));
}

/** How a whole file is walked for verification and rewriting: bulk values over 64 KiB are seeked over. */
// Windows after a skipped value are small: between the fragments of a 2 GB multi-frame file
// only their 8-byte headers are wanted.
export const INDEX_OPTIONS: WalkOptions = { stopBeforePixels: false, keepLimit: 64 * 1024, readSize: 64 * 1024, growRead: false };
