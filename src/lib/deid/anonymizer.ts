import { open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  DicomParseError, type DicomHeader, type Header, type Output, type RewriteOptions, type RewriteResult, type SetEntry, isPathSafeUid, readHeaderFull, rewriteDicom,
} from '../dicom/index.js';
import { parseBytes } from '../dicom/read.js';
import { PIXEL_DATA } from '../dicom/tags.js';
import { tempNameFor } from '../dicom/write.js';
import { DirSyncer, ensureDir, publishTemp } from '../dicom/publish.js';
import { quarantineFile } from '../site/quarantine.js';
import { sanitizePathPart } from '../site/sanitize.js';
import { type SeriesClassLookup, annotationReason, burnedInReason } from './burned-in.js';
import { finishOnDisk, finishParts } from './finish.js';
import { RefusedError } from './refused.js';
import { type Scrubber, createScrubber } from './clean.js';
import { derivedDateOffset } from './dates.js';
import { type Identifier, IdentifierRun, scrubWords } from './identifiers.js';
import { type Needle, identifierNeedles, uidNeedles } from './leak.js';
import { BufferPool, MemorySink } from './output.js';
import { type FileIo, localIo } from '../dicom/file-thread.js';
import {
  DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODE_SEQUENCE, LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
  type MarkingInput, PATIENT_IDENTITY_REMOVED, encodeCodeItems, longitudinalValue, methodCodes, methodText,
} from './marking.js';
import { maskPixels, pixelGeometry } from './pixels.js';
import type { ProfileOption } from './options.js';
import { type ProjectRules, secretNeededFor } from './project.js';
import { type Pseudonym, type PseudonymTableEntry, derivePatientPseudonym } from './pseudonyms.js';
import { type ProfileTable, loadProfileTable } from './table.js';
import { type UidMapper, createUidMapper } from './uids.js';
import { type VisitNotes, compileRules, createVisitor } from './visitor.js';

/** fiona's anonymizer identifies itself in the File Meta it writes (PS3.15 E.1.1 item 7). */
export const ANONYMIZER_CLASS_UID = '2.25.129853896675307343199316745393693796302';

export interface AnonymizerOptions {
  /** The project's secret (required unless nothing keyed is needed: retained UIDs, fixed pseudonyms, no derived shift). */
  secret?: Uint8Array;
  /** Pseudonym table, already loaded (see loadPseudonymTable). */
  pseudonymTable?: Map<string, PseudonymTableEntry>;
  /** Where bad inputs are copied with a reason file; without it they are only reported. */
  quarantineDir?: string;
  /** Look up fiona-classify's CHECKBURNEDINFO class in this site. */
  seriesClasses?: SeriesClassLookup;
  /** fsync each output before it is renamed into place (default true). */
  fsync?: boolean;
  /** fiona's version, written into DeidentificationMethod and the File Meta. */
  version?: string;
  table?: ProfileTable;
  /**
   * Who reads the inputs and publishes the outputs built in memory (default: the calling
   * thread). An I/O thread (threadIo) puts the kernel's file work on another core; its owner closes it.
   */
  io?: FileIo;
}

export interface AnonymizedResult {
  status: 'anonymized';
  source: string;
  path: string;
  study: string;
  series: string;
  sop: string;
  original: { study: string; series: string; sop: string };
  bytes: number;
  warnings: string[];
}

export interface QuarantinedResult {
  status: 'quarantined';
  source: string;
  reason: string;
  /** Where the copy of the input is, when a quarantine folder was given. */
  path?: string;
}

export type AnonymizeResult = AnonymizedResult | QuarantinedResult;

export interface Anonymizer {
  readonly rules: ProjectRules;
  anonymizeFile(input: string, outDir: string): Promise<AnonymizeResult>;
}

interface PatientContext {
  pseudonym: Pseudonym;
  dateOffset: number | undefined;
  scrubber: Scrubber;
  /** Leak needles by the set of identifier tags that were not kept. */
  needles: Map<string, Needle[]>;
  /** Whether the context depends on the study (no PatientID or PatientName to key it by). */
  byStudy: boolean;
}

