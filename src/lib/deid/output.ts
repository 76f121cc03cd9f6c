import { closeSync, fdatasync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ByteSink } from '../dicom/write.js';
import { fsyncDir } from '../site/atomic.js';

/**
 * Writing outputs durably without paying a full disk flush per file in sequence: each file
 * is written under a temp name and fsynced (many in flight at once, so the filesystem
 * commits them together), then renamed; the folder is fsynced once for all the renames
 * that arrived while the previous folder sync ran. A crash leaves a finished file or no
 * file, never half of one.
 */

/** Coalesces folder fsyncs: every caller waits for a sync that started after its rename. */
export class DirSyncer {
  private readonly pending = new Map<string, Promise<void>>();

  sync(dir: string): Promise<void> {
    const waiting = this.pending.get(dir);
    if (waiting) return waiting;
    const p = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      // Callers from now on need a new sync (their rename may come after this one started).
      this.pending.delete(dir);
      await fsyncDir(dir);
    });
    this.pending.set(dir, p);
    return p;
  }
}

/** fdatasync on the thread pool: the data and the size; the rename is made durable by the folder sync. */
function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

const madeDirs = new Set<string>();

/** mkdir -p, remembered (a batch writes thousands of files into a few folders). */
export async function ensureDir(dir: string): Promise<void> {
  if (madeDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  if (madeDirs.size > 10_000) madeDirs.clear();
  madeDirs.add(dir);
}

/** Create `tmp` for writing; its folder is made again if it went away since (another run cleaned up). */
function openTemp(tmp: string): number {
  try {
    return openSync(tmp, 'w', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    madeDirs.delete(dirname(tmp));
    mkdirSync(dirname(tmp), { recursive: true });
    return openSync(tmp, 'w', 0o644);
  }
}

function writeAll(fd: number, parts: readonly Uint8Array[]): void {
  for (const b of parts) {
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  }
}

function renameOrRemove(tmp: string, target: string): void {
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** writeAndPublish without fsync: all synchronous calls (in whichever thread calls it). */
export function writeAndPublishSync(tmp: string, target: string, parts: readonly Uint8Array[]): void {
  const fd = openTemp(tmp);
  try {
    writeAll(fd, parts);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameOrRemove(tmp, target);
}

/**
 * Write bytes to `tmp` (small files: synchronous writes cost far less than a round trip
 * through the thread pool each), fsync, and rename to `target`.
 */
export async function writeAndPublish(tmp: string, target: string, parts: readonly Uint8Array[], fsync: boolean, dirs?: DirSyncer): Promise<void> {
  if (!fsync) return writeAndPublishSync(tmp, target, parts);
  const fd = openTemp(tmp);
  try {
    writeAll(fd, parts);
    await syncData(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  await publishTemp(tmp, target, fsync, dirs);
}

/** Rename a finished temp file into place and make the rename durable. */
export async function publishTemp(tmp: string, target: string, fsync: boolean, dirs?: DirSyncer): Promise<void> {
  renameOrRemove(tmp, target);
  if (fsync) await (dirs ? dirs.sync(dirname(target)) : fsyncDir(dirname(target)));
}

/**
 * Buffers reused from file to file. A batch of thousands of small files allocating a fresh
 * buffer per file leaves garbage outside the JavaScript heap faster than the collector looks
 * at it (hundreds of MB); with a pool, memory is the buffers of the files in flight.
 */
const ROUND = 16 * 1024;

export class BufferPool {
  private readonly free: Buffer[] = [];
  /**
   * `shared`: buffers over SharedArrayBuffers, which another thread (the output writer) sees
   * without a copy when they are posted to it.
   */
  constructor(
    private readonly minSize: number,
    private readonly keep = 32,
    private readonly shared = false,
  ) {}

  acquire(size: number): Buffer {
    for (let k = this.free.length - 1; k >= 0; k--) {
      if (this.free[k]!.length >= size) return this.free.splice(k, 1)[0]!;
    }
    // Rounded up: files of a batch differ by a few bytes, and a buffer sized to one exactly
    // would not serve the next one a little larger (a new allocation per file, the old one
    // left to a collector that, in an I/O thread which allocates little, seldom runs).
    const n = Math.ceil(Math.max(size, this.minSize) / ROUND) * ROUND;
    return this.shared ? Buffer.from(new SharedArrayBuffer(n)) : Buffer.allocUnsafe(n);
  }

  release(b: Buffer): void {
    if (this.free.length < this.keep) {
      this.free.push(b);
      return;
    }
    // Full: keep the larger buffers (small ones left from the first files would otherwise
    // crowd out the ones the batch needs, and every file would allocate again).
    let smallest = 0;
    for (let k = 1; k < this.free.length; k++) if (this.free[k]!.length < this.free[smallest]!.length) smallest = k;
    if (this.free[smallest]!.length < b.length) this.free[smallest] = b;
  }
}

/**
 * The core's synchronous byte sink, copying what it is given into one pooled buffer (for
 * outputs small enough to check in memory). Copying is not optional for accept(): the
 * pieces may be views of a block the core reuses for the next file. What comes through
 * keep() (the pixel data value, a view of the caller's input buffer, valid while the
 * caller holds it) is kept by reference: the output is then its parts, not one buffer.
 * Call release() when the bytes are no longer needed.
 */
export class MemorySink implements ByteSink {
  private buf: Buffer;
  /** Bytes copied into buf. */
  private used = 0;
  /** Pieces kept by reference, and where in buf's bytes they go. */
  private readonly kept: Array<{ at: number; bytes: Uint8Array }> = [];
  /** The output's length (copied and kept). */
  size = 0;

  /** `expected`: about how many bytes will come (the input's size), to allocate once. */
  constructor(
    private readonly pool: BufferPool,
    expected: number,
  ) {
    this.buf = pool.acquire(expected + 16 * 1024);
  }

  accept(chunk: Uint8Array): void {
    if (this.used + chunk.length > this.buf.length) {
      const bigger = this.pool.acquire(Math.max(this.buf.length * 2, this.used + chunk.length));
      this.buf.copy(bigger, 0, 0, this.used);
      this.pool.release(this.buf);
      this.buf = bigger;
    }
    this.buf.set(chunk, this.used);
    this.used += chunk.length;
    this.size += chunk.length;
  }

  keep(bytes: Uint8Array): void {
    this.kept.push({ at: this.used, bytes });
    this.size += bytes.length;
  }

  /**
   * The output in order: views of the pooled buffer and the pieces kept by reference (valid
   * until release(), and while the kept pieces' owner holds them). One part when nothing was kept.
   */
  parts(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let from = 0;
    for (const k of this.kept) {
      out.push(this.buf.subarray(from, k.at), k.bytes);
      from = k.at;
    }
    out.push(this.buf.subarray(from, this.used));
    return out;
  }

  release(): void {
    this.pool.release(this.buf);
  }
}
