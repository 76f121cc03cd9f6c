import { setImmediate as turn } from 'node:timers/promises';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PublishThread } from './publish-thread.js';
import { rewriteDicom, rewriteSourceNow, type RewriteOptions, type RewriteResult } from './rewrite.js';
import { publishPartsSync, tempNameFor, type ByteSink } from './write.js';

/**
 * Rewriting many files in one process. rewriteDicom writes a small output synchronously
 * (open the temp name, writev, [fdatasync], close, rename, [folder fsync]): with fsync
 * (the default) the calling thread then waits for the device between two files'
 * parse/plan/render. rewriteFiles reads and renders each output into memory on the calling
 * thread and, with fsync and once publishing is measured slow, hands its creation, write,
 * fdatasync, close and rename to a second thread (publish-thread.ts), a bounded number of
 * files at a time: the next files' JavaScript runs while the previous outputs are made
 * durable, many fdatasyncs in flight together. Without fsync, until that thread has
 * started, and if it dies, the calling thread publishes itself (the same synchronous calls
 * as rewriteDicom; see offload for why not the thread without fsync).
 *
 * Same guarantees as rewriteDicom one by one: the same bytes; a temp name beside the
 * target renamed into place only once written (and fdatasynced with the folder synced
 * when fsync is on, the default), removed on error; an error in one file is that file's
 * result (message naming it), the others go on. Memory: at most `inFlight` files and
 * `maxBytesInFlight` input bytes held (buffers reused), whatever the number of files.
 */

export interface RewriteJob {
  input: string;
  /** Output path (may be the input itself: the temp name is renamed over it). */
  output: string;
  /** This file's edits; the batch's `fsync` applies to all files. */
  opts: RewriteOptions;
}

export interface BatchOptions {
  /** fdatasync each output and fsync its folder before the file's result is given (default true). */
  fsync?: boolean;
  /** Files rendered and not yet published, at most (default 16). 1 keeps one publish overlapping the next file's work. */
  inFlight?: number;
  /** Input bytes held for files not yet published, at most (default 64 MiB; one file is always let through). */
  maxBytesInFlight?: number;
  /** Inputs larger than this are rewritten by rewriteDicom itself, streaming, not held in memory (default 16 MiB). */
  memoryLimit?: number;
  /** Filled in as files are published: how many by the second thread, how many by the calling thread (diagnostics, tests). */
  stats?: BatchStats;
  /**
   * 'auto' (default): with fsync, the publishing thread is started once publishing on the
   * calling thread is measured to be slow (the median of a window of files above
   * START_ABOVE_MS) and then takes every file; without fsync it is not used (see offload);
   * 'always': started at once and every file handed to it once it is ready (tests).
   */
  thread?: 'auto' | 'always';
}

export interface BatchStats {
  onThread: number;
  here: number;
  /** The recent average cost of a publish on the calling thread (ms), when one was measured. */
  publishMs?: number;
}

interface Io {
  /** The publishing thread, once started (at once with thread: 'always'). */
  thread: PublishThread | undefined;
  inputs: SharedBuffers;
  scratch: SharedBuffers;
  stats: BatchStats;
  /** Input bytes read and not yet published. */
  bytesHeld: number;
  /** Publish times here (ms) since the start rule last looked, while there is no thread. */
  samples: number[];
  /** The batch's fsync: the thread is only started with it (see offload). */
  fsync: boolean;
}

export type RewriteOutcome =
  | { job: RewriteJob; ok: true; result: RewriteResult }
  | { job: RewriteJob; ok: false; error: Error };

const DEFAULT_IN_FLIGHT = 16;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_MEMORY_LIMIT = 16 * 1024 * 1024;

/**
 * Buffers backed by SharedArrayBuffers, reused: views of them go to the publishing thread
 * without a copy or a transfer, and they return here once the file is published. So the
 * memory of a batch is about (inFlight + 2) inputs, whatever the number of files.
 */
class SharedBuffers {
  private readonly free: Buffer[] = [];
  /** Bytes to ask for when a file's size is not known yet (readWhole: the largest file so far, plus one). */
  guess = 64 * 1024;
  constructor(private readonly keepAtMost: number) {}
  acquire(n: number): Buffer {
    const b = this.free.pop();
    if (b && b.length >= n) return b;
    // Rounded up: files of a batch differ a little in size; one growth serves the next ones.
    return Buffer.from(new SharedArrayBuffer(Math.max(4096, Math.ceil((n * 1.125) / 4096) * 4096)));
  }
  release(b: Buffer): void {
    if (this.free.length < this.keepAtMost) this.free.push(b);
  }
}

