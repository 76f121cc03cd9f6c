import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../site/atomic.js';
import { countEntries, readTextIfExists } from '../site/if-exists.js';
import { seriesJsonPath, type SiteLayout } from '../site/layout.js';
import { withLock } from '../site/lock.js';
import { mergeSeries, type SeriesDelta, type SeriesJson } from './series.js';
import type { RuleSet } from './types.js';

/**
 * Reading and writing raw/<Study>/<Series>.json under a per-series lock. A flush reads what
 * is on disk (another fiona-classify may have written since), merges this process's delta
 * (unions and minima: order does not matter), counts the links for NumFiles, and writes
 * atomically. So concurrent writers never lose an update, and a crash leaves the old file.
 */
function lockPath(layout: SiteLayout, study: string, series: string): string {
  return join(layout.raw, study, `.${series}.lock`);
}

export interface ReadResult {
  json?: SeriesJson;
  /** Set when the file existed but was not valid JSON (it was moved aside to this name). */
  corruptMovedTo?: string;
}

/** The series JSON on disk; a corrupt one is moved aside (kept for inspection), not trusted. */
export async function readSeriesJson(path: string): Promise<ReadResult> {
  const text = await readTextIfExists(path);
  if (text === undefined) return {};
  try {
    const v = JSON.parse(text) as SeriesJson;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return { json: v };
  } catch {
    // fall through
  }
  const aside = `${path}.corrupt-${Date.now()}`;
  await rename(path, aside);
  return { corruptMovedTo: aside };
}

export interface FlushResult {
  json: SeriesJson;
  corruptMovedTo?: string;
}

/**
 * Merge `delta` into the series JSON on disk under the lock. `fresh` supplies the fields of
 * a series that has no JSON yet (the first instance this process saw). The lock is waited
 * for (with backoff, up to withLock's 30 s) while another live process holds it.
 */
export async function flushSeries(
  layout: SiteLayout,
  study: string,
  series: string,
  fresh: SeriesJson,
  delta: SeriesDelta,
  rules: RuleSet,
): Promise<FlushResult> {
  const path = seriesJsonPath(layout, study, series);
  return withLock(lockPath(layout, study, series), async () => {
    const { json: onDisk, corruptMovedTo } = await readSeriesJson(path);
    // Instance links in raw/<Study>/<Series>/ (hidden temp names excluded).
    const numFiles = await countEntries(join(layout.raw, study, series));
    const json = mergeSeries(onDisk ?? fresh, delta, rules, numFiles);
    await writeJsonAtomic(path, json);
    return corruptMovedTo ? { json, corruptMovedTo } : { json };
  });
}
