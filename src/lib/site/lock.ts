import { hostname } from 'node:os';
import { open, readFile, rm, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * A lock file holding the owner's pid and host. Written by hand rather than with
 * proper-lockfile: that library judges staleness by mtime, so a run killed with -9 blocks
 * cron for the stale period; here a lock whose pid is gone (same host) is taken over at once.
 */
export interface Lock {
  path: string;
  release(): Promise<void>;
}

export interface LockInfo {
  pid: number;
  host: string;
  time: string;
}

export async function readLockInfo(path: string): Promise<LockInfo | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
}

/** Whether a process of this host is alive (EPERM: alive, not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Try to take the lock; undefined when a live process holds it. */
export async function tryLock(path: string): Promise<Lock | undefined> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      const info: LockInfo = { pid: process.pid, host: hostname(), time: new Date().toISOString() };
      await fh.writeFile(JSON.stringify(info));
      await fh.sync();
      await fh.close();
      return {
        path,
        release: async () => {
          const now = await readLockInfo(path);
          if (now?.pid === process.pid) await rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await readLockInfo(path);
      const stale = holder === undefined
        ? false
        : holder.host === hostname() && !processAlive(holder.pid);
      if (!stale) {
        if (holder === undefined) {
          // Being written right now, or garbage; wait a moment before judging.
          await new Promise((r) => setTimeout(r, 50));
          const again = await readLockInfo(path);
          if (again !== undefined) return undefined;
          await rm(path, { force: true });
          continue;
        }
        return undefined;
      }
      await rm(path, { force: true });
    }
  }
  return undefined;
}

export class LockTimeoutError extends Error {}

/**
 * Run fn while holding a short lock, waiting for it (with backoff) up to timeoutMs. For brief
 * read-modify-write steps shared by concurrent runs (cron, pipes).
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let wait = 5;
  for (;;) {
    const lock = await tryLock(path);
    if (lock) {
      try {
        return await fn();
      } finally {
        await lock.release();
      }
    }
    if (Date.now() > until) throw new LockTimeoutError(`${path} is held by another process for more than ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 200);
  }
}
