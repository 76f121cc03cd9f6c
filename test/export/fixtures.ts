/**
 * Shared set-up of the export tests: a synthetic study (fiona-synth) placed in a site's
 * archive, a project rules file with its secret, and a search of output bytes for every
 * identifying value the synthetic patient has.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseEvents, runTool } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';

export { filesUnder };

export interface SynthStudy {
  site: string;
  studyUid: string;
  accession: string;
  files: string[];
  /** Every identifying value of the patient and the study (names, IDs, dates, places, UIDs). */
  identifiers: string[];
  patientId: string;
}

type Summary = {
  patients: Array<{
    patient: Record<string, string | number>;
    studies: Array<Record<string, string | number | unknown[]>>;
  }>;
};

const STUDY_KEYS = [
  'StudyInstanceUID', 'AccessionNumber', 'StudyID', 'InstitutionName', 'InstitutionAddress', 'InstitutionalDepartmentName',
  'ReferringPhysicianName', 'PerformingPhysicianName', 'OperatorsName', 'StationName', 'DeviceSerialNumber',
  'RequestedProcedureID', 'ScheduledProcedureStepID', 'PerformedProcedureStepID',
];
const PATIENT_KEYS = ['PatientName', 'PatientID', 'OtherPatientIDs', 'PatientBirthDate', 'PatientAddress', 'PatientTelephoneNumbers'];

/** Names also as their parts and in upper case (DICOM PN, free text). */
function spellings(v: string): string[] {
  const out = new Set([v, v.toUpperCase()]);
  for (const part of v.split(/[\^, ]+/)) {
    if (/^(Dr\.|Norway|Germany|Bergen|University|Hospital|Radiology|Clinic|Sykehus)$/i.test(part)) continue;
    // Short digit runs (house numbers, postal codes) turn up by chance in UIDs and pixels.
    if (/^\d+$/.test(part) ? part.length < 7 : part.length < 4) continue;
    out.add(part);
    out.add(part.toUpperCase());
  }
  return [...out];
}

/** fiona-synth into a folder, then copied into <site>/archive/<Study>/<Series>/<SOP>.dcm. */
export async function synthStudy(dir: string, args: string[] = []): Promise<SynthStudy> {
  const syn = join(dir, `syn-${randomBytes(3).toString('hex')}`);
  const r = await runTool('fiona-synth', ['--out', syn, '--patients', '1', '--series', '3', '--instances', '4', '--rows', '64', '--json', '--quiet', ...args]);
  expect(r.exitCode, String(r.stderr)).toBe(0);
  const events = parseEvents(r.stdout);
  const summary = events.find((e) => e.event === 'synth-summary') as unknown as Summary;
  const files = events.filter((e) => e.event === 'synthesized');
  const site = join(dir, `site-${randomBytes(3).toString('hex')}`);
  const placed: string[] = [];
  for (const f of files) {
    const target = join(site, 'archive', String(f.study), String(f.series), `${String(f.sop)}.dcm`);
    await mkdir(join(site, 'archive', String(f.study), String(f.series)), { recursive: true });
    await copyFile(String(f.path), target);
    placed.push(target);
  }
  const p = summary.patients[0]!;
  const s = p.studies[0]!;
  const ids = new Set<string>();
  for (const k of PATIENT_KEYS) if (typeof p.patient[k] === 'string' && p.patient[k] !== '') spellings(String(p.patient[k])).forEach((x) => ids.add(x));
  for (const k of STUDY_KEYS) if (typeof s[k] === 'string' && s[k] !== '') spellings(String(s[k])).forEach((x) => ids.add(x));
  for (const f of files) {
    ids.add(String(f.series));
    ids.add(String(f.sop));
  }
  return {
    site,
    studyUid: String(s.StudyInstanceUID),
    accession: String(s.AccessionNumber),
    files: placed,
    identifiers: [...ids],
    patientId: String(p.patient.PatientID),
  };
}

/** A project rules file (basic profile, dates shifted, derived UIDs) and its secret. */
export async function projectRules(dir: string, name = 'STUDYX', extra: Record<string, unknown> = {}): Promise<string> {
  const secret = join(dir, `${name}.key`);
  await writeFile(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
  const rules = join(dir, `${name}.json`);
  await writeFile(
    rules,
    JSON.stringify({ name, profile: 'basic', options: ['retain-longitudinal-modified-dates'], secretFile: secret, pseudonym: { unmapped: 'derive' }, ...extra }, null, 2),
  );
  return rules;
}

/** Unpack an archive (unzip, or 7z with a password) into a fresh folder; returns it. */
export async function extract(zip: string, into: string, password?: string): Promise<string> {
  await mkdir(into, { recursive: true });
  if (password) await execa('7z', ['x', `-p${password}`, `-o${into}`, zip], { stdout: 'ignore' });
  else await execa('unzip', ['-q', zip, '-d', into]);
  return into;
}

/**
 * Whether `text` holds the value. A short all-digit value (a device serial number like
 * 10959) turns up by chance inside the keyed UIDs of the output (39 random digits each), so
 * it counts only where it stands alone, as an element value does (its neighbours are length
 * and tag bytes, padding or delimiters, never digits or the dots of a UID).
 */
function holds(text: string, id: string): boolean {
  if (!/^\d{1,6}$/.test(id)) return text.includes(id);
  return new RegExp(`(?<![0-9.])${id}(?![0-9.])`).test(text);
}

/** Fail with the value's name (never print the file) when any identifying value is in the bytes. */
export async function expectNoIdentifiers(dir: string, identifiers: string[], also: string[] = []): Promise<number> {
  const files = await filesUnder(dir);
  for (const f of files) {
    const bytes = await readFile(f);
    const text = bytes.toString('latin1');
    for (const id of identifiers) {
      expect(holds(text, id), `${f.slice(dir.length)} holds an identifying value (${id.slice(0, 3)}...)`).toBe(false);
      expect(holds(f, id), `a path holds an identifying value (${id.slice(0, 3)}...)`).toBe(false);
    }
  }
  for (const name of also) for (const id of identifiers) expect(name.includes(id), `${name} holds an identifying value`).toBe(false);
  return files.length;
}
