import { tryLock } from '../site/lock.js';

export class LockTimeoutError extends Error {}

/**
 * Run fn while holding a short lock (a pid lock file, see site/lock.ts), waiting for it up
 * to timeoutMs. For brief read-modify-write steps shared by concurrent runs (cron, pipes).
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
