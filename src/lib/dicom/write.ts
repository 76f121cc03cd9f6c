import { openSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { threadId } from 'node:worker_threads';
import { deflateRawSync } from 'node:zlib';
import type { Header } from './header.js';
import type { Plan, Segment } from './plan.js';
import { abandonTemp, finishTempSync, fsyncDirSync, publishSync } from './publish.js';
import { readAt } from './read.js';

/**
 * Writing a plan: copy ranges come from the windows already in memory or are read from the
 * input in 1 MiB pieces, new bytes are written as they are, all through a 1 MiB buffer.
 * Memory stays bounded whatever the file size. A path gets temp name + fsync + rename.
 * File I/O is synchronous (small files: async round trips cost more than the I/O); long
 * copies give the event loop a turn every few MiB.
 */

/**
 * A synchronous consumer of the output (e.g. one that copies it into memory): `accept` is
 * called with each piece in order; the piece is valid only during the call (it may be a
 * view of a block reused right after), so a sink that keeps bytes copies them. Cheaper
 * than a stream: no stream machinery and no defensive copy per piece.
 */
export interface ByteSink {
  accept(bytes: Uint8Array): void;
  /**
   * Optional: bytes of the caller's source (RewriteOptions.source) that stay valid until the
   * caller is done with its source, given in order like the others: the sink may keep a
   * reference instead of a copy. Only the top-level pixel data value is given this way.
   */
  keep?(bytes: Uint8Array): void;
}

export type Output = string | NodeJS.WritableStream | ByteSink;

function isByteSink(o: Output): o is ByteSink {
  return typeof o === 'object' && typeof (o as Partial<ByteSink>).accept === 'function';
}

const PIECE = 1024 * 1024;
/** Streams keep what they are given, so their blocks are fresh each time: small ones (less garbage). */
const STREAM_BLOCK = 64 * 1024;
const EMPTY = Buffer.alloc(0);
const YIELD_EVERY = 16 * PIECE;

/** Blocks of PIECE bytes, reused across files (each holder owns one until it gives it back). */
const freeBlocks: Buffer[] = [];

export function acquireBlock(): Buffer {
  return freeBlocks.pop() ?? Buffer.allocUnsafe(PIECE);
}

export function releaseBlock(b: Buffer): void {
  if (freeBlocks.length < 8) freeBlocks.push(b);
}

type Writer = (b: Uint8Array) => void | Promise<void>;


/**
 * Collects small writes into 1 MiB blocks; passes large ones straight through. A sink for a
 * synchronous writer borrows a block from a pool (no 1 MiB allocation per file; concurrent
 * rewrites each hold their own); one for a stream takes a fresh block per flush, since a
 * stream may hold on to what it was given.
 */
class Sink {
  private buf: Buffer;
  private used = 0;
  written = 0;
  private sinceYield = 0;
  constructor(
    private readonly write: Writer,
    readonly reuse = false,
  ) {
    this.buf = reuse ? acquireBlock() : EMPTY;
  }

  /** Give a borrowed block back (the sink is not used after this). */
  release(): void {
    if (this.reuse) releaseBlock(this.buf);
  }

  /**
   * `owned`: b is a fresh allocation nobody else will write to. A stream may keep what it is
   * given after the rewrite returns, so bytes that are not owned (views of the header's
   * windows, which may be a pooled block the next file is read into) are copied before a
   * stream gets them; a synchronous file writer is done with them when write returns.
   */
  async push(b: Uint8Array, owned = false): Promise<void> {
    if (b.length === 0) return;
    const cap = this.reuse ? this.buf.length : STREAM_BLOCK;
    if (this.used + b.length > cap) await this.flush();
    if (b.length >= cap / 2) {
      await this.emit(this.reuse || owned ? b : Buffer.from(b));
      return;
    }
    if (this.buf === EMPTY) this.buf = Buffer.allocUnsafe(STREAM_BLOCK);
    this.buf.set(b, this.used);
    this.used += b.length;
  }

  private async emit(b: Uint8Array): Promise<void> {
    await this.write(b);
    this.written += b.length;
    this.sinceYield += b.length;
    if (this.sinceYield >= YIELD_EVERY) {
      this.sinceYield = 0;
      await yieldToLoop();
    }
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const out = this.buf.subarray(0, this.used);
    if (!this.reuse) this.buf = EMPTY; // a fresh block on the next push, if there is one
    this.used = 0;
    await this.emit(out);
  }
}

async function render(plan: Plan, sink: Sink, fromMemory: Header | undefined, fd: number | undefined): Promise<void> {
  for (const s of plan.segments) {
    if (s.kind === 'bytes') {
      await sink.push(s.data);
      continue;
    }
    const mem = fromMemory?.store.slice(s.start, s.end - s.start);
    if (mem) {
      await sink.push(mem);
      continue;
    }
    if (fd === undefined) throw new Error(`bytes ${s.start}..${s.end} of the input are not available`);
    // A synchronous sink is done with a piece when push returns: one block serves all pieces.
    const block = sink.reuse ? acquireBlock() : undefined;
    try {
      for (let p = s.start; p < s.end; p += PIECE) {
        const len = Math.min(PIECE, s.end - p);
        const piece = readAt(fd, p, len, block);
        if (piece.length !== len) throw new Error(`input changed while rewriting: short read at offset ${p}`);
        // Without a block, readAt allocated the piece: the stream may keep it as it is.
        await sink.push(piece, block === undefined);
      }
    } finally {
      if (block) releaseBlock(block);
    }
  }
}

/** Outputs up to this size go to a ByteSink in one synchronous pass (larger ones yield to the event loop now and then). */
const SYNC_LIMIT = 16 * PIECE;

/** An input range whose bytes go to the sink's keep() (by reference), not accept(). */
interface KeepRange {
  start: number;
  end: number;
  sink: Required<ByteSink>;
}

/** render() for a ByteSink, synchronously; returns the bytes written. */
function renderSync(plan: Plan, sink: ByteSink, fromMemory: Header | undefined, fd: number | undefined, keep?: KeepRange): number {
  let written = 0;
  for (const s of plan.segments) {
    if (keep && s.kind === 'copy' && s.start <= keep.start && s.end >= keep.end && keep.end > keep.start) {
      // The kept range inside a copied one: before it copied, it by reference, after it copied.
      const kept = fromMemory!.store.slice(keep.start, keep.end - keep.start);
      if (kept) {
        written += renderSegment({ kind: 'copy', start: s.start, end: keep.start }, sink, fromMemory, fd);
        keep.sink.keep(kept);
        written += kept.length;
        written += renderSegment({ kind: 'copy', start: keep.end, end: s.end }, sink, fromMemory, fd);
        continue;
      }
    }
    written += renderSegment(s, sink, fromMemory, fd);
  }
  return written;
}

function renderSegment(s: Segment, sink: ByteSink, fromMemory: Header | undefined, fd: number | undefined): number {
  if (s.kind === 'copy' && s.end <= s.start) return 0;
  if (s.kind === 'bytes') {
    sink.accept(s.data);
    return s.data.length;
  }
  const mem = fromMemory?.store.slice(s.start, s.end - s.start);
  if (mem) {
    sink.accept(mem);
    return mem.length;
  }
  if (fd === undefined) throw new Error(`bytes ${s.start}..${s.end} of the input are not available`);
  const block = acquireBlock();
  try {
    for (let p = s.start; p < s.end; p += PIECE) {
      const len = Math.min(PIECE, s.end - p);
      const piece = readAt(fd, p, len, block);
      if (piece.length !== len) throw new Error(`input changed while rewriting: short read at offset ${p}`);
      sink.accept(piece);
    }
  } finally {
    releaseBlock(block);
  }
  return s.end - s.start;
}

/**
 * The pieces of head + body, valid until the rewrite returns: views of the header's windows
 * and the plan's new bytes as they are; what has to be read from the input is copied (the
 * read block is reused).
 */
function gatherParts(head: Plan, body: Plan | undefined, memory: Header | undefined, fd: number | undefined): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const copying: ByteSink = {
    accept(b: Uint8Array): void {
      parts.push(Buffer.from(b));
    },
  };
  for (const plan of body ? [head, body] : [head]) {
    for (const s of plan.segments) {
      const mem = s.kind === 'bytes' ? s.data : memory?.store.slice(s.start, s.end - s.start);
      if (mem) parts.push(mem);
      else renderSegment(s, copying, undefined, fd);
    }
  }
  return parts;
}

