/**
 * fiona-cleanup: remove studies older than the limit that may go (policy.ts), oldest first,
 * until the free-space target holds (or all of them, without a target).
 */
import { join } from 'node:path';
import { diskUsage, meetsThreshold, type Threshold } from '../health/disk.js';
import { tryLock } from '../site/lock.js';
import type { SiteLayout } from '../site/layout.js';
import { judge, readActivity, type DeliveryPolicy } from './policy.js';
import { emptyTrash, removeStudy, studyPaths } from './remove.js';
import { folderUsage, listStudies } from './studies.js';

export interface CleanupOptions {
  layout: SiteLayout;
  olderThanMs: number;
  keepFree?: Threshold;
  policy: DeliveryPolicy;
  dryRun: boolean;
  now?: number;
}

export interface StudyOutcome {
  study: string;
  lastArrival: string;
  ageDays: number;
  action: 'removed' | 'would-remove' | 'kept';
  reason: string;
  deliveredTo: string[];
  bytes?: number;
  files?: number;
  paths?: string[];
}

export interface CleanupHooks {
  onStudy?: (o: StudyOutcome) => void;
}

export interface CleanupReport {
  locked: boolean;
  studies: StudyOutcome[];
  /** Studies a killed run had begun to remove, finished now. */
  finished: string[];
  bytes: number;
  freeBefore: number;
  freeAfter: number;
  total: number;
  targetMet: boolean;
}

/** No target: every old study that may go goes. */
function meets(free: number, total: number, t: Threshold | undefined): boolean {
  return t === undefined || meetsThreshold(free, total, t);
}

export async function runCleanup(o: CleanupOptions, hooks: CleanupHooks = {}): Promise<CleanupReport> {
  const { layout } = o;
  const lock = await tryLock(join(layout.state, 'cleanup', 'lock'));
  const empty = { studies: [], finished: [], bytes: 0, freeBefore: 0, freeAfter: 0, total: 0, targetMet: false };
  if (!lock) return { locked: true, ...empty };
  try {
    const finished = o.dryRun ? [] : await emptyTrash(layout);
    const { free: freeBefore, total } = await diskUsage(layout.root);
    const now = o.now ?? Date.now();
    const activity = await readActivity(layout);
    const studies: StudyOutcome[] = [];
    let freed = 0;
    let bytes = 0;
    for (const s of await listStudies(layout)) {
      const ageMs = now - s.lastArrival;
      if (ageMs < o.olderThanMs) break; // oldest first: the rest are younger
      // Target reached (counting what a dry run would free): stop.
      if (o.keepFree && meets(freeBefore + freed, total, o.keepFree)) break;
      const base = {
        study: s.study,
        lastArrival: new Date(s.lastArrival).toISOString(),
        ageDays: Math.round((ageMs / 86_400_000) * 10) / 10,
      };
      const verdict = await judge(layout, s.study, activity, o.policy);
      if (!verdict.remove) {
        const kept: StudyOutcome = { ...base, action: 'kept', reason: verdict.reason, deliveredTo: verdict.deliveredTo };
        studies.push(kept);
        hooks.onStudy?.(kept);
        continue;
      }
      const usage = await folderUsage(s.archiveDir);
      let paths: string[];
      if (o.dryRun) paths = [s.archiveDir, ...(await studyPaths(layout, s.study))];
      else paths = await removeStudy(layout, s.study);
      freed += usage.bytes;
      bytes += usage.bytes;
      const out: StudyOutcome = {
        ...base,
        action: o.dryRun ? 'would-remove' : 'removed',
        reason: verdict.reason,
        deliveredTo: verdict.deliveredTo,
        bytes: usage.bytes,
        files: usage.files,
        paths,
      };
      studies.push(out);
      hooks.onStudy?.(out);
    }
    const freeAfter = o.dryRun ? freeBefore + freed : (await diskUsage(layout.root)).free;
    return { locked: false, studies, finished, bytes, freeBefore, freeAfter, total, targetMet: meets(freeAfter, total, o.keepFree) };
  } finally {
    await lock.release();
  }
}