export { RefusedError };
const BURNED_IN_ANNOTATION = 0x00280301;
const PATIENT_ID = 0x00100020;
const PATIENT_NAME = 0x00100010;
// Tags by number, not keyword: a keyword lookup loads the data dictionary (dcmjs, ~70 ms
// per worker thread), which anonymizing an explicit VR file otherwise never needs.
const SOP_INSTANCE_UID = 0x00080018;
const STUDY_INSTANCE_UID = 0x0020000d;
const SERIES_INSTANCE_UID = 0x0020000e;
const MODALITY = 0x00080060;

export function createAnonymizer(rules: ProjectRules, opts: AnonymizerOptions = {}): Anonymizer {
  const table = opts.table ?? loadProfileTable();
  const need = secretNeededFor(rules, opts.pseudonymTable !== undefined);
  if (need && !opts.secret) throw new RefusedError(`a secret is required (${need}): give --secret-file or "secretFile" in the project rules`);
  const uids: UidMapper | undefined = opts.secret ? createUidMapper(opts.secret, rules.name, rules.uidRoot) : undefined;
  const version = opts.version ?? '0';
  const fsync = opts.fsync ?? true;
  const dirs = new DirSyncer();
  const io = opts.io ?? localIo();
  const sharedPools = opts.io !== undefined;
  // Buffers an I/O thread fills or writes are shared with it, not copied. Each pool keeps
  // more buffers than fiona-anonymize has files in flight (48), or every file would allocate.
  const headBuffers = new BufferPool(HEAD_BYTES, POOLED_BUFFERS, sharedPools);
  const outputBuffers = new BufferPool(256 * 1024, POOLED_BUFFERS, sharedPools);

  const pseudonymFor = (h: DicomHeader): Pseudonym => {
    const original = (h.string(PATIENT_ID) ?? '').trim();
    const entry = opts.pseudonymTable?.get(original);
    if (opts.pseudonymTable && !entry && rules.patientId === undefined && rules.unmappedPatient === 'quarantine') {
      throw new RefusedError('PatientID is not in the pseudonym table (pseudonym.unmapped is "quarantine")');
    }
    // Without an ID, the name; without both, the study (as for the date offset): two
    // unnamed patients of different studies must not share one pseudonym.
    const key = (): string => original || `(no id) ${h.string(PATIENT_NAME) || `study:${h.string(STUDY_INSTANCE_UID) ?? ''}`}`;
    const derived = (): string => derivePatientPseudonym(opts.secret!, rules.name, key(), rules.pseudonymPrefix);
    const patientId = rules.patientId ?? entry?.patientId ?? derived();
    const patientName = rules.patientName ?? entry?.patientName ?? patientId;
    return { patientId, patientName };
  };

  const dateOffsetFor = (h: DicomHeader): number | undefined => {
    if (!rules.options.has('retainLongitudinalModifiedDates')) return undefined;
    if (rules.dateShift !== 'auto') return rules.dateShift;
    // The patient is who the intervals belong to; without an ID, the name; without both, the study.
    const key = h.string(PATIENT_ID) || h.string(PATIENT_NAME) || `study:${h.string(STUDY_INSTANCE_UID) ?? ''}`;
    return derivedDateOffset(opts.secret!, rules.name, key, rules.maxShiftDays);
  };

  const mapUid = (uid: string): string => (rules.options.has('retainUIDs') ? uid : uids!.map(uid));
  const compiled = compileRules(rules, table);
  // A kept or shifted date may equal the birth date by chance (a newborn's study date): the
  // leak check looks for dates only when the profile removes every real date.
  const datesAllRemoved = !['retainLongitudinalFullDates', 'retainLongitudinalModifiedDates', 'retainDeviceIdentity'].some((o) => rules.options.has(o as ProfileOption));

  /**
   * What is the same for every instance of a patient (and mostly of a study): pseudonym,
   * date offset, the cleaning scrubber, leak needles. Computed once per distinct set of
   * identifying values; a batch is mostly long runs of one patient.
   */
  const patients = new Map<string, PatientContext>();
  const patientContext = (h: DicomHeader, ids: Identifier[]): PatientContext => {
    const byStudy = !(h.string(PATIENT_ID) || h.string(PATIENT_NAME));
    const key = `${ids.map((i) => `${i.tag}=${i.value}`).join('\n')}\n${byStudy ? (h.string(STUDY_INSTANCE_UID) ?? '') : ''}`;
    let p = patients.get(key);
    if (!p) {
      p = { pseudonym: pseudonymFor(h), dateOffset: dateOffsetFor(h), scrubber: createScrubber(scrubWords(ids)), needles: new Map(), byStudy };
      if (patients.size >= 256) patients.clear();
      patients.set(key, p);
    }
    return p;
  };
  /**
   * The context of the previous file, when the identifiers gave it alone (not the study): a
   * file whose identifying bytes are the previous file's (identifierRun) has the same context,
   * found without decoding or building its key. Cleared before any other context is made, so
   * that a failure leaves none behind for the next file of that run.
   */
  const identifierRun = new IdentifierRun();
  let lastPatient: PatientContext | undefined;
  const contextOf = (h: Header): { ids: Identifier[]; patient: PatientContext } => {
    const run = identifierRun.collect(h);
    if (run.same && lastPatient !== undefined) return { ids: run.ids, patient: lastPatient };
    lastPatient = undefined;
    const patient = patientContext(h, run.ids);
    if (!patient.byStudy) lastPatient = patient;
    return { ids: run.ids, patient };
  };
  // The files in flight start a new series together: one mkdir for all of them, not one
  // each on the thread pool (ensureDir remembers a folder only once it is made).
  const making = new Map<string, Promise<void>>();
  const makeDir = (dir: string): Promise<void> => {
    let p = making.get(dir);
    if (!p) {
      p = ensureDir(dir).finally(() => making.delete(dir));
      making.set(dir, p);
    }
    return p;
  };
  const methodTexts = new Map<boolean, string[]>();
  const methodTextFor = (m: MarkingInput): string[] => {
    let t = methodTexts.get(m.pixelsCleaned);
    if (!t) methodTexts.set(m.pixelsCleaned, (t = methodText(m)));
    return t;
  };
  const codeItems = new Map<string, Uint8Array>();
  const codeItemsFor = (m: MarkingInput, enc: { explicit: boolean; littleEndian: boolean }): Uint8Array => {
    const key = `${m.pixelsCleaned}${enc.explicit}${enc.littleEndian}`;
    let b = codeItems.get(key);
    if (!b) codeItems.set(key, (b = encodeCodeItems(methodCodes(m), enc)));
    return b;
  };

  /**
   * The input's header and size. A small file is read whole, once, and indexed whole: the
   * same bytes and index serve the decisions and the rewrite (no second read or parse). A
   * larger one: its head read synchronously and parsed in memory, a longer header through
   * the core's reader, and the rewrite streams it.
   */
  async function prepare(input: string): Promise<{ h: Header; size: number; head?: Buffer; whole?: Buffer }> {
    try {
      const head = await io.readHead({ file: input, wholeLimit: IN_MEMORY_LIMIT, headBytes: HEAD_BYTES }, headBuffers);
      if (head.bytes) {
        const whole = head.bytes.length === head.size && head.size <= IN_MEMORY_LIMIT;
        try {
          const h = parseBytes(head.bytes, { stopBeforePixels: !whole, file: input });
          return { h, size: head.size, head: head.buffer, whole: whole ? head.bytes : undefined };
        } catch (err) {
          // A header longer than the first read (or a broken one): the core's reader decides.
          headBuffers.release(head.buffer);
          if (!(err instanceof DicomParseError) || head.bytes.length === head.size) throw err;
        }
      } else headBuffers.release(head.buffer);
      return { h: await readHeaderFull(input), size: head.size };
    } catch (err) {
      if (err instanceof DicomParseError) throw new RefusedError(`not readable as DICOM: ${err.message}`);
      if ((err as NodeJS.ErrnoException).code) throw new RefusedError(`cannot read the file: ${(err as NodeJS.ErrnoException).code}`);
      throw err;
    }
  }

  /** The masked pixel data, or undefined (no burned-in issue / allowed); throws RefusedError to quarantine. */
  async function burnedIn(h: Header, input: string): Promise<Uint8Array | undefined> {
    // Without a series lookup there is nothing to await: the header alone answers.
    const reason = opts.seriesClasses ? await burnedInReason(h, opts.seriesClasses) : annotationReason(h);
    if (!reason) return undefined;
    if (rules.burnedIn.mask.length > 0) {
      const g = pixelGeometry(h);
      if (typeof g === 'string') throw new RefusedError(`burned-in identity (${reason}) and the project's mask cannot be applied: ${g}`);
      const px = h.element(PIXEL_DATA);
      if (!px || px.length === 0xffffffff) throw new RefusedError(`burned-in identity (${reason}) and no uncompressed pixel data to mask`);
      const bytes = h.bytesOf(px) ?? (await readRange(input, px.valueOffset, px.length));
      return maskPixels(bytes, g, rules.burnedIn.mask);
    }
    if (rules.burnedIn.action === 'allow') return undefined;
    throw new RefusedError(`burned-in identity: ${reason} (give the project a burnedIn mask, or burnedIn.action "allow" after review)`);
  }

  async function anonymize(input: string, outDir: string): Promise<AnonymizedResult> {
    const prepared = await prepare(input);
    try {
      return await anonymizePrepared(input, outDir, prepared.h, prepared.size, prepared.whole);
    } finally {
      // The header's windows are views of this buffer: it goes back only when the file is done.
      if (prepared.head) headBuffers.release(prepared.head);
    }
  }

  async function anonymizePrepared(input: string, outDir: string, h: Header, size: number, whole: Buffer | undefined): Promise<AnonymizedResult> {
    const sop = h.string(SOP_INSTANCE_UID);
    const study = h.string(STUDY_INSTANCE_UID);
    const series = h.string(SERIES_INSTANCE_UID);
    if (!sop) throw new RefusedError('SOP Instance UID (0008,0018) is missing');
    if (!study) throw new RefusedError('Study Instance UID (0020,000D) is missing');
    if (!series) throw new RefusedError('Series Instance UID (0020,000E) is missing');
    const maskedPixels = await burnedIn(h, input);
    const { ids, patient } = contextOf(h);
    const { pseudonym, dateOffset, scrubber } = patient;
    const newStudy = mapUid(study);
    const newSeries = mapUid(series);
    const newSop = mapUid(sop);
    for (const [name, uid] of [['StudyInstanceUID', newStudy], ['SeriesInstanceUID', newSeries], ['SOPInstanceUID', newSop]] as const) {
      if (!isPathSafeUid(uid)) throw new RefusedError(`${name} is not a valid UID and UIDs are retained: it cannot name an output file`);
    }

    const marking = { options: rules.options, pixelsCleaned: maskedPixels !== undefined, datesShifted: (dateOffset ?? 0) !== 0, version };
    const existingCodes = h.has(DEIDENTIFICATION_METHOD_CODE_SEQUENCE);
    const set = new Map<number, SetEntry>();
    const put = (e: SetEntry): void => void set.set(e.tag, e);
    put({ tag: PATIENT_ID, vr: 'LO', value: pseudonym.patientId });
    put({ tag: PATIENT_NAME, vr: 'PN', value: pseudonym.patientName });
    for (const o of rules.set) put({ tag: o.tag, vr: o.vr, value: o.value });
    put({ tag: PATIENT_IDENTITY_REMOVED, vr: 'CS', value: 'YES' });
    put({ tag: DEIDENTIFICATION_METHOD, vr: 'LO', value: methodTextFor(marking) });
    put({ tag: LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, vr: 'CS', value: longitudinalValue(marking) });
    if (maskedPixels) put({ tag: BURNED_IN_ANNOTATION, vr: 'CS', value: 'NO' });
    // The code sequence goes in as its encoded items (the core sets a sequence from them, in
    // any encoding, deflated included). One that already has the sequence keeps it as it is
    // (Type 1C is met by DeidentificationMethod).
    if (!existingCodes) put({ tag: DEIDENTIFICATION_METHOD_CODE_SEQUENCE, vr: 'SQ', value: codeItemsFor(marking, h) });

    const notes: VisitNotes = { topLevel: new Map(), replacedUids: new Set(), warnings: [] };
    const visit = createVisitor(
      compiled,
      { uids, dateOffset, scrubber, setTags: new Set(set.keys()), maskedPixels, charsets: h.charsets, littleEndian: h.littleEndian },
      notes,
    );
    const meta: Record<string, string> = { ImplementationClassUID: ANONYMIZER_CLASS_UID, ImplementationVersionName: `FIONA_${version}`.slice(0, 16) };
    if (!rules.options.has('retainUIDs') && h.meta.some((e) => e.tag === 0x00020003)) meta.MediaStorageSOPInstanceUID = newSop;
    for (const [tag, keyword] of [[0x00020016, 'SourceApplicationEntityTitle'], [0x00020017, 'SendingApplicationEntityTitle'], [0x00020018, 'ReceivingApplicationEntityTitle']] as const) {
      if (h.meta.some((e) => e.tag === tag)) meta[keyword] = 'FIONA';
    }
    if (h.meta.some((e) => e.tag === 0x00020102)) meta.PrivateInformation = '';
    if (h.meta.length === 0) for (const k of Object.keys(meta)) delete meta[k];

    const modality = sanitizePathPart(h.string(MODALITY), 'OT', 16);
    const target = join(outDir, newStudy, newSeries, `${modality}.${newSop}.dcm`);
    const tmp = tempNameFor(target);
    await makeDir(dirname(target));
    // The identifiers whose own attribute was not kept must not appear anywhere in the output.
    const needles = (): Needle[] => {
      const replaced = ids.filter((id) => {
        const op = notes.topLevel.get(id.tag);
        if (id.kind === 'date' && !datesAllRemoved) return false;
        return op !== undefined && op !== 'keep' && op !== 'recurse' && op !== 'clean';
      });
      const key = replaced.map((id) => id.tag).join(',');
      let n = patient.needles.get(key);
      if (!n) {
        n = identifierNeedles(replaced, new Set([pseudonym.patientId, pseudonym.patientName, ...rules.set.map((o) => o.value)]));
        patient.needles.set(key, n);
      }
      return [...n, ...uidNeedles(notes.replacedUids)];
    };
    const edits = { visit, set: [...set.values()], meta, fsync: false };
    let bytesOut: number;
    try {
      if (size <= IN_MEMORY_LIMIT) {
        // Small file: the output is built in memory, checked there, then written once.
        const sink = new MemorySink(outputBuffers, size);
        try {
          await rewrite(input, sink, whole ? { ...edits, source: { bytes: whole, header: h } } : edits);
          // Parts: the pixel data value may be a view of the input (kept until this file is done).
          const parts = sink.parts();
          finishParts(parts, { needles: needles() });
          await io.write({ tmp, target, parts, fsync });
          bytesOut = sink.size;
        } finally {
          sink.release();
        }
      } else {
        const r = await rewrite(input, tmp, edits);
        await finishOnDisk(tmp, { needles: needles() }, fsync);
        await publishTemp(tmp, target, fsync, dirs);
        bytesOut = r.bytesOut;
      }
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return {
      status: 'anonymized',
      source: input,
      path: target,
      study: newStudy,
      series: newSeries,
      sop: newSop,
      original: { study, series, sop },
      bytes: bytesOut,
      warnings: notes.warnings,
    };
  }

  return {
    rules,
    async anonymizeFile(input: string, outDir: string): Promise<AnonymizeResult> {
      try {
        return await anonymize(input, outDir);
      } catch (err) {
        if (!(err instanceof RefusedError)) throw err;
        const reason = err.message;
        if (!opts.quarantineDir) return { status: 'quarantined', source: input, reason };
        try {
          const q = await quarantineFile(opts.quarantineDir, input, reason, { tool: 'fiona-anonymize', project: rules.name }, true);
          return { status: 'quarantined', source: input, reason, path: q.path };
        } catch (qerr) {
          return { status: 'quarantined', source: input, reason: `${reason}; copying it to quarantine failed: ${(qerr as Error).message}` };
        }
      }
    },
  };
}

/** Buffers kept by each of the anonymizer's pools. */
const POOLED_BUFFERS = 64;

/** Inputs up to this size are read whole and their output built in memory; larger ones stream. */
export const IN_MEMORY_LIMIT = 1024 * 1024;

/** Most headers fit in this much; the first read takes it, synchronously (no thread-pool round trips). */
const HEAD_BYTES = 32 * 1024;

/** The core's rewrite, with its parse errors turned into a refusal (quarantine) instead of a crash. */
async function rewrite(input: string, output: Output, edits: RewriteOptions): Promise<RewriteResult> {
  try {
    return await rewriteDicom(input, output, edits);
  } catch (err) {
    if (err instanceof DicomParseError) throw new RefusedError(`not readable as DICOM: ${err.message}`);
    throw err;
  }
}

async function readRange(file: string, offset: number, length: number): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    if (bytesRead !== length) throw new RefusedError(`pixel data is truncated (${bytesRead} of ${length} bytes)`);
    return buf;
  } finally {
    await fh.close();
  }
}