function streamWriter(stream: NodeJS.WritableStream): Writer {
  return (b) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      stream.once('error', onError);
      const ok = stream.write(b, (err) => {
        if (err) reject(err);
      });
      const done = (): void => {
        stream.removeListener('error', onError);
        resolve();
      };
      if (ok) done();
      else stream.once('drain', done);
    });
}

function fileWriter(fd: number): Writer {
  return (b) => {
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  };
}

let tempCounter = 0;

/**
 * A hidden temp name beside the target, so no reader mistakes it for a finished file.
 * pid, thread and a counter make it unique without random bytes per file.
 */
export function tempNameFor(target: string): string {
  // By string slicing, not path.join/dirname/basename (their normalisation was ~8 us a file,
  // cold, in a 1,000-file batch); a target without a slash or ending in one takes the slow way.
  const cut = target.lastIndexOf('/');
  const suffix = `.${process.pid}.${threadId}.${(tempCounter++).toString(36)}.tmp`;
  if (cut < 0 || cut === target.length - 1) return join(dirname(target), `.${basename(target)}${suffix}`);
  return `${target.slice(0, cut + 1)}.${target.slice(cut + 1)}${suffix}`;
}


/**
 * Write head + body to the output. `body` undefined with verbatim: the head plan is the
 * whole file. A deflated input's body is deflated again (its ranges refer to the inflated stream).
 * Returns the bytes written, synchronously when it could be done synchronously.
 */
