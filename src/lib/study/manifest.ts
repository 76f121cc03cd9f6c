import { join } from 'node:path';
import { seriesJsonPath, type SiteLayout } from '../site/layout.js';
import { writeFileVisible } from '../site/atomic.js';
import { readJsonObject } from '../site/state-json.js';
import { countEntries } from '../site/if-exists.js';
import { listSeries } from './site-scan.js';

/**
 * studies/<Study>.json: what a complete study holds, built from the site itself (the link
 * counts of raw/ or the files of archive/, the series JSONs for descriptions and types), so
 * duplicates and restarts cannot make the counts drift. Written atomically; it is also the
 * record that the study was reported (see detector.ts).
 */
export interface SeriesEntry {
  series: string;
  SeriesNumber?: string;
  SeriesDescription?: string;
  Modality?: string;
  instances: number;
  types: string[];
}

export interface StudyManifest {
  study: string;
  status: 'complete';
  /** 1 for the first completion, +1 for each update. */
  revision: number;
  firstArrival: string;
  lastArrival: string;
  completedAt: string;
  updatedAt?: string;
  PatientID?: string;
  StudyDate?: string;
  StudyTime?: string;
  StudyDescription?: string;
  seriesCount: number;
  instances: number;
  types: string[];
  series: SeriesEntry[];
}

export function manifestPath(layout: SiteLayout, study: string): string {
  return join(layout.studies, `${study}.json`);
}

/** The study's manifest; undefined when missing, unreadable or not this study's (tolerant, as a report record). */
export async function readManifest(layout: SiteLayout, study: string): Promise<StudyManifest | undefined> {
  const v = await readJsonObject(manifestPath(layout, study));
  return v?.study === study ? (v as unknown as StudyManifest) : undefined;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export interface Arrivals {
  firstArrival: number;
  lastArrival: number;
}

/** Build the manifest of a study from the site (revision and dates filled by the caller's arrivals). */
export async function buildManifest(layout: SiteLayout, study: string, arrivals: Arrivals, revision = 1): Promise<StudyManifest> {
  const series: SeriesEntry[] = [];
  const studyFields: Partial<StudyManifest> = {};
  for (const uid of await listSeries(layout, study)) {
    const json = await readJsonObject(seriesJsonPath(layout, study, uid));
    const links = await countEntries(join(layout.raw, study, uid));
    const files = links > 0 ? links : await countEntries(join(layout.archive, study, uid), '.dcm');
    const types = Array.isArray(json?.ClassifyType) ? (json.ClassifyType as unknown[]).filter((t): t is string => typeof t === 'string') : [];
    // Descriptive fields first: people read these files.
    const described: Partial<SeriesEntry> = { series: uid };
    for (const k of ['SeriesNumber', 'SeriesDescription', 'Modality'] as const) {
      const v = str(json?.[k]);
      if (v !== undefined) described[k] = v;
    }
    const entry: SeriesEntry = { ...described, series: uid, instances: files, types };
    series.push(entry);
    for (const k of ['PatientID', 'StudyDate', 'StudyTime', 'StudyDescription'] as const) {
      const v = str(json?.[k]);
      if (v !== undefined && studyFields[k] === undefined) studyFields[k] = v;
    }
  }
  series.sort((a, b) => Number(a.SeriesNumber ?? Infinity) - Number(b.SeriesNumber ?? Infinity) || a.series.localeCompare(b.series));
  const types = [...new Set(series.flatMap((s) => s.types))];
  return {
    study,
    status: 'complete',
    revision,
    firstArrival: new Date(arrivals.firstArrival).toISOString(),
    lastArrival: new Date(arrivals.lastArrival).toISOString(),
    completedAt: new Date().toISOString(),
    ...studyFields,
    seriesCount: series.length,
    instances: series.reduce((n, s) => n + s.instances, 0),
    types,
    series,
  };
}

/** Write the manifest (visible when this returns); call the returned function to sync its folder. */
export async function writeManifest(layout: SiteLayout, m: StudyManifest): Promise<{ path: string; sync: () => Promise<void> }> {
  const path = manifestPath(layout, m.study);
  const sync = await writeFileVisible(path, `${JSON.stringify(m, null, 2)}\n`);
  return { path, sync };
}

export interface ManifestDiff {
  addedSeries: string[];
  addedInstances: number;
  changed: Array<{ series: string; instances: [number, number]; typesAdded: string[]; typesRemoved: string[] }>;
}

/** What changed between two manifests of a study; undefined when nothing did. */
export function diffManifests(before: StudyManifest, after: StudyManifest): ManifestDiff | undefined {
  const old = new Map(before.series.map((s) => [s.series, s]));
  const addedSeries: string[] = [];
  const changed: ManifestDiff['changed'] = [];
  for (const s of after.series) {
    const o = old.get(s.series);
    if (!o) {
      addedSeries.push(s.series);
      continue;
    }
    const typesAdded = s.types.filter((t) => !o.types.includes(t));
    const typesRemoved = o.types.filter((t) => !s.types.includes(t));
    if (o.instances !== s.instances || typesAdded.length || typesRemoved.length) {
      changed.push({ series: s.series, instances: [o.instances, s.instances], typesAdded, typesRemoved });
    }
  }
  const addedInstances = after.instances - before.instances;
  if (addedSeries.length === 0 && changed.length === 0 && addedInstances === 0) return undefined;
  return { addedSeries, addedInstances, changed };
}
