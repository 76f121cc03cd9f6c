import { sanitizePathPart } from '../site/sanitize.js';

/**
 * FIONA's readable layout inside the archive, built from the de-identified header values
 * (never from the originals):
 *   <Project>/<PatientID>/<StudyDate>_<StudyTime>[_<event>]/<NNNN>_<SeriesDescription>/<file>
 * Every part is reduced to [A-Za-z0-9._-]; a value the profile removed becomes a fixed word.
 */
export interface LayoutValues {
  patientId?: string;
  studyDate?: string;
  studyTime?: string;
  seriesNumber?: string | number;
  seriesDescription?: string;
  modality?: string;
}

/** HHMMSS from a TM value (fraction dropped), or undefined. */
function hhmmss(tm: string | undefined): string | undefined {
  const m = /^(\d{2})(\d{2})?(\d{2})?/.exec((tm ?? '').trim());
  if (!m) return undefined;
  return `${m[1]}${m[2] ?? '00'}${m[3] ?? '00'}`;
}

export function studyFolderName(v: LayoutValues, event?: string): string {
  const date = /^\d{8}$/.test((v.studyDate ?? '').trim()) ? v.studyDate!.trim() : 'nodate';
  const time = hhmmss(v.studyTime) ?? 'notime';
  const ev = event ? `_${sanitizePathPart(event, 'event', 48)}` : '';
  return `${date}_${time}${ev}`;
}

export function seriesFolderName(v: LayoutValues): string {
  const n = Number(String(v.seriesNumber ?? '').trim());
  const num = Number.isInteger(n) && n >= 0 && String(v.seriesNumber ?? '').trim() !== '' ? String(n).padStart(4, '0') : 'unknown';
  const desc = sanitizePathPart(v.seriesDescription, sanitizePathPart(v.modality, 'series', 16), 64);
  return `${num}_${desc}`;
}

/** The folder of a series inside the archive. */
export function seriesPath(project: string, v: LayoutValues, event?: string): string {
  return [
    sanitizePathPart(project, 'project', 64),
    sanitizePathPart(v.patientId, 'unknown', 64),
    studyFolderName(v, event),
    seriesFolderName(v),
  ].join('/');
}