/**
 * The output as pieces: bytes given to accept() are copied (they are valid only during
 * the call) one after the other into a shared buffer from `scratch`, sized for the whole
 * output (a piece that would not fit goes into another); keep() pieces (the source's pixel
 * data) are views of the input buffer, which the batch holds until the file is published.
 */
class Parts implements Required<ByteSink> {
  private readonly parts: Uint8Array[] = [];
  /** Buffers taken from `scratch`, to give back. */
  readonly taken: Buffer[] = [];
  private buf: Buffer;
  /** Where the current run of copied bytes starts in `buf`, and where the next copy goes. */
  private start = 0;
  private used = 0;
  constructor(private readonly scratch: SharedBuffers, sizeHint: number) {
    this.buf = scratch.acquire(sizeHint);
    this.taken.push(this.buf);
  }
  accept(b: Uint8Array): void {
    if (this.used + b.length > this.buf.length) {
      this.cut();
      this.buf = this.scratch.acquire(b.length);
      this.taken.push(this.buf);
      this.start = this.used = 0;
    }
    this.buf.set(b, this.used);
    this.used += b.length;
  }
  keep(b: Uint8Array): void {
    this.cut();
    this.parts.push(b);
  }
  /** The pieces in order, all in shared buffers. Call once, at the end. */
  done(): Uint8Array[] {
    this.cut();
    return this.parts;
  }
  private cut(): void {
    if (this.used === this.start) return;
    this.parts.push(this.buf.subarray(this.start, this.used));
    this.start = this.used;
  }
}

/**
 * The output as pieces, for a file published on this thread: a piece that is a view of the
 * source (held until after the publish) is kept by reference, no copy; any other piece (new
 * bytes, or a view of a staging block the writer reuses: deflated files, large outputs) is
 * copied, as a ByteSink must.
 */
class Refs implements Required<ByteSink> {
  readonly parts: Uint8Array[] = [];
  constructor(private readonly source: ArrayBufferLike) {}
  accept(b: Uint8Array): void {
    this.parts.push(b.buffer === this.source ? b : b.slice());
  }
  keep(b: Uint8Array): void {
    this.accept(b);
  }
}

/**
 * Read a whole file (synchronously: from the page cache this is cheaper than pool round
 * trips). Undefined when larger than `limit`. The read asks for a buffer's worth sized
 * after the largest file so far (files of a batch are mostly of one size): a short read is the end
 * of a regular file, so most files take open, one pread, close, and no fstat (which also
 * built a Stats object with four Dates per file). Only a file that fills the buffer is
 * fstat'ed and read on.
 */
function readWhole(file: string, limit: number, pool: SharedBuffers): { buffer: Buffer; bytes: Buffer } | undefined {
  const fd = openSync(file, 'r');
  let buffer: Buffer | undefined = pool.acquire(pool.guess);
  try {
    let got = readSync(fd, buffer, 0, buffer.length, 0);
    if (got === buffer.length) {
      const size = fstatSync(fd).size;
      if (size > limit) {
        pool.release(buffer);
        buffer = undefined;
        return undefined;
      }
      if (size >= buffer.length) {
        // Bigger than guessed: a buffer for it (+1 so the read that finds the end is short).
        const bigger = pool.acquire(size + 1);
        bigger.set(buffer.subarray(0, got));
        pool.release(buffer);
        buffer = bigger;
      }
      for (;;) {
        const n = readSync(fd, buffer, got, buffer.length - got, got);
        if (n === 0) break;
        got += n;
        if (got > limit) {
          // Grew past the limit while being read: leave it to the streaming rewrite.
          pool.release(buffer);
          buffer = undefined;
          return undefined;
        }
        if (got === buffer.length) break;
      }
    }
    pool.guess = Math.max(pool.guess, got + 1);
    return { buffer, bytes: buffer.subarray(0, got) };
  } catch (err) {
    if (buffer) pool.release(buffer);
    throw err;
  } finally {
    closeSync(fd);
  }
}

