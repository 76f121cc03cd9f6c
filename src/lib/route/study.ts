import { join } from 'node:path';
import { readHeader } from '../dicom/read.js';
import { isPathSafeUid } from '../dicom/uid.js';
import type { SiteLayout } from '../site/layout.js';
import { readdirIfExists } from '../site/if-exists.js';
import { readJsonObject } from '../site/state-json.js';

/**
 * What routing and transfer need to know of a study on disk. The series JSON files that
 * fiona-classify writes (<site>/raw/<Study>/<Series>.json, FIONA's fields) give the patient,
 * the connection and the classification; the archive (<site>/archive/<Study>/<Series>/)
 * holds the instances as received and is what gets counted and sent.
 */
export interface SeriesInfo {
  uid: string;
  /** Instance files in the archive, sorted. */
  files: string[];
  modality?: string;
  sopClassUid?: string;
  description?: string;
  classifyTypes: string[];
  burnedInAnnotation?: string;
  /** The series JSON as classify wrote it, gaps filled from the header (undefined when there is no JSON). */
  meta?: Record<string, unknown>;
  /** Values read from the first instance's header. */
  header: Record<string, string>;
}

export interface StudyInfo {
  uid: string;
  patientId: string;
  patientName: string;
  accessionNumber: string;
  /** The sender's AE title (FIONA: IncomingConnection.AETitleCaller). */
  calling: string;
  /** The AE title the sender addressed (FIONA: IncomingConnection.AETitleCalled). */
  called: string;
  callerIp: string;
  studyDate: string;
  studyTime: string;
  studyDescription: string;
  institution: string;
  series: SeriesInfo[];
}

/** Series UID -> number of instances: what a transfer covered. */
export type StudySignature = Record<string, number>;

export class StudyNotFoundError extends Error {}

function text(v: unknown): string {
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(text).join('\\');
  // A PN may come as {Alphabetic: ...} (DICOM JSON model).
  if (v && typeof v === 'object' && 'Alphabetic' in v) return text((v as { Alphabetic: unknown }).Alphabetic);
  return '';
}

function list(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(text).filter(Boolean);
  const s = text(v);
  return s ? [s] : [];
}

async function listDir(dir: string): Promise<string[]> {
  return (await readdirIfExists(dir)).sort();
}

/**
 * Values the series JSON may lack (fiona-classify writes FIONA's fields, which have no
 * AccessionNumber, InstitutionName or BurnedInAnnotation), read from the first instance.
 */
const HEADER_FALLBACK: ReadonlyArray<readonly [string, number]> = [
  ['PatientID', 0x00100020],
  ['PatientName', 0x00100010],
  ['AccessionNumber', 0x00080050],
  ['InstitutionName', 0x00080080],
  ['StudyDate', 0x00080020],
  ['StudyTime', 0x00080030],
  ['StudyDescription', 0x00081030],
  ['SeriesDescription', 0x0008103e],
  ['Modality', 0x00080060],
  ['SOPClassUID', 0x00080016],
  ['BurnedInAnnotation', 0x00280301],
];

async function headerFields(file: string | undefined): Promise<Record<string, string>> {
  if (!file) return {};
  try {
    const h = await readHeader(file);
    const out: Record<string, string> = {};
    for (const [name, tag] of HEADER_FALLBACK) {
      const v = h.string(tag);
      if (v !== undefined) out[name] = v.trim();
    }
    return out;
  } catch {
    // Not readable as DICOM: the series JSON (if any) is all we know.
    return {};
  }
}

/** Instance files of a series in the archive (hidden temp files excluded). */
async function seriesFiles(site: SiteLayout, study: string, series: string): Promise<string[]> {
  const dir = join(site.archive, study, series);
  return (await listDir(dir)).filter((n) => !n.startsWith('.')).map((n) => join(dir, n));
}

export interface ReadStudyOptions {
  /**
   * Read the first instance's header of every series (BurnedInAnnotation, and values a
   * series JSON lacks). Without it only the first series' header is read (for the
   * study-level AccessionNumber and InstitutionName) and series without JSON: routing
   * --scan of a large site stays cheap.
   */
  seriesHeaders?: boolean;
}

