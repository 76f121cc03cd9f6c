import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { DirSyncer, openPlain, openTempMakingDir, writeAndPublish } from './publish.js';

/**
 * The file work of a batch on a second thread: the one file thread of the DICOM core, used
 * by rewriteFiles (batch.ts, through publish-thread.ts: publishes only) and by the
 * anonymizer (deid/io-thread.ts: reads inputs ahead and publishes outputs).
 *
 * Reading an input and creating, writing and renaming an output are kernel work (creating
 * a file on ext4 right after the previous batch's files were deleted costs up to a
 * millisecond: the allocator skips the recently deleted inodes), and in a one-thread batch
 * the calling thread paid it between two files' JavaScript. With this thread the calling
 * thread only parses, edits and renders: inputs are read ahead for it, and the outputs it
 * built in memory are handed over and published there, so the kernel's share runs on the
 * other core. One thread, one file after the other: creates in one folder serialize on its
 * lock anyway, so more threads would only contend (measured: docs/dicom-core.md).
 *
 * The same code does the same calls in either thread (readHeadSync; the publish steps of
 * publish.ts: temp name, write, fdatasync when fsync is on, close, rename, folder sync), so
 * durability and atomic publish do not depend on the thread. Bytes are not copied between
 * threads: buffers are SharedArrayBuffer-backed, and the caller keeps an output's buffers
 * until its write is answered. So a dying thread loses nothing: what it had in hand is done
 * again by the calling thread (reading again, or writing a temp name whole and renaming it:
 * both harmless to repeat). An error (a missing input, disk full) reaches the caller's
 * promise with the same message and code as in the calling thread.
 */

/** A file's head: `bytes` (undefined when the file was shorter than its size said) in `buffer` (from the pool). */
export interface Head {
  bytes: Buffer | undefined;
  buffer: Buffer;
  size: number;
}

export interface HeadRequest {
  file: string;
  /** Files up to this size are read whole; of larger ones, the first `headBytes`. */
  wholeLimit: number;
  headBytes: number;
}

export interface WriteJob {
  tmp: string;
  target: string;
  /** The output's parts, in order (in SharedArrayBuffers to go to the thread). Must stay untouched until write() settles. */
  parts: Uint8Array[];
  fsync: boolean;
}

/** Where read buffers come from (deid's BufferPool; shared buffers when a thread reads into them). */
export interface Buffers {
  acquire(size: number): Buffer;
  release(b: Buffer): void;
}

export interface FileIo {
  /** Read a file's head into a buffer of `pool` (give it back with pool.release when done). */
  readHead(r: HeadRequest, pool: Buffers): Promise<Head>;
  /** Write `parts` under `tmp`, rename to `target`; resolves with the bytes written once published (durably, with fsync). */
  write(job: WriteJob): Promise<number>;
  /** Wait for what is in flight, stop the thread. */
  close(): Promise<void>;
}

/**
 * How outputs are published, the same in the thread and in the calling thread.
 * - makeDir: a vanished output folder is made again (the anonymizer's output tree);
 *   without it the write fails with ENOENT.
 * With fsync the fdatasyncs run on the thread pool, many in flight (the filesystem commits
 * them together), and folder syncs are coalesced by a DirSyncer: a write is answered once
 * its fdatasync has completed and a folder fsync begun after its rename has completed.
 */
export interface PublishStyle {
  makeDir: boolean;
}

/** How much of a file of `size` bytes to read. */
function wanted(size: number, r: HeadRequest): number {
  return size <= r.wholeLimit ? size : r.headBytes;
}

/**
 * Read a file's head synchronously into `buf`, or into a new buffer from `alloc` when `buf`
 * is too small. Returns the buffer used, the bytes read and the size.
 */
