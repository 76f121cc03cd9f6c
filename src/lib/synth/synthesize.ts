import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isValidUid } from '../dicom/uid.js';
import { fsyncDir, sanitizePathPart, tempNameFor } from '../site/index.js';
import { type Syntax, TRANSFER_SYNTAX_UID, encodeDataset, encodeFileMeta, tag } from './encode.js';
import { type Charset, type SynthPatient, type SynthStudy, identifyingValues } from './identity.js';
import { MR_IMAGE_STORAGE, buildInstance } from './instance.js';
import { type StudyPlan, planAll } from './plan.js';
import { SERIES_CYCLE, type SeriesType } from './protocols.js';
import { uidFor } from './random.js';
import type { VendorName } from './vendors.js';

export interface SynthOptions {
  /** Output folder; files go to OUT/<PatientID>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm. */
  out: string;
  seed?: string | number;
  patients?: number;
  studiesPerPatient?: number;
  series?: number;
  instances?: number;
  /** Rows = columns of every image. */
  rows?: number;
  charset?: Charset;
  vendor?: VendorName | 'mixed';
  /** The series types to cycle through (default: localizer, t1, t2, flair, dwi, fmri). */
  types?: readonly SeriesType[];
  transferSyntax?: Syntax;
  /** Mark the last series of each study BurnedInAnnotation YES (and draw a bar). */
  burnedIn?: boolean;
  /** fsync each file before its rename (default true). */
  fsync?: boolean;
}

/** What onFile is told about each file written. */
export interface SynthFileInfo {
  path: string;
  patientId: string;
  study: string;
  series: string;
  sop: string;
  sopClass: string;
  transferSyntax: string;
  seriesType: SeriesType;
  seriesNumber: number;
  instanceNumber: number;
  bytes: number;
}

export interface SynthSeriesSummary {
  SeriesInstanceUID: string;
  SeriesNumber: number;
  type: SeriesType;
  SeriesDescription: string;
  instances: number;
  burnedIn: boolean;
}

export interface SynthSummary {
  out: string;
  seed: string;
  files: number;
  bytes: number;
  transferSyntax: string;
  charset: Charset;
  patients: Array<{
    patient: SynthPatient;
    studies: Array<SynthStudy & { series: SynthSeriesSummary[] }>;
    /** Identifying strings by keyword, to search for in leak tests. */
    identifying: Record<string, string[]>;
  }>;
}

/** The fixed Implementation Class UID and version name of fiona-synth's files (kept stable so fixtures stay byte-identical across fiona releases). */
export const IMPLEMENTATION_CLASS_UID = uidFor('fiona', 'implementation-class');
export const IMPLEMENTATION_VERSION_NAME = 'FIONA_SYNTH_1';

export type ResolvedSynthOptions = Required<SynthOptions> & { seed: string };

export function resolveOptions(o: SynthOptions): ResolvedSynthOptions {
  return {
    out: o.out,
    seed: String(o.seed ?? '1'),
    patients: o.patients ?? 1,
    studiesPerPatient: o.studiesPerPatient ?? 1,
    series: o.series ?? SERIES_CYCLE.length,
    instances: o.instances ?? 10,
    rows: o.rows ?? 256,
    charset: o.charset ?? 'ascii',
    vendor: o.vendor ?? 'mixed',
    types: o.types && o.types.length > 0 ? o.types : SERIES_CYCLE,
    transferSyntax: o.transferSyntax ?? 'explicit',
    burnedIn: o.burnedIn ?? false,
    fsync: o.fsync ?? true,
  };
}

function checkUid(uid: string, what: string): string {
  if (!isValidUid(uid)) throw new Error(`internal error: generated ${what} UID is not valid: ${uid}`);
  return uid;
}

/** Write one file: temp name beside the target, optional fsync, rename (a crash leaves no half file). */
function writeFileAtomicSync(target: string, chunks: readonly Uint8Array[], fsync: boolean): number {
  const tmp = tempNameFor(target);
  let bytes = 0;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
      bytes += c.byteLength;
    }
    if (fsync) fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw err;
  }
  return bytes;
}

/**
 * Write synthetic MR studies. Deterministic: the same options give byte-identical files.
 * Resolves with a summary of what was written and the identifying values of each patient.
 */
export async function synthesize(opts: SynthOptions, onFile?: (info: SynthFileInfo) => void): Promise<SynthSummary> {
  const o = resolveOptions(opts);
  const tsUid = TRANSFER_SYNTAX_UID[o.transferSyntax];
  const text = o.charset === 'utf8' ? 'utf8' : 'latin1';
  const summary: SynthSummary = { out: o.out, seed: o.seed, files: 0, bytes: 0, transferSyntax: tsUid, charset: o.charset, patients: [] };
  let current: SynthSummary['patients'][number] | undefined;
  for (const plan of planAll(o)) {
    if (!current || current.patient !== plan.patient) {
      current = { patient: plan.patient, studies: [], identifying: {} };
      summary.patients.push(current);
    }
    current.studies.push({ ...plan.study, series: plan.series.map(seriesSummary) });
    current.identifying = identifyingValues(plan.patient, current.studies);
    await writeStudy(o, plan, tsUid, text, summary, onFile);
  }
  return summary;
}

function seriesSummary(s: StudyPlan['series'][number]): SynthSeriesSummary {
  return {
    SeriesInstanceUID: s.SeriesInstanceUID,
    SeriesNumber: s.SeriesNumber,
    type: s.type,
    SeriesDescription: s.names.description,
    instances: s.instances,
    burnedIn: s.burnedIn,
  };
}

async function writeStudy(
  o: ResolvedSynthOptions,
  plan: StudyPlan,
  tsUid: string,
  text: 'latin1' | 'utf8',
  summary: SynthSummary,
  onFile?: (info: SynthFileInfo) => void,
): Promise<void> {
  const studyUid = checkUid(plan.study.StudyInstanceUID, 'study');
  const patientDir = sanitizePathPart(plan.patient.PatientID, 'patient');
  for (const series of plan.series) {
    const dir = join(o.out, patientDir, studyUid, checkUid(series.SeriesInstanceUID, 'series'));
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < series.instances; i++) {
      const built = buildInstance({ seed: o.seed, plan, series, instance: i, rows: o.rows, charset: o.charset });
      const sop = checkUid(built.sopInstanceUid, 'SOP instance');
      const meta = encodeFileMeta({
        sopClassUid: MR_IMAGE_STORAGE,
        sopInstanceUid: sop,
        transferSyntaxUid: tsUid,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
      });
      const pixelBytes = new Uint8Array(built.pixels.buffer, built.pixels.byteOffset, built.pixels.byteLength);
      const dataset = encodeDataset(
        [...built.elements, { tag: tag(0x7fe0, 0x0010), vr: 'OW', value: pixelBytes }],
        { syntax: o.transferSyntax, text },
      );
      const path = join(dir, `${sop}.dcm`);
      const bytes = writeFileAtomicSync(path, [meta, dataset], o.fsync);
      summary.files++;
      summary.bytes += bytes;
      onFile?.({
        path,
        patientId: plan.patient.PatientID,
        study: studyUid,
        series: series.SeriesInstanceUID,
        sop,
        sopClass: MR_IMAGE_STORAGE,
        transferSyntax: tsUid,
        seriesType: series.type,
        seriesNumber: series.SeriesNumber,
        instanceNumber: i + 1,
        bytes,
      });
    }
    if (o.fsync) await fsyncDir(dir);
  }
}
