import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { type BufferPool, DirSyncer, writeAndPublish } from './output.js';

/**
 * The file work of a batch on a second thread. Reading an input and creating, writing and
 * renaming an output are kernel work (creating a file on ext4 right after the previous
 * batch's files were deleted costs up to a millisecond: the allocator skips the recently
 * deleted inodes), and in a one-thread batch the calling thread paid it between two files'
 * JavaScript. With an I/O thread the calling thread only parses, edits and checks: inputs
 * are read ahead for it, and the outputs it built in memory are handed over and published
 * there, so the kernel's share runs on the other core.
 *
 * The same code does the same calls in either thread (readHeadSync; writeAndPublish: temp
 * name, write, fdatasync when fsync is on, rename, coalesced folder sync), so durability
 * and atomic publish do not depend on the thread. Bytes are not copied between threads:
 * buffers come from SharedArrayBuffer-backed pools both threads see, and the caller keeps
 * an output's buffer until its write is answered. So a dying I/O thread loses nothing: what
 * it had in hand is done again by the calling thread (reading again, or writing a temp name
 * whole and renaming it: both harmless to repeat). An error (a missing input, disk full)
 * reaches the caller's promise with the same message and code as in the calling thread.
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
  /** The output's parts, in order. Must stay untouched until write() settles. */
  parts: Uint8Array[];
  fsync: boolean;
}

export interface FileIo {
  /** Read a file's head into a buffer of `pool` (give it back with pool.release when done). */
  readHead(r: HeadRequest, pool: BufferPool): Promise<Head>;
  /** Write `parts` under `tmp`, rename to `target`; resolves once published (durably, with fsync). */
  write(job: WriteJob): Promise<void>;
  /** Wait for what is in flight, stop the thread. */
  close(): Promise<void>;
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

/** File work in the calling thread. */
export function localIo(): FileIo {
  const dirs = new DirSyncer();
  return {
    async readHead(r, pool) {
      return readHeadLocal(r, pool);
    },
    write: (j) => writeAndPublish(j.tmp, j.target, j.parts, j.fsync, dirs),
    close: async () => {},
  };
}

function readHeadLocal(r: HeadRequest, pool: BufferPool): Head {
  let taken: Buffer | undefined;
  try {
    const h = readHeadSync(r, undefined, (n) => (taken = pool.acquire(n)));
    return headOf(taken!, h.read, h.want, h.size);
  } catch (err) {
    if (taken) pool.release(taken);
    throw err;
  }
}

/** Requests to the I/O thread (posted in batches: one message per event-loop turn). */
export type IoRequest =
  | ({ op: 'read'; id: number; buf: Uint8Array } & HeadRequest)
  | ({ op: 'write'; id: number } & WriteJob);

/** An answer from the I/O thread. */
export interface IoReply {
  id: number;
  error?: string;
  code?: string;
  /** read: the file's size, the bytes read, how many were wanted, and a bigger buffer if `buf` was too small. */
  size?: number;
  read?: number;
  want?: number;
  grown?: SharedArrayBuffer;
}

function replyError(r: IoReply): Error {
  const err = new Error(r.error) as NodeJS.ErrnoException;
  if (r.code) err.code = r.code;
  return err;
}

interface Pending {
  request: IoRequest;
  resolve: (r: IoReply) => void;
  reject: (e: Error) => void;
  /** Done again in the calling thread if the I/O thread dies with it in hand. */
  redo: () => Promise<IoReply>;
}

/**
 * An I/O thread, started at the second request (a run of one file pays no thread start-up)
 * and used once it has loaded; until then, and if it stops, the calling thread does the work.
 * The pools given to readHead must be shared (BufferPool(..., shared = true)).
 */
export interface ThreadIoOptions {
  onWarning?: (message: string) => void;
  /** Start the thread now, not at the second request (tests). */
  eager?: boolean;
  /** Another worker script (tests: one that dies). */
  workerUrl?: URL;
}

export interface ThreadIo extends FileIo {
  /** Resolves once the thread takes requests (or has stopped: the calling thread does the work then). */
  ready(): Promise<void>;
}

export function threadIo(o: ThreadIoOptions = {}): ThreadIo {
  const local = localIo();
  const pending = new Map<number, Pending>();
  const inFlight = new Set<Promise<unknown>>();
  let worker: Worker | undefined;
  let ready = false;
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
    const w = new Worker(o.workerUrl ?? new URL('./io-worker.js', import.meta.url));
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
    if (!worker && requests >= 2) start();
    return ready && !dead;
  };

  const send = (request: IoRequest, redo: () => Promise<IoReply>): Promise<IoReply> => {
    const p = new Promise<IoReply>((resolve, reject) => {
      pending.set(request.id, { request, resolve, reject, redo });
    });
    worker!.ref();
    batch.push(request);
    // The requests of one turn of the event loop go over in one message.
    if (!flushScheduled) {
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
    async readHead(r: HeadRequest, pool: BufferPool): Promise<Head> {
      if (!useThread()) return readHeadLocal(r, pool);
      const buf = pool.acquire(Math.max(lastWant, 1));
      let reply: IoReply;
      try {
        reply = await send({ op: 'read', id: nextId++, buf, ...r }, async () => {
          const h = readHeadSync(r, buf, (n) => new Uint8Array(new SharedArrayBuffer(n)));
          return { id: 0, size: h.size, read: h.read, want: h.want, grown: h.buffer === buf ? undefined : (h.buffer.buffer as SharedArrayBuffer) };
        });
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
    async write(job: WriteJob): Promise<void> {
      if (!useThread()) return local.write(job);
      await send({ op: 'write', id: nextId++, ...job }, () => local.write(job).then(() => ({ id: 0 })));
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
