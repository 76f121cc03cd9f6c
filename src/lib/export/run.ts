import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { readHeader } from '../dicom/index.js';
import { collectIdentifiers } from '../deid/identifiers.js';
import { buildArchive, type PublishedArchive } from './archive.js';
import type { DeidContext } from './deid.js';
import { seriesPath, type LayoutValues } from './layout.js';
import { manifestText } from './manifest.js';
import { StageTimer, type StageTimes } from './measurements.js';
import { checkSidecars, convertSeries, NiftiError, type NiftiSeriesResult } from './nifti.js';
import { collectInputs, describeSource, SourceError, type ExportSource } from './source.js';
import type { EntryRecord } from './zip/index.js';
import { recordDelivery } from '../transport/records.js';

/**
 * One export, start to end, in a private temp folder that is removed whatever happens:
 *   source (site, folder or PACS pull) -> de-identification (fiona-anonymize's library)
 *   -> FIONA's readable layout -> optional NIfTI (dcm2niix) -> fiona.txt -> ZIP (verified,
 *   published atomically, with its .md5).
 * Nothing identifying reaches the archive name, the layout or the manifest: they are built
 * from the de-identified files.
 */
export interface ExportRequest {
  project: string;
  studyUid?: string;
  exportType: string;
  event?: string;
  nifti: boolean;
  source: ExportSource;
  deid: DeidContext;
  outDir: string;
  /** Archive file name without .zip. */
  name: string;
  level: number;
  password?: Buffer;
  /** The job's own temp folder (created, and removed at the end). */
  workDir: string;
  fionaVersion: string;
  dcm2niix?: string;
  /** Anonymization in parallel (files at once). */
  concurrency?: number;
  onProgress?: (stage: string, done: number, total?: number) => void;
  onEntry?: (e: EntryRecord) => void;
}

export interface ExportOutcome {
  archive: PublishedArchive;
  series: Array<{ folder: string; instances: number }>;
  instances: number;
  notReleased: Array<{ reason: string; count: number }>;
  nifti?: NiftiSeriesResult[];
  stages: StageTimes;
  seconds: number;
}

/** Why an export failed; `permanent` says whether trying again can help. */
export class ExportError extends Error {
  constructor(message: string, readonly permanent: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExportError';
  }
}

