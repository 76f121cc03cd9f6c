import { closeSync, constants, fdatasync, fdatasyncSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync, writevSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { dirSyncUnsupported, fsyncDir } from '../site/fsync-dir.js';

/**
 * The publish steps, one copy for every caller and thread: create a temp name beside the
 * target, write the output's parts, [fdatasync], close, rename. On an error the temp name
 * is removed and nothing appears under the target. Folder syncs are the caller's (each
 * caller coalesces them its own way: DirSyncer, or once per group of replies).
 * Used by rewriteDicom (write.ts), the anonymizer (deid/output.ts) and the file thread.
 */

/** How to create the temp name (default: open it; openTempMakingDir also remakes a vanished folder). */
export type OpenTemp = (tmp: string) => number;

/** Create `tmp` for writing (its folder must exist). */
export const openPlain: OpenTemp = (tmp) => openSync(tmp, 'w', 0o644);

/** Pieces per writev call (IOV_MAX on Linux is 1024). */
const IOV_RUN = 512;

/** writev all the parts (in IOV_MAX-sized runs, resuming after a short write). */
function writeParts(fd: number, parts: readonly Uint8Array[]): number {
  let total = 0;
  let k = 0;
  while (k < parts.length) {
    const run = parts.slice(k, k + IOV_RUN);
    let n = writevSync(fd, run);
    total += n;
    // A short write (rare: a signal, a full disk about to fail): finish this run piece by piece.
    for (const p of run) {
      if (n >= p.length) {
        n -= p.length;
        continue;
      }
      let off = n;
      n = 0;
      while (off < p.length) {
        const w = writeSync(fd, p, off, p.length - off);
        off += w;
        total += w;
      }
    }
    k += IOV_RUN;
  }
  return total;
}

/** Close a temp file whose writing failed and remove it: nothing appears under the final name. */
export function abandonTemp(fd: number, tmp: string): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
  rmSync(tmp, { force: true });
}

/** Create `tmp` and write `parts` into it; on an error the temp name is gone. Returns the open fd and the bytes written. */
function writeTemp(tmp: string, parts: readonly Uint8Array[], open: OpenTemp = openPlain): { fd: number; written: number } {
  const fd = open(tmp);
  try {
    return { fd, written: writeParts(fd, parts) };
  } catch (err) {
    abandonTemp(fd, tmp);
    throw err;
  }
}

/** A written temp file into place: [fdatasync], close, rename; on an error the temp name is removed. No folder sync. */
export function finishTempSync(fd: number, tmp: string, target: string, fsync: boolean): void {
  try {
    // fdatasync: the data and the size; the rename is made durable by the caller's folder fsync.
    if (fsync) fdatasyncSync(fd);
    closeSync(fd);
  } catch (err) {
    abandonTemp(fd, tmp);
    throw err;
  }
  renameOrRemove(tmp, target);
}

function renameOrRemove(tmp: string, target: string): void {
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** The publish steps, synchronously, without the folder sync. Returns the bytes written. */
export function publishTempPartsSync(tmp: string, target: string, parts: readonly Uint8Array[], fsync: boolean, open?: OpenTemp): number {
  const { fd, written } = writeTemp(tmp, parts, open);
  finishTempSync(fd, tmp, target, fsync);
  return written;
}

/** The publish steps and, with fsync, the folder's sync, all synchronously. Returns the bytes written. */
export function publishSync(tmp: string, target: string, parts: readonly Uint8Array[], fsync: boolean, open?: OpenTemp): number {
  const written = publishTempPartsSync(tmp, target, parts, fsync, open);
  if (fsync) fsyncDirSync(dirname(target));
  return written;
}

/** fsync a folder (the renames in it durable), synchronously. */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch (err) {
    if (!dirSyncUnsupported(err)) throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

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
export const openTempMakingDir: OpenTemp = (tmp) => {
  try {
    return openSync(tmp, 'w', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    madeDirs.delete(dirname(tmp));
    mkdirSync(dirname(tmp), { recursive: true });
    return openSync(tmp, 'w', 0o644);
  }
};

/**
 * Write bytes to `tmp` (small files: synchronous writes cost far less than a round trip
 * through the thread pool each), fdatasync on the thread pool (many in flight at once, so
 * the filesystem commits them together), rename to `target`, and sync the folder through
 * `dirs` (once for all the renames that arrived while the previous folder sync ran).
 * `open` creates the temp name (default: the folder is remade if it vanished). Returns the bytes written.
 */
export async function writeAndPublish(tmp: string, target: string, parts: readonly Uint8Array[], fsync: boolean, dirs?: DirSyncer, open: OpenTemp = openTempMakingDir): Promise<number> {
  // Without fsync: all synchronous calls.
  if (!fsync) return publishTempPartsSync(tmp, target, parts, false, open);
  const { fd, written } = writeTemp(tmp, parts, open);
  try {
    await syncData(fd);
  } catch (err) {
    abandonTemp(fd, tmp);
    throw err;
  }
  finishTempSync(fd, tmp, target, false);
  await syncDirOf(target, dirs);
  return written;
}

/** Rename a finished temp file into place and make the rename durable. */
export async function publishTemp(tmp: string, target: string, fsync: boolean, dirs?: DirSyncer): Promise<void> {
  renameOrRemove(tmp, target);
  if (fsync) await syncDirOf(target, dirs);
}

function syncDirOf(target: string, dirs: DirSyncer | undefined): Promise<void> {
  return dirs ? dirs.sync(dirname(target)) : fsyncDir(dirname(target));
}
