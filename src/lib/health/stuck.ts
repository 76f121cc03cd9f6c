/**
 * Stuck work: a lock held longer than the limit (a run that hangs, or one killed on another
 * host), and transfers recorded as running for longer than the limit.
 */
import { readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processAlive, readLockInfo } from '../site/lock.js';
import { readJsonObjects } from '../site/state-json.js';
import type { CheckResult } from './types.js';

export interface StuckItem {
  path: string;
  ageMs: number;
  pid?: number;
  alive?: boolean;
  what: 'lock' | 'transfer';
}

/** Lock files (`*.lock`, `lock`) under dir, a few levels deep. */
async function findLocks(dir: string, depth = 4): Promise<string[]> {
  if (depth < 0) return [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await findLocks(p, depth - 1)));
    else if (e.isFile() && (e.name === 'lock' || e.name.endsWith('.lock'))) out.push(p);
  }
  return out;
}

export async function findStuck(dirs: string[], limitMs: number, now = Date.now()): Promise<StuckItem[]> {
  const out: StuckItem[] = [];
  for (const dir of dirs) {
    for (const lock of await findLocks(dir)) {
      let mtime: number;
      try {
        mtime = (await stat(lock)).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      const ageMs = now - mtime;
      if (ageMs < limitMs) continue;
      const info = await readLockInfo(lock);
      const sameHost = info?.host === hostname();
      out.push({ path: lock, ageMs, pid: info?.pid, alive: info && sameHost ? processAlive(info.pid) : undefined, what: 'lock' });
    }
    // fiona-transfer's results: status "running" with an old start.
    for (const { path, value } of await readJsonObjects(join(dir, 'transfers'))) {
      const r = value as { status?: string; started?: string; pid?: number };
      if (r.status !== 'running' || !r.started) continue;
      const ageMs = now - Date.parse(r.started);
      if (ageMs >= limitMs) out.push({ path, ageMs, pid: r.pid, alive: r.pid ? processAlive(r.pid) : undefined, what: 'transfer' });
    }
  }
  return out;
}

export async function checkStuck(dirs: string[], limitMs: number): Promise<CheckResult> {
  const items = await findStuck(dirs, limitMs);
  const describe = (s: StuckItem): string =>
    `${s.what} ${s.path} for ${Math.round(s.ageMs / 60_000)} min${s.pid ? ` (pid ${s.pid}${s.alive === false ? ', gone' : ''})` : ''}`;
  return {
    name: 'stuck',
    state: items.length > 0 ? 'warning' : 'ok',
    message: items.length > 0 ? `stuck: ${items.map(describe).join('; ')}` : `no lock or transfer older than ${Math.round(limitMs / 60_000)} min`,
    data: { items },
  };
}