export function writePlanNow(
  inputFd: number | undefined,
  header: Header,
  head: Plan,
  body: Plan | undefined,
  output: Output,
  opts: { fsync: boolean; verbatim: boolean; keep?: { start: number; end: number } },
): number | Promise<number> {
  // The two common cases, a small output to a ByteSink or to a path, are done synchronously:
  // no promise, no async frame (in a batch of files most of this runs in V8's interpreter).
  // To a path: its pieces gathered (views of the input in memory, the new bytes) and written
  // with writev. To a sink: each piece handed straight over, no staging block (the sink
  // copies what it keeps) and no promise per piece.
  const deflate = header.inflated && !opts.verbatim;
  if (!deflate && head.length + (body?.length ?? 0) <= SYNC_LIMIT && (typeof output === 'string' || isByteSink(output))) {
    const memory = header.inflated && opts.verbatim ? undefined : header;
    if (typeof output === 'string') return publishPartsSync(output, gatherParts(head, body, memory, inputFd), opts.fsync);
    const keep = output.keep && opts.keep && memory ? { ...opts.keep, sink: output as Required<ByteSink> } : undefined;
    return renderSync(head, output, memory, inputFd, keep) + (body ? renderSync(body, output, memory, inputFd, keep) : 0);
  }
  return writePlan(inputFd, header, head, body, output, opts);
}

/** The rest of writePlanNow: a deflated or large output, or one to a stream, through a staging Sink. */
async function writePlan(...[inputFd, header, head, body, output, opts]: Parameters<typeof writePlanNow>): Promise<number> {
  const deflate = header.inflated && !opts.verbatim;
  const inFd = deflate ? undefined : inputFd;
  // The windows of a deflated file hold the inflated stream: only good for the body.
  const memory = header.inflated && opts.verbatim ? undefined : header;
  const emit = async (sink: Sink): Promise<void> => {
    await render(head, sink, memory, inFd);
    if (!body) return;
    if (deflate) {
      const parts: Uint8Array[] = [];
      const collect = new Sink((b) => {
        parts.push(Buffer.from(b));
      });
      await render(body, collect, memory, undefined);
      await collect.flush();
      await sink.push(deflateRawSync(Buffer.concat(parts)));
    } else {
      await render(body, sink, memory, inFd);
    }
  };
  if (typeof output !== 'string' && isByteSink(output)) {
    const sink = new Sink((b) => output.accept(b), true);
    try {
      await emit(sink);
      await sink.flush();
    } finally {
      sink.release();
    }
    return sink.written;
  }
  if (typeof output !== 'string') {
    const sink = new Sink(streamWriter(output));
    await emit(sink);
    await sink.flush();
    return sink.written;
  }
  const tmp = tempNameFor(output);
  const outFd = openSync(tmp, 'w', 0o644);
  let written: number;
  try {
    const sink = new Sink(fileWriter(outFd), true);
    try {
      await emit(sink);
      await sink.flush();
    } finally {
      sink.release();
    }
    written = sink.written;
  } catch (err) {
    abandonTemp(outFd, tmp);
    throw err;
  }
  publishTempSync(outFd, tmp, output, opts.fsync);
  return written;
}

/** A written temp file into place: fdatasync (with fsync), close, rename, folder fsync (with fsync). */
function publishTempSync(fd: number, tmp: string, output: string, fsync: boolean): void {
  finishTempSync(fd, tmp, output, fsync);
  if (fsync) fsyncDirSync(dirname(output));
}

/**
 * Publish an output held in memory as `parts`, synchronously: a temp name beside `output`,
 * writev, fdatasync (with fsync), close, rename, folder fsync (with fsync). On an error the
 * temp name is removed and nothing appears under `output`. Returns the bytes written.
 */
export function publishPartsSync(output: string, parts: Uint8Array[], fsync: boolean): number {
  return publishSync(tempNameFor(output), output, parts, fsync);
}