/** Read a study from the site; throws StudyNotFoundError when it has no instances. */
export async function readStudy(site: SiteLayout, uid: string, opts: ReadStudyOptions = {}): Promise<StudyInfo> {
  if (!isPathSafeUid(uid)) throw new StudyNotFoundError(`not a valid StudyInstanceUID: ${JSON.stringify(uid.slice(0, 80))}`);
  const rawDir = join(site.raw, uid);
  const metaBySeries = new Map<string, Record<string, unknown>>();
  for (const name of await listDir(rawDir)) {
    if (!name.endsWith('.json') || name.startsWith('.')) continue;
    const seriesUid = name.slice(0, -5);
    if (!isPathSafeUid(seriesUid)) continue;
    const meta = await readJsonObject(join(rawDir, name));
    if (meta) metaBySeries.set(seriesUid, meta);
  }
  const seriesUids = new Set<string>(metaBySeries.keys());
  for (const name of await listDir(join(site.archive, uid))) if (isPathSafeUid(name)) seriesUids.add(name);

  const series: SeriesInfo[] = [];
  for (const s of [...seriesUids].sort()) {
    const json = metaBySeries.get(s);
    const files = await seriesFiles(site, uid, s);
    if (files.length === 0) continue;
    const needHeader = opts.seriesHeaders || !json || series.length === 0;
    const fromHeader = needHeader ? await headerFields(files[0]) : {};
    // The JSON's values win (they are what classify saw); the header fills what it lacks.
    const meta = json ? { ...fromHeader, ...Object.fromEntries(Object.entries(json).filter(([, v]) => v !== '' && v !== undefined)) } : undefined;
    const all: Record<string, unknown> = meta ?? fromHeader;
    series.push({
      uid: s,
      files,
      modality: text(all.Modality) || undefined,
      sopClassUid: text(all.SOPClassUID) || undefined,
      description: text(all.SeriesDescription) || undefined,
      classifyTypes: list(all.ClassifyType),
      burnedInAnnotation: text(all.BurnedInAnnotation) || undefined,
      meta,
      header: fromHeader,
    });
  }
  if (series.length === 0) throw new StudyNotFoundError(`study ${uid} has no instances under ${join(site.archive, uid)}`);
  // Patient-level values from the first series that has metadata (FIONA took data[0]),
  // gaps filled from the first instance's header (AccessionNumber is not in FIONA's JSON).
  const first: Record<string, unknown> = { ...series[0]!.header, ...(series.find((s) => s.meta)?.meta ?? {}) };
  const conn = (first.IncomingConnection ?? {}) as Record<string, unknown>;
  return {
    uid,
    patientId: text(first.PatientID),
    patientName: text(first.PatientName),
    accessionNumber: text(first.AccessionNumber),
    // FIONA stripped padding and NULs from the AE titles before comparing them.
    calling: text(conn.AETitleCaller).replace(/\0/g, '').trim(),
    called: text(conn.AETitleCalled).replace(/\0/g, '').trim(),
    callerIp: text(conn.CallerIP),
    studyDate: text(first.StudyDate),
    studyTime: text(first.StudyTime),
    studyDescription: text(first.StudyDescription),
    institution: text(first.InstitutionName),
    series,
  };
}

/** True when the study has series metadata (classify has run on it). */
export function hasMetadata(study: StudyInfo): boolean {
  return study.series.some((s) => s.meta !== undefined);
}

export function studySignature(study: StudyInfo): StudySignature {
  return Object.fromEntries(study.series.map((s) => [s.uid, s.files.length]));
}

/** True when `done` covers every series and instance of `now`: nothing new arrived since. */
export function signatureCovers(done: StudySignature | undefined, now: StudySignature): boolean {
  if (!done) return false;
  return Object.entries(now).every(([series, n]) => (done[series] ?? -1) >= n);
}

/** Study UIDs present in the site (archive folders), for --scan. */
export async function listStudies(site: SiteLayout): Promise<string[]> {
  return (await listDir(site.archive)).filter(isPathSafeUid);
}