export function readHeadSync(r: HeadRequest, buf: Uint8Array | undefined, alloc: (n: number) => Uint8Array): { buffer: Uint8Array; read: number; want: number; size: number } {
  const fd = openSync(r.file, 'r');
  try {
    const size = fstatSync(fd).size;
    const want = wanted(size, r);
    const buffer = buf && buf.length >= want ? buf : alloc(want);
    let off = 0;
    while (off < want) {
      const n = readSync(fd, buffer, off, want - off, off);
      if (n === 0) break;
      off += n;
    }
    return { buffer, read: off, want, size };
  } finally {
    closeSync(fd);
  }
}

function headOf(buffer: Buffer, read: number, want: number, size: number): Head {
  return { bytes: read === want ? buffer.subarray(0, want) : undefined, buffer, size };
}

/** Publish one output with `style` in this thread (either thread calls this). Resolves with the bytes written. */
export function publishJob(job: WriteJob, style: PublishStyle, dirs: DirSyncer): Promise<number> {
  return writeAndPublish(job.tmp, job.target, job.parts, job.fsync, dirs, style.makeDir ? openTempMakingDir : openPlain);
}

/** The anonymizer's style (its output tree is made as it goes; many fdatasyncs in flight). */
export const ANONYMIZER_STYLE: PublishStyle = { makeDir: true };

/** File work in the calling thread. */
export function localIo(style: PublishStyle = ANONYMIZER_STYLE): FileIo {
  const dirs = new DirSyncer();
  return {
    async readHead(r, pool) {
      return readHeadLocal(r, pool);
    },
    write: (j) => publishJob(j, style, dirs),
    close: async () => {},
  };
}

function readHeadLocal(r: HeadRequest, pool: Buffers): Head {
  let taken: Buffer | undefined;
  try {
    const h = readHeadSync(r, undefined, (n) => (taken = pool.acquire(n)));
    return headOf(taken!, h.read, h.want, h.size);
  } catch (err) {
    if (taken) pool.release(taken);
    throw err;
  }
}

/** The file thread's workerData: `up`, set to 1 when it takes requests (before it says 'ready'). */
export interface FileWorkerData {
  up: Int32Array;
}

/** Requests to the file thread (posted in batches). */
export type IoRequest =
  | ({ op: 'read'; id: number; buf: Uint8Array } & HeadRequest)
  | ({ op: 'write'; id: number } & WriteJob & PublishStyle);

/** An answer from the file thread. */
export interface IoReply {
  id: number;
  error?: string;
  code?: string;
  syscall?: string;
  path?: string;
  /** write: the bytes written. */
  written?: number;
  /** read: the file's size, the bytes read, how many were wanted, and a bigger buffer if `buf` was too small. */
  size?: number;
  read?: number;
  want?: number;
  grown?: SharedArrayBuffer;
}

/**
 * The size of a buffer made for `size` bytes: rounded up to 16 KB, with 1/32 to spare, so
 * that it also serves the next files of a batch, a few bytes larger. The anonymizer's buffer
 * pools make theirs so, and a buffer the thread makes for a read joins such a pool: made to
 * the byte, the first reads of a batch (before the thread's answers tell their size) left
 * buffers that fitted no later file (1,600 inputs of 983 KB: 172 MB peak RSS against 142).
 */
export function bufferSizeFor(size: number): number {
  return Math.ceil((size + size / BUFFER_HEADROOM) / BUFFER_ROUND) * BUFFER_ROUND;
}

const BUFFER_ROUND = 16 * 1024;
const BUFFER_HEADROOM = 32;

/** Read a head into the caller's shared `buf` (or a new shared buffer when it is too small): the answer to a read, in either thread. */
export function readShared(id: number, r: HeadRequest, buf: Uint8Array): IoReply {
  const h = readHeadSync(r, buf, (n) => new Uint8Array(new SharedArrayBuffer(bufferSizeFor(n))));
  return { id, size: h.size, read: h.read, want: h.want, grown: h.buffer === buf ? undefined : (h.buffer.buffer as SharedArrayBuffer) };
}

function replyError(r: IoReply): Error {
  const err = new Error(r.error) as NodeJS.ErrnoException;
  if (r.code) err.code = r.code;
  if (r.syscall) err.syscall = r.syscall;
  if (r.path) err.path = r.path;
  return err;
}