function named(err: unknown, job: RewriteJob): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  // Parse errors name the input already; a system error names a path (maybe the temp name): say which job it was.
  if (!e.message.includes(job.input)) e.message = `${job.input} -> ${job.output}: ${e.message}`;
  return e;
}

/**
 * Whether to hand this file to the thread. A thread is not free: starting it costs some
 * 40 ms of CPU (a Node worker and its JIT), and each file handed over costs CPU on both
 * sides (messages, a copy of the header pieces, the collector; a 1,000-file batch took
 * 0.1-0.5 s more CPU in all than the calling thread alone), on a machine whose second core
 * is also busy with V8's compiler and collector threads and with other processes. It pays
 * only where a publish mostly waits for the device: with fsync (0.5-2 ms a file on ext4),
 * where the thread keeps many fdatasyncs in flight together. Without fsync a publish is
 * CPU in the kernel (a create: 0.06-0.2 ms, up to 1 ms on ext4 after many deletes), and
 * the thread lost to publishing here in most runs: the 1,000-file bench's rounds with
 * creates at 0.1-0.2 ms took 300-930 ms with the thread against 210-700 ms here, and a
 * measured choice between the two ways (timing each over a window) favoured the thread
 * wrongly, as its backlog drained into the window measured here. So without fsync the
 * calling thread publishes, as rewriteDicom does. With fsync the cost of publishing here is
 * measured (fsync is free on tmpfs), and the thread is started once the median of a
 * window of START_WINDOW files (from the 17th file on, past the slow first creates in a new
 * folder) is above START_ABOVE_MS; from then on it takes every file. A median, not a
 * running average: single slow publishes (5 ms now and then) move an average over the bar.
 */
function offload(io: Io): boolean {
  if (!io.thread && io.samples.length >= START_WINDOW) {
    const slow = median(io.samples) > START_ABOVE_MS;
    io.samples.length = 0;
    if (slow) io.thread = new PublishThread();
    return false;
  }
  return io.thread?.ready ?? false;
}

