/** Free space of the file system holding the site, against thresholds in percent or bytes. */
import { statfs } from 'node:fs/promises';
import type { CheckResult } from './types.js';

/** A threshold: '20%' of the file system, or an absolute size ('50G', '500M', bytes). */
export interface Threshold {
  percent?: number;
  bytes?: number;
}

export function parseThreshold(text: string): Threshold {
  const t = text.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct) {
    const p = Number(pct[1]);
    if (p < 0 || p > 100) throw new Error(`${text}: a percentage is 0..100`);
    return { percent: p };
  }
  const size = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)i?[bB]?$/.exec(t);
  if (!size) throw new Error(`${text}: not a size (e.g. 20%, 50G, 500M)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[size[2]!.toLowerCase()] ?? 1;
  return { bytes: Math.round(Number(size[1]) * mult) };
}

/**
 * Is at least the threshold free? A file system that reports no size has 0% free (as the
 * disk check's message says). Shared by fiona-heartbeat's alarms and fiona-cleanup's target.
 */
export function meetsThreshold(freeBytes: number, totalBytes: number, t: Threshold): boolean {
  if (t.percent !== undefined) return totalBytes > 0 && (freeBytes / totalBytes) * 100 >= t.percent;
  return freeBytes >= (t.bytes ?? 0);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export async function diskUsage(path: string): Promise<{ free: number; total: number }> {
  const s = await statfs(path);
  // bavail: what an unprivileged writer can still use (the receiver does not run as root).
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

export async function checkDisk(path: string, warn: Threshold, crit: Threshold): Promise<CheckResult> {
  const { free, total } = await diskUsage(path);
  const pct = total > 0 ? (free / total) * 100 : 0;
  const state = !meetsThreshold(free, total, crit) ? 'critical' : !meetsThreshold(free, total, warn) ? 'warning' : 'ok';
  return {
    name: 'disk',
    state,
    message: `${formatBytes(free)} free of ${formatBytes(total)} (${pct.toFixed(1)}%) on ${path}`,
    data: { path, freeBytes: free, totalBytes: total, freePercent: Math.round(pct * 10) / 10 },
  };
}
