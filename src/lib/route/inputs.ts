import { basename, dirname, resolve } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import type { InputItem } from '../events/types.js';
import type { SiteLayout } from '../site/layout.js';
import { readdirIfExists } from '../site/if-exists.js';

/** Events that mean "this study is (again) complete": fiona-detect-study's. */
export const ROUTED_EVENTS = new Set(['study-complete', 'study-updated']);

/** The study a manifest path names (<site>/studies/<Study>.json), if it is one. */
export function studyOfManifest(path: string, site: SiteLayout): string | undefined {
  const p = resolve(path);
  const name = basename(p);
  if (dirname(p) !== site.studies || !name.endsWith('.json')) return undefined;
  const uid = name.slice(0, -5);
  return isPathSafeUid(uid) ? uid : undefined;
}

/** The study an input line asks to route: a study-complete/-updated event or a manifest path. */
export function studyFromInput(item: InputItem, site: SiteLayout): string | undefined {
  if (item.kind === 'event') {
    if (!ROUTED_EVENTS.has(item.event.event)) return undefined;
    const study = item.event.study;
    if (typeof study === 'string' && isPathSafeUid(study)) return study;
    const manifest = item.event.manifest;
    return typeof manifest === 'string' ? studyOfManifest(manifest, site) : undefined;
  }
  if (item.kind === 'path') return studyOfManifest(item.path, site);
  return undefined;
}

/** Completed studies: those with a manifest under <site>/studies/ (for --scan). */
export async function listManifests(site: SiteLayout): Promise<string[]> {
  const names = await readdirIfExists(site.studies);
  return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -5)).filter(isPathSafeUid).sort();
}