const START_ABOVE_MS = 0.25;
const START_WINDOW = 32;
/** Publishes not counted by the start rule: the first creates in a new folder are slow on any file system. */
const START_SKIP = 16;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Publish on this thread, timing it (stats.publishMs; with fsync, the samples of the thread's start rule). */
function publishHere(io: Io, output: string, parts: Uint8Array[], fsync: boolean): number {
  const t = performance.now();
  const n = publishPartsSync(output, parts, fsync);
  const ms = performance.now() - t;
  const avg = io.stats.publishMs;
  io.stats.publishMs = avg === undefined ? ms : avg * 0.75 + ms * 0.25;
  io.stats.here++;
  if (io.fsync && !io.thread && io.stats.here > START_SKIP) io.samples.push(ms);
  return n;
}

type Input = { buffer: Buffer; bytes: Buffer };

function failed(job: RewriteJob, err: unknown): RewriteOutcome {
  return { job, ok: false, error: named(err, job) };
}

function letGo(io: Io, input: Input): void {
  io.bytesHeld -= input.bytes.length;
  io.inputs.release(input.buffer);
}

/**
 * Render one job into memory and publish it: the file's outcome, synchronously when it is
 * published here and its visitor answered synchronously (no promise and no async frame per
 * file: in a batch of 1,000 most of this runs in V8's interpreter), else a promise of it.
 */
function runJob(job: RewriteJob, fsync: boolean, memoryLimit: number, io: Io): RewriteOutcome | Promise<RewriteOutcome> {
  let input: Input | undefined;
  try {
    input = readWhole(job.input, memoryLimit, io.inputs);
  } catch (err) {
    return failed(job, err);
  }
  if (!input) return runStreaming(job, fsync);
  io.bytesHeld += input.bytes.length;
  // Decided before rendering: a file published here needs no copy into shared memory.
  if (offload(io)) return runOnThread(job, fsync, input, io);
  // Until the thread is started and ready, after it stopped, and without fsync: here, as rewriteDicom does.
  let handedOn = false;
  try {
    const refs = new Refs(input.bytes.buffer);
    const r = rewriteSourceNow(job.input, refs, { bytes: input.bytes }, job.opts);
    if (r instanceof Promise) {
      handedOn = true;
      return finishHere(job, fsync, input, io, r, refs);
    }
    return { job, ok: true, result: { changed: r.changed, bytesIn: r.bytesIn, bytesOut: publishHere(io, job.output, refs.parts, fsync) } };
  } catch (err) {
    return failed(job, err);
  } finally {
    if (!handedOn) letGo(io, input);
  }
}

/** An input above the memory limit: rewriteDicom streams it. */
async function runStreaming(job: RewriteJob, fsync: boolean): Promise<RewriteOutcome> {
  try {
    return { job, ok: true, result: await rewriteDicom(job.input, job.output, { ...job.opts, fsync }) };
  } catch (err) {
    return failed(job, err);
  }
}

/** A rewrite whose visitor answered with a promise, published here once it settles. */
async function finishHere(job: RewriteJob, fsync: boolean, input: Input, io: Io, rendering: Promise<RewriteResult>, refs: Refs): Promise<RewriteOutcome> {
  try {
    const r = await rendering;
    return { job, ok: true, result: { ...r, bytesOut: publishHere(io, job.output, refs.parts, fsync) } };
  } catch (err) {
    return failed(job, err);
  } finally {
    letGo(io, input);
  }
}

/** Render into shared buffers and publish on the thread. */
async function runOnThread(job: RewriteJob, fsync: boolean, input: Input, io: Io): Promise<RewriteOutcome> {
  // Room for all but the kept pixel data in most files; edits that grow the header more take another buffer.
  const sink = new Parts(io.scratch, Math.min(input.bytes.length, 1 << 20) + 65536);
  try {
    const r = await rewriteSourceNow(job.input, sink, { bytes: input.bytes }, job.opts);
    // Should the thread die with this file in hand, the file thread publishes it from this thread (the bytes are in shared memory).
    const bytesOut = await io.thread!.publish({ tmp: tempNameFor(job.output), target: job.output, parts: sink.done(), fsync });
    io.stats.onThread++;
    return { job, ok: true, result: { ...r, bytesOut } };
  } catch (err) {
    return failed(job, err);
  } finally {
    letGo(io, input);
    for (const b of sink.taken) io.scratch.release(b);
  }
}

/**
 * Rewrite each job's input to its output, yielding each file's outcome in job order.
 * While up to `inFlight` outputs are being written and renamed on the second thread, the next
 * file is read, parsed, planned and rendered. Errors are outcomes, never thrown (except
 * from the job iterable itself). A job must not read a file that an earlier job of the same
 * batch writes (that output may not be published yet when the later input is read);
 * editing files in place (output = input) is fine.
 */
export async function* rewriteFiles(jobs: Iterable<RewriteJob> | AsyncIterable<RewriteJob>, opts: BatchOptions = {}): AsyncGenerator<RewriteOutcome> {
  const fsync = opts.fsync ?? true;
  const inFlight = Math.max(1, opts.inFlight ?? DEFAULT_IN_FLIGHT);
  const maxBytes = opts.maxBytesInFlight ?? DEFAULT_MAX_BYTES;
  const memoryLimit = opts.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
  const io: Io = {
    thread: opts.thread === 'always' ? new PublishThread() : undefined,
    inputs: new SharedBuffers(inFlight + 2),
    scratch: new SharedBuffers(inFlight + 2),
    stats: opts.stats ?? { onThread: 0, here: 0 },
    bytesHeld: 0,
    samples: [],
    fsync,
  };
  const queue: (RewriteOutcome | Promise<RewriteOutcome>)[] = [];
  let sinceTurn = 0;
  try {
    for await (const job of jobs) {
      // The job's synchronous part (read, parse, plan, render) runs now; its publish may continue on the second thread.
      queue.push(runJob(job, fsync, memoryLimit, io));
      // Until the thread has started, files are published here with no turn of the event
      // loop in between: give it one now and then, or its "ready" would never be heard.
      if (io.thread && !io.thread.ready && !io.thread.stopped && ++sinceTurn >= 8) {
        sinceTurn = 0;
        await turn();
      }
      while (queue.length > inFlight || (io.bytesHeld > maxBytes && queue.length > 1)) yield await queue.shift()!;
    }
    while (queue.length > 0) yield await queue.shift()!;
  } finally {
    // The consumer stopped early (break) or the job iterable threw: let what was started finish, so no temp name is left behind.
    await Promise.allSettled(queue);
    await io.thread?.close();
  }
}