interface Pending {
  resolve: (r: IoReply) => void;
  reject: (e: Error) => void;
  /** Done again in the calling thread if the thread dies with it in hand. */
  redo: () => Promise<IoReply>;
}

export interface FileThreadOptions {
  /** How outputs are published (default: the anonymizer's). */
  style?: PublishStyle;
  onWarning?: (message: string) => void;
  /** Start the thread now, not at the second request (a run of one file then pays no thread start-up). */
  eager?: boolean;
  /**
   * Requests go over when this many are waiting, and the rest at the end of the event-loop
   * turn (default: only then). A caller that renders many files before it next waits (rewriteFiles) sends 4.
   */
  sendAt?: number;
  /** Requests made before the thread has loaded wait for it (default: the calling thread does them meanwhile). */
  queueUntilReady?: boolean;
  /** Another worker script (tests: one that dies). */
  workerUrl?: URL;
}

export interface FileThread extends FileIo {
  /** Resolves once the thread takes requests (or has stopped: the calling thread does the work then). */
  ready(): Promise<void>;
  /** True while the thread takes requests. */
  isReady(): boolean;
  /** True once the thread died or was closed: from then on the calling thread does the work. */
  isStopped(): boolean;
}

/**
 * The worker script: file-worker.js beside this module. Run from the TypeScript sources (a
 * test runner), there is none beside it: the built one in dist/ is used (a plain Node
 * worker cannot load TypeScript).
 */
function defaultWorkerUrl(): URL {
  if (import.meta.url.endsWith('.ts')) return new URL('../../../dist/lib/dicom/file-worker.js', import.meta.url);
  return new URL('./file-worker.js', import.meta.url);
}

/**
 * The Node options the thread is started with: the calling thread's, without those that
 * only make sense for its own entry (`--input-type`, `-e`/`--eval`, `-p`/`--print` and their
 * code). A Worker inherits execArgv by default, and one started from `node
 * --input-type=module -e ...` died at once ("--input-type can only be used with string
 * input"), so every file was then published on the calling thread after paying for the
 * thread's start.
 */
export function workerExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print' || a === '-pe' || a === '--input-type') {
      k++; // and its argument
      continue;
    }
    if (a.startsWith('--input-type=') || a.startsWith('--eval=') || a.startsWith('--print=')) continue;
    out.push(a);
  }
  return out;
}

/**
 * A worker with the caller's options (less the entry point's). Node refuses some options given
 * explicitly (per-process V8 flags such as --no-opt) but accepts them inherited: then the
 * worker inherits them, and under `-e` dies at once, which its owner handles like any death.
 */
export function newWorker(url: URL, options: Omit<WorkerOptions, 'execArgv'> = {}): Worker {
  try {
    return new Worker(url, { ...options, execArgv: workerExecArgv() });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
    return new Worker(url, options);
  }
}

/**
 * The file thread, started at the second request (or at once with `eager`) and used once it
 * has loaded; until then, and if it stops, the calling thread does the work.
 * The pools given to readHead must be shared (BufferPool(..., shared = true)).
 */
