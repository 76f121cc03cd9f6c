/** Queue depths: outboxes (and their failed/), the site's transfer queue, any other folders named. */
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { jsonFileNames } from '../site/state-json.js';
import { isUnfinishedName } from '../transport/files.js';
import type { CheckResult, HealthState } from './types.js';

export interface QueueLimits {
  warn: number;
  crit: number;
}

/** Items waiting in a folder: visible entries, not unfinished writes, .md5 companions not counted twice. */
export async function countItems(dir: string, opts: { ignore?: (name: string) => boolean } = {}): Promise<number | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const visible = names.filter((n) => !isUnfinishedName(n) && !opts.ignore?.(n));
  const set = new Set(visible);
  return visible.filter((n) => !(n.endsWith('.md5') && set.has(n.slice(0, -4)))).length;
}

function depthState(n: number, limits: QueueLimits): HealthState {
  return n >= limits.crit ? 'critical' : n >= limits.warn ? 'warning' : 'ok';
}

export async function checkQueue(name: string, dir: string, limits: QueueLimits): Promise<CheckResult> {
  const n = await countItems(dir);
  if (n === undefined) return { name: `queue:${name}`, state: 'unknown', message: `${name}: cannot read ${dir}`, data: { dir } };
  return { name: `queue:${name}`, state: depthState(n, limits), message: `${name}: ${n} waiting in ${dir}`, data: { dir, items: n } };
}

/** Items fiona-send gave up on (outbox's sibling failed/): each needs a person. */
export async function checkFailed(name: string, dir: string): Promise<CheckResult | undefined> {
  const n = await countItems(dir, { ignore: (f) => f.endsWith('.reason.json') });
  if (n === undefined) return undefined;
  return { name: `failed:${name}`, state: n > 0 ? 'warning' : 'ok', message: `${name}: ${n} undeliverable in ${dir}`, data: { dir, items: n } };
}

/** Outbox queue plus its failed/ folder (fiona-send's default layout). */
export async function checkOutbox(dir: string, limits: QueueLimits): Promise<CheckResult[]> {
  const name = `outbox ${basename(dir)}`;
  const out = [await checkQueue(name, dir, limits)];
  const failed = await checkFailed(name, join(dirname(dir), 'failed'));
  if (failed) out.push(failed);
  return out;
}

/** fiona-transfer's queue in the site: state/requests/*.json queued, state/requests/failed/ given up. */
export async function checkTransferQueue(stateDir: string, limits: QueueLimits): Promise<CheckResult[]> {
  const dir = join(stateDir, 'requests');
  const queued = (await jsonFileNames(dir))?.length;
  if (queued === undefined) return [];
  const failed = (await jsonFileNames(join(dir, 'failed')))?.length ?? 0;
  return [
    { name: 'queue:transfers', state: depthState(queued, limits), message: `transfers: ${queued} queued`, data: { dir, items: queued } },
    { name: 'failed:transfers', state: failed > 0 ? 'warning' : 'ok', message: `transfers: ${failed} given up`, data: { dir: join(dir, 'failed'), items: failed } },
  ];
}
