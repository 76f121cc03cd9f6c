import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import type { SiteLayout } from '../site/layout.js';

/**
 * What the site's folders say about studies: which exist (archive/<Study> from the receiver,
 * raw/<Study> from fiona-classify) and when anything last arrived in them. Folder mtimes
 * change when an entry is added, so the newest mtime over a study's folders and series
 * folders is its last arrival, without reading every file.
 */

async function dirNames(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

async function mtimeMs(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Study UIDs that have a folder in archive/ or raw/ (only path-safe UIDs). */
export async function listStudies(layout: SiteLayout): Promise<string[]> {
  const names = new Set([...(await dirNames(layout.archive)), ...(await dirNames(layout.raw))]);
  return [...names].filter(isPathSafeUid).sort();
}

/** Series UIDs of a study, from archive/<Study>/ and raw/<Study>/ folders. */
export async function listSeries(layout: SiteLayout, study: string): Promise<string[]> {
  const names = new Set([...(await dirNames(join(layout.archive, study))), ...(await dirNames(join(layout.raw, study)))]);
  return [...names].filter(isPathSafeUid).sort();
}

export interface StudyActivity {
  /** Newest mtime (ms since epoch) of the study's folders and series folders; undefined when none exist. */
  newest?: number;
  /** Oldest of the same, an estimate of the first arrival. */
  oldest?: number;
}

export async function studyActivity(layout: SiteLayout, study: string): Promise<StudyActivity> {
  const dirs = [join(layout.archive, study), join(layout.raw, study)];
  for (const s of await listSeries(layout, study)) dirs.push(join(layout.archive, study, s), join(layout.raw, study, s));
  let newest: number | undefined;
  let oldest: number | undefined;
  for (const d of dirs) {
    const m = await mtimeMs(d);
    if (m === undefined) continue;
    newest = newest === undefined ? m : Math.max(newest, m);
    oldest = oldest === undefined ? m : Math.min(oldest, m);
  }
  return { newest, oldest };
}