export function fileThread(o: FileThreadOptions = {}): FileThread {
  const style = o.style ?? ANONYMIZER_STYLE;
  const local = localIo(style);
  const pending = new Map<number, Pending>();
  const inFlight = new Set<Promise<unknown>>();
  const sendAt = o.sendAt ?? Infinity;
  let worker: Worker | undefined;
  let ready = false;
  // Set by the thread as it says 'ready' (file-worker.ts). The message only arrives when this
  // thread's event loop next turns, and a batch's first files ran in one long turn of promise
  // callbacks: the thread was up some 40 ms after its start, but known to be only 150-200 ms
  // later, the calling thread reading and publishing 50-100 files itself meanwhile.
  const up = new Int32Array(new SharedArrayBuffer(4));
  const isUp = (): boolean => !dead && (ready || Atomics.load(up, 0) === 1);
  let dead = false;
  let requests = 0;
  let nextId = 1;
  let batch: IoRequest[] = [];
  let flushScheduled = false;
  // Most batches are files of one size: the next read gets a buffer that fits the last one.
  let lastWant = 0;
  let started: () => void = () => {};
  const readyPromise = new Promise<void>((resolve) => (started = resolve));

  const flush = (): void => {
    flushScheduled = false;
    if (batch.length === 0 || !worker || dead) return;
    const b = batch;
    batch = [];
    worker.postMessage(b);
  };

  const start = (): void => {
    let w: Worker;
    try {
      w = newWorker(o.workerUrl ?? defaultWorkerUrl(), { workerData: { up } satisfies FileWorkerData });
    } catch (err) {
      // A thread that cannot start (resource limits): the calling thread does the work, as
      // after a thread that stopped.
      dead = true;
      started();
      o.onWarning?.(`file I/O thread could not start (${(err as Error).message}); its work is done in the main thread`);
      return;
    }
    worker = w;
    // An idle thread does not keep the process alive; a request in flight refs it.
    w.unref();
    w.on('message', (m: 'ready' | IoReply[]) => {
      if (m === 'ready') {
        ready = true;
        started();
        return;
      }
      for (const r of m) {
        const p = pending.get(r.id);
        if (!p) continue;
        pending.delete(r.id);
        if (r.error !== undefined) p.reject(replyError(r));
        else p.resolve(r);
      }
      if (pending.size === 0) w.unref();
    });
    const died = (why: string): void => {
      if (dead) return;
      dead = true;
      ready = false;
      started();
      const left = [...pending.values()];
      pending.clear();
      batch = [];
      if (left.length > 0) o.onWarning?.(`file I/O thread stopped (${why}); its work is done in the main thread`);
      for (const p of left) p.redo().then(p.resolve, p.reject);
    };
    w.on('error', (err) => died(err.message));
    w.on('exit', (code) => died(`exit code ${code}`));
  };

  const useThread = (): boolean => {
    requests++;
    if (!worker && !dead && requests >= 2) start();
    return isUp() || (o.queueUntilReady === true && worker !== undefined && !dead);
  };

  const send = (request: IoRequest, redo: () => Promise<IoReply>): Promise<IoReply> => {
    const p = new Promise<IoReply>((resolve, reject) => {
      pending.set(request.id, { resolve, reject, redo });
    });
    worker!.ref();
    batch.push(request);
    // The requests of one turn of the event loop go over in one message (or `sendAt` at a time).
    if (batch.length >= sendAt) flush();
    else if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
    inFlight.add(p);
    const forget = (): void => void inFlight.delete(p);
    p.then(forget, forget);
    return p;
  };

  if (o.eager) start();

  return {
    ready: () => readyPromise,
    isReady: isUp,
    isStopped: () => dead,
    async readHead(r: HeadRequest, pool: Buffers): Promise<Head> {
      if (!useThread()) return readHeadLocal(r, pool);
      const buf = pool.acquire(Math.max(lastWant, 1));
      let reply: IoReply;
      try {
        reply = await send({ op: 'read', id: nextId++, buf, ...r }, async () => readShared(0, r, buf));
      } catch (err) {
        pool.release(buf);
        throw err;
      }
      let buffer = buf;
      if (reply.grown) {
        pool.release(buf);
        buffer = Buffer.from(reply.grown);
      }
      lastWant = reply.want!;
      return headOf(buffer, reply.read!, reply.want!, reply.size!);
    },
    async write(job: WriteJob): Promise<number> {
      if (!useThread()) return local.write(job);
      const reply = await send({ op: 'write', id: nextId++, ...job, ...style }, () => local.write(job).then((written) => ({ id: 0, written })));
      return reply.written ?? 0;
    },
    async close(): Promise<void> {
      flush();
      await Promise.allSettled([...inFlight]);
      if (worker && !dead) {
        dead = true;
        await worker.terminate();
      }
    },
  };
}
