/**
 * Age of the newest arrival. The receiver writes every instance into <site>/.arrived/ and
 * renames it out into archive/, so the folder's mtime changes with each arrival: reading it
 * costs one stat, however large the archive.
 */
import { stat } from 'node:fs/promises';
import { siteLayout } from '../site/layout.js';
import type { CheckResult, HealthState } from './types.js';

export async function newestArrival(site: string): Promise<number | undefined> {
  const l = siteLayout(site);
  let newest: number | undefined;
  for (const p of [l.arrived, l.archive]) {
    try {
      const m = (await stat(p)).mtimeMs;
      newest = newest === undefined ? m : Math.max(newest, m);
    } catch {
      // not there (yet)
    }
  }
  return newest;
}

export async function checkArrival(site: string, warnMs?: number, critMs?: number, now = Date.now()): Promise<CheckResult> {
  const t = await newestArrival(site);
  if (t === undefined) return { name: 'arrival', state: 'unknown', message: `no arrivals folder in ${site}`, data: {} };
  const ageMs = now - t;
  const state: HealthState = critMs !== undefined && ageMs >= critMs ? 'critical' : warnMs !== undefined && ageMs >= warnMs ? 'warning' : 'ok';
  const mins = ageMs / 60_000;
  const age = mins < 120 ? `${Math.round(mins)} min` : `${(mins / 60).toFixed(1)} h`;
  return { name: 'arrival', state, message: `newest arrival ${age} ago (${new Date(t).toISOString()})`, data: { newest: new Date(t).toISOString(), ageSeconds: Math.round(ageMs / 1000) } };
}
