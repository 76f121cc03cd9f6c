import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * NIfTI conversion with dcm2niix, one series at a time (so that a failure is one series'
 * and is named), always on the job's private, already de-identified copy, with an argument
 * array (no shell): `dcm2niix -z y -b y -ba y -f <series folder name> -o <out> <series dir>`.
 *
 * dcm2niix's exit codes mean things: 2 no DICOM, 4 corrupt DICOM, 8 partial conversion,
 * 10 incomplete volumes. Those are a series dcm2niix cannot (fully) convert: listed in the
 * manifest, partial outputs kept and flagged. Anything else (missing program, crash, bad
 * output folder) is dcm2niix failing, and fails the export.
 *
 * The BIDS sidecars are then searched for the study's original identifying values: the
 * input was de-identified, so a hit means something slipped through, and the export fails
 * rather than ship it.
 */
export interface NiftiSeriesResult {
  series: string;
  status: 'converted' | 'partial' | 'not-converted';
  files: string[];
  /** dcm2niix's exit code and what it means, when not 0. */
  reason?: string;
}

export class NiftiError extends Error {}

const SERIES_CODES: Record<number, string> = {
  2: 'no DICOM images dcm2niix can convert (exit 2)',
  4: 'corrupt DICOM (exit 4)',
  8: 'partial conversion (exit 8)',
  10: 'incomplete volumes (exit 10)',
};

const FATAL_CODES: Record<number, string> = {
  1: 'unspecified error',
  5: 'invalid input folder',
  6: 'invalid output folder',
  7: 'cannot write the output folder',
  9: 'cannot rename a file',
};

export interface ConvertOptions {
  dcm2niix?: string;
  timeoutMs?: number;
}

/** Convert the DICOM files in seriesDir into outDir, names starting with baseName. */
export async function convertSeries(seriesDir: string, outDir: string, baseName: string, opts: ConvertOptions = {}): Promise<NiftiSeriesResult> {
  if (!/^[A-Za-z0-9._-]+$/.test(baseName)) throw new NiftiError(`unsafe output name ${JSON.stringify(baseName)}`);
  const bin = opts.dcm2niix ?? 'dcm2niix';
  const before = new Set(await readdir(outDir));
  // Loaded when needed: execa is about 100 files, most runs never start a program.
  const { execa } = await import('execa');
  const r = await execa(bin, ['-z', 'y', '-b', 'y', '-ba', 'y', '-f', baseName, '-o', outDir, seriesDir], {
    reject: false,
    timeout: opts.timeoutMs ?? 3_600_000,
    stdin: 'ignore',
    env: { LC_ALL: 'C' },
  });
  const files = (await readdir(outDir)).filter((f) => !before.has(f)).sort();
  if (r.failed && (r as { code?: string }).code === 'ENOENT') {
    throw new NiftiError(`dcm2niix is not installed (${bin}): apt-get install -y dcm2niix`);
  }
  const code = r.exitCode;
  if (code === 0) {
    if (files.length === 0) return { series: baseName, status: 'not-converted', files, reason: 'dcm2niix wrote nothing' };
    return { series: baseName, status: 'converted', files };
  }
  if (code !== undefined && SERIES_CODES[code]) {
    const partial = (code === 8 || code === 10) && files.some((f) => f.endsWith('.nii.gz'));
    if (!partial) await Promise.all(files.map((f) => rm(join(outDir, f), { force: true })));
    return { series: baseName, status: partial ? 'partial' : 'not-converted', files: partial ? files : [], reason: SERIES_CODES[code] };
  }
  const how = r.timedOut
    ? 'timed out'
    : r.signal
      ? `crashed (${r.signal})`
      : `failed: exit ${code}${code !== undefined && FATAL_CODES[code] ? ` (${FATAL_CODES[code]})` : ''}`;
  throw new NiftiError(`dcm2niix ${how} on series ${baseName}`);
}

/** Sidecar keys that name a person, a place or a device; removed if present. */
const IDENTIFYING_KEYS = [
  'PatientName', 'PatientID', 'PatientBirthDate', 'PatientAge', 'PatientSex', 'PatientWeight', 'AccessionNumber',
  'InstitutionName', 'InstitutionAddress', 'InstitutionalDepartmentName', 'StationName', 'DeviceSerialNumber',
  'ReferringPhysicianName', 'PerformingPhysicianName', 'OperatorsName', 'StudyInstanceUID', 'SeriesInstanceUID',
  'StudyID', 'AcquisitionDateTime', 'StudyDate', 'SeriesDate', 'AcquisitionDate', 'ContentDate',
];

export interface SidecarCheck {
  /** Keys removed from sidecars (JSON rewritten). */
  removedKeys: string[];
}

/**
 * Check the BIDS sidecars in dir: keys that identify are removed only when the
 * de-identified DICOM lacked them too (`allowed` holds keys whose values the project keeps);
 * any original identifying value found anywhere in a sidecar fails the export. The error
 * names the file, never the value.
 */
export async function checkSidecars(dir: string, files: string[], identifiers: string[], allowed: ReadonlySet<string> = new Set()): Promise<SidecarCheck> {
  const { writeFileAtomic } = await import('../site/atomic.js');
  const removed = new Set<string>();
  const needles = identifiers.map((s) => s.trim().toLowerCase()).filter((s) => s.length >= 4);
  for (const f of files.filter((x) => x.endsWith('.json'))) {
    const path = join(dir, f);
    const data = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    let changed = false;
    for (const k of IDENTIFYING_KEYS) {
      if (k in data && !allowed.has(k)) {
        delete data[k];
        removed.add(k);
        changed = true;
      }
    }
    const text = JSON.stringify(data).toLowerCase();
    if (needles.some((n) => text.includes(n))) {
      throw new NiftiError(`an identifying value of the original study was found in the NIfTI sidecar ${f}; nothing is exported`);
    }
    if (changed) await writeFileAtomic(path, `${JSON.stringify(data, null, 2)}\n`);
  }
  return { removedKeys: [...removed].sort() };
}
