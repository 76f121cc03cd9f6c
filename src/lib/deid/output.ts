import { closeSync, fsync as fsyncCb, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
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

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsyncCb(fd, (err) => (err ? reject(err) : resolve())));
}

const madeDirs = new Set<string>();

/** mkdir -p, remembered (a batch writes thousands of files into a few folders). */
export async function ensureDir(dir: string): Promise<void> {
  if (madeDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  if (madeDirs.size > 10_000) madeDirs.clear();
  madeDirs.add(dir);
}

/**
 * Write bytes to `tmp` (small files: synchronous writes cost far less than a round trip
 * through the thread pool each), fsync, and rename to `target`.
 */
export async function writeAndPublish(tmp: string, target: string, parts: readonly Uint8Array[], fsync: boolean, dirs?: DirSyncer): Promise<void> {
  let fd: number;
  try {
    fd = openSync(tmp, 'w', 0o644);
  } catch (err) {
    // The folder went away since it was made (another run cleaned up): make it again, once.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    madeDirs.delete(dirname(tmp));
    await ensureDir(dirname(tmp));
    fd = openSync(tmp, 'w', 0o644);
  }
  try {
    for (const b of parts) {
      let off = 0;
      while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    }
    if (fsync) await fsyncFd(fd);
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
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (fsync) await (dirs ? dirs.sync(dirname(target)) : fsyncDir(dirname(target)));
}

/** A writable that keeps what is written in memory (for outputs small enough to check there). */
export class MemorySink extends Writable {
  readonly chunks: Buffer[] = [];
  size = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    cb();
  }

  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }
}