/** A file-system error in words a sysadmin acts on (ENOSPC: the disk is full). */
export function describeFsError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { cause?: unknown };
  const code = e?.code ?? (e?.cause as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC') return 'disk full (ENOSPC)';
  if (code === 'EDQUOT') return 'disk quota exceeded (EDQUOT)';
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code})`;
  if (code === 'EROFS') return 'read-only file system (EROFS)';
  return undefined;
}

/** Sidecar keys a project keeps: only those its profile options retain in the DICOM too. */
function sidecarKeysKept(options: ReadonlySet<string>): Set<string> {
  const keep = new Set<string>();
  if (options.has('retainInstitutionIdentity')) ['InstitutionName', 'InstitutionAddress', 'InstitutionalDepartmentName'].forEach((k) => keep.add(k));
  if (options.has('retainDeviceIdentity')) ['StationName', 'DeviceSerialNumber'].forEach((k) => keep.add(k));
  if (options.has('retainPatientCharacteristics')) ['PatientSex', 'PatientAge', 'PatientWeight'].forEach((k) => keep.add(k));
  if (options.has('retainLongitudinalFullDates') || options.has('retainLongitudinalModifiedDates')) {
    ['StudyDate', 'SeriesDate', 'AcquisitionDate', 'ContentDate', 'AcquisitionDateTime'].forEach((k) => keep.add(k));
  }
  if (options.has('retainUIDs')) ['StudyInstanceUID', 'SeriesInstanceUID'].forEach((k) => keep.add(k));
  return keep;
}

/** Run fn over the items, `limit` at a time, taking them from one shared iterator. */
async function pool<T>(items: AsyncIterable<T> | Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = Symbol.asyncIterator in items ? (items as AsyncIterable<T>)[Symbol.asyncIterator]() : (items as Iterable<T>)[Symbol.iterator]();
  const workers = Array.from({ length: Math.max(1, limit) }, async () => {
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      await fn(r.value);
    }
  });
  await Promise.all(workers);
}

/** Sub-folders of dir (not hidden), sorted. */
async function visibleDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory() && !e.name.startsWith('.')) out.push(join(dir, e.name));
  }
  return out.sort();
}

/**
 * A refusal reason without the input's path: paths of a site are named after UIDs and a
 * user's folder may be named after the patient, and reasons go into fiona.txt and results.
 */
function withoutPath(reason: string, input: string): string {
  return reason.split(input).join('the file').replace(/(?:\/[^\s/:;,()]+)+\.dcm\b/g, 'the file');
}

function countReasons(reasons: string[]): Array<{ reason: string; count: number }> {
  const m = new Map<string, number>();
  for (const r of reasons) m.set(r, (m.get(r) ?? 0) + 1);
  return [...m].map(([reason, count]) => ({ reason, count }));
}

export async function runExport(req: ExportRequest): Promise<ExportOutcome> {
  const timer = new StageTimer();
  await rm(req.workDir, { recursive: true, force: true });
  await mkdir(req.workDir, { recursive: true, mode: 0o700 });
  const pulled = join(req.workDir, 'pulled');
  const anonDir = join(req.workDir, 'anonymized');
  const stage = join(req.workDir, 'stage');
  try {
    const { files: inputs, total } = await timer.time('source', () => collectInputs(req.source, req.studyUid, pulled));

    // De-identification: the library writes each instance under a temp name and publishes it
    // only when complete and leak-checked, as anonymized/<Study>/<Series>/<Modality>.<SOP>.dcm;
    // refused instances are counted, not dropped silently. No list of files is kept (a 10 GB
    // study has ~80,000): the outputs are found again by their folders.
    let releasedCount = 0;
    const refused: string[] = [];
    const originals = new Set<string>();
    let done = 0;
    await timer.time('anonymize', () =>
      pool(inputs, req.concurrency ?? 2, async (input) => {
        if (req.nifti) {
          // The sidecar check needs the values that must not appear; read before rewriting.
          const h = await readHeader(input).catch(() => undefined);
          if (h) for (const id of collectIdentifiers(h)) originals.add(id.value);
        }
        const r = await req.deid.anonymizer.anonymizeFile(input, anonDir);
        if (r.status === 'anonymized') releasedCount++;
        else refused.push(withoutPath(r.reason, input));
        req.onProgress?.('anonymize', ++done, total);
      }),
    );
    if (releasedCount === 0) {
      const reasons = countReasons(refused);
      const shown = reasons.slice(0, 3).map((r) => `${r.count} x ${r.reason}`).join('; ');
      throw new ExportError(`no instance could be released (${refused.length} refused: ${shown}${reasons.length > 3 ? `; and ${reasons.length - 3} other reasons` : ''})`, true);
    }

    // Layout from the de-identified headers: one de-identified series folder becomes one
    // folder of the archive, named from its first instance, and moved there whole.
    const series: Array<{ folder: string; leaf: string; instances: number; dir: string }> = [];
    const retained = new Set<string>();
    let instances = 0;
    await timer.time('layout', async () => {
      for (const studyDir of await visibleDirs(anonDir)) {
        for (const seriesDir of await visibleDirs(studyDir)) {
          const files = (await readdir(seriesDir)).filter((f) => !f.startsWith('.')).sort();
          if (files.length === 0) continue;
          const h = await readHeader(join(seriesDir, files[0]!));
          const v: LayoutValues = {
            patientId: h.string('PatientID'),
            studyDate: h.string('StudyDate'),
            studyTime: h.string('StudyTime'),
            seriesNumber: h.string('SeriesNumber'),
            seriesDescription: h.string('SeriesDescription'),
            modality: h.string('Modality'),
          };
          for (const id of collectIdentifiers(h)) retained.add(id.value);
          const rel = seriesPath(req.project, v, req.event);
          // Two series with the same number and description stay apart.
          let folder = rel;
          for (let i = 2; series.some((x) => x.folder === folder); i++) folder = `${rel}_${i}`;
          const dir = join(stage, folder);
          await mkdir(dirname(dir), { recursive: true });
          await rename(seriesDir, dir);
          series.push({ folder, leaf: basename(folder), instances: files.length, dir });
          instances += files.length;
        }
      }
    });
    // Two inputs with the same SOP Instance UID (a copy of a file) became one output file.
    for (let i = instances; i < releasedCount; i++) refused.push('a duplicate of another input (same SOP Instance UID), exported once');

    let nifti: NiftiSeriesResult[] | undefined;
    let removedKeys: string[] = [];
    if (req.nifti) {
      nifti = [];
      const niftiDir = join(stage, 'nifti');
      await mkdir(niftiDir, { recursive: true });
      const needles = [...originals].filter((v) => !retained.has(v));
      const allowed = sidecarKeysKept(req.deid.rules.options);
      await timer.time('nifti', async () => {
        let i = 0;
        for (const s of series) {
          const r = await convertSeries(s.dir, niftiDir, s.leaf, { dcm2niix: req.dcm2niix });
          const check = await checkSidecars(niftiDir, r.files, needles, allowed);
          removedKeys = [...new Set([...removedKeys, ...check.removedKeys])];
          nifti!.push(r);
          req.onProgress?.('nifti', ++i, series.length);
        }
      });
    }

    const list = series.map((s) => ({ folder: s.folder, instances: s.instances }));
    const rules = req.deid.rules;
    await writeFile(
      join(stage, 'fiona.txt'),
      manifestText({
        fionaVersion: req.fionaVersion,
        time: new Date(),
        project: req.project,
        exportType: req.exportType,
        participant: rules.patientId,
        event: req.event,
        profile: rules.profile,
        options: [...rules.options].sort(),
        overrides: req.deid.overrides,
        source: describeSource(req.source),
        encrypted: req.password !== undefined,
        level: req.level,
        series: list,
        notReleased: countReasons(refused),
        nifti,
        niftiRemovedKeys: removedKeys,
      }),
    );

    const archive = await timer.time('archive', () =>
      buildArchive({ stageDir: stage, outDir: req.outDir, name: req.name, level: req.level, password: req.password, onEntry: req.onEntry }),
    );
    // fiona-cleanup may remove a site's study only once it was delivered or exported.
    if (req.source.kind === 'site' && req.studyUid) {
      await recordDelivery(req.source.site, { study: req.studyUid, to: archive.path, tool: 'fiona-zip-export', kind: 'exported', files: instances });
    }
    return {
      archive,
      series: list,
      instances,
      notReleased: countReasons(refused),
      nifti,
      stages: timer.stages,
      seconds: timer.total,
    };
  } catch (err) {
    if (err instanceof ExportError) throw err;
    const fs = describeFsError(err);
    if (fs) throw new ExportError(`${fs}: ${(err as Error).message}`, false, { cause: err });
    if (err instanceof SourceError) throw new ExportError(err.message, err.permanent, { cause: err });
    if (err instanceof NiftiError) throw new ExportError(err.message, true, { cause: err });
    throw new ExportError((err as Error).message ?? String(err), false, { cause: err });
  } finally {
    await rm(req.workDir, { recursive: true, force: true });
  }
}
