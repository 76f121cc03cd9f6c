import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import { writeJsonAtomic } from '../site/atomic.js';
import { readTextIfExists } from '../site/if-exists.js';
import type { SiteLayout } from '../site/layout.js';

/**
 * state/detect-study.json: the studies still open (arrivals, in ms since the epoch) and the
 * --exec runs not yet finished. Written atomically. It is bookkeeping, not the truth: the
 * manifests in studies/ record what was reported, and the site's folders what arrived, so a
 * state file lost with a kill -9 is rebuilt from them at start (detector.ts, reconcile).
 */
export interface OpenStudy {
  firstArrival: number;
  lastArrival: number;
  /** True when the study had been reported and new instances came: the next report is an update. */
  update: boolean;
}

export interface PendingExec {
  study: string;
  manifest: string;
  event: 'study-complete' | 'study-updated';
  revision: number;
}

export interface DetectState {
  version: 1;
  open: Record<string, OpenStudy>;
  exec: PendingExec[];
}

export function statePath(layout: SiteLayout): string {
  return join(layout.state, 'detect-study.json');
}

export function emptyState(): DetectState {
  return { version: 1, open: {}, exec: [] };
}

/** Load the state; a damaged file is moved aside and an empty state returned (the site fills it in). */
export async function loadState(layout: SiteLayout, warn: (m: string) => void): Promise<DetectState> {
  const path = statePath(layout);
  const text = await readTextIfExists(path);
  if (text === undefined) return emptyState();
  try {
    return sanitize(JSON.parse(text) as Partial<DetectState>);
  } catch (err) {
    const aside = `${path}.corrupt-${Date.now()}`;
    await rename(path, aside);
    warn(`${path} was not readable (${(err as Error).message}); moved to ${aside}, rebuilding from the site`);
    return emptyState();
  }
}

function sanitize(raw: Partial<DetectState>): DetectState {
  const state = emptyState();
  for (const [study, o] of Object.entries(raw.open ?? {})) {
    if (!isPathSafeUid(study) || typeof o?.lastArrival !== 'number') continue;
    state.open[study] = { firstArrival: Number(o.firstArrival) || o.lastArrival, lastArrival: o.lastArrival, update: o.update === true };
  }
  for (const e of Array.isArray(raw.exec) ? raw.exec : []) {
    if (e && typeof e.study === 'string' && isPathSafeUid(e.study) && typeof e.manifest === 'string') state.exec.push(e);
  }
  return state;
}

export async function saveState(layout: SiteLayout, state: DetectState): Promise<void> {
  await writeJsonAtomic(statePath(layout), state);
}
