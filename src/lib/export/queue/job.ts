import { createHash } from 'node:crypto';
import { isValidUid } from '../../dicom/uid.js';

/**
 * One export request, as FIONA's web application wrote it into
 * prepared_downloads_list.jobs (one JSON object per line):
 *   {"project":"P","patientid":"P001","studyinstanceuid":"1.2...","accessionnumber":"A1",
 *    "exportType":"DICOM","event":"baseline","destination":"","downloadAttempts":0,
 *    "email":"x@y","password":"<base64>","sender_email":"z@y","user":"u"}
 * Field names are FIONA's. `patientid` is the research pseudonym (participant ID) the
 * export is labelled with, not the hospital's patient ID.
 */
export interface ExportJob {
  project: string;
  /** The research pseudonym used as PatientID/PatientName in the export. */
  patientid?: string;
  studyinstanceuid?: string;
  accessionnumber?: string;
  exportType: ExportType;
  event?: string;
  destination?: string;
  downloadAttempts: number;
  email?: string;
  /** FIONA: the archive password, base64. */
  password?: string;
  sender_email?: string;
  user?: string;
}

export const EXPORT_TYPES = ['DICOM', 'PURE', 'NIFTI'] as const;
export type ExportType = (typeof EXPORT_TYPES)[number];

/** A line of the jobs file: parsed, or the reason it cannot be. */
export interface JobEntry {
  /** 1-based line number in the jobs file. */
  line: number;
  /** Stable id: hash of the line text and of how many identical lines came before it. */
  id: string;
  job?: ExportJob;
  error?: string;
}

export class JobError extends Error {}

const EMAIL = /^[^\s@<>(),;:"\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/;

function optText(o: Record<string, unknown>, key: string, max: number): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') throw new JobError(`field "${key}" must be a string`);
  if (v.length > max) throw new JobError(`field "${key}" is longer than ${max} characters`);
  // Control characters and backslashes never belong in these fields (DICOM VR rules, mail headers).
  if (/[\x00-\x1f\x7f\\]/.test(v)) throw new JobError(`field "${key}" holds a control character or backslash`);
  return v.trim();
}

/** Validate one parsed job object; throws JobError naming the field. */
export function validateJob(raw: unknown): ExportJob {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new JobError('a job must be a JSON object');
  const o = raw as Record<string, unknown>;
  const project = optText(o, 'project', 64);
  if (!project) throw new JobError('missing field "project"');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(project)) throw new JobError(`field "project" is not a project name: ${JSON.stringify(project)}`);
  const studyinstanceuid = optText(o, 'studyinstanceuid', 64);
  const accessionnumber = optText(o, 'accessionnumber', 16);
  if (!studyinstanceuid && !accessionnumber) throw new JobError('missing field "studyinstanceuid" (or "accessionnumber")');
  if (studyinstanceuid && !isValidUid(studyinstanceuid)) throw new JobError('field "studyinstanceuid" is not a valid UID');
  const typeText = (optText(o, 'exportType', 32) ?? 'DICOM').toUpperCase();
  if (!(EXPORT_TYPES as readonly string[]).includes(typeText)) {
    throw new JobError(`field "exportType" ${JSON.stringify(typeText)} is not one fiona makes (${EXPORT_TYPES.join(', ')})`);
  }
  const destination = optText(o, 'destination', 64);
  if (destination && !['download', 'local', 'zip'].includes(destination.toLowerCase())) {
    throw new JobError(`field "destination" ${JSON.stringify(destination)} is not handled by fiona-zip-export (deliveries elsewhere: fiona-send)`);
  }
  const attemptsRaw = o.downloadAttempts ?? 0;
  const downloadAttempts = typeof attemptsRaw === 'string' && /^\d+$/.test(attemptsRaw) ? Number(attemptsRaw) : attemptsRaw;
  if (typeof downloadAttempts !== 'number' || !Number.isInteger(downloadAttempts) || downloadAttempts < 0) {
    throw new JobError('field "downloadAttempts" must be a whole number');
  }
  const email = optText(o, 'email', 254);
  if (email && !EMAIL.test(email)) throw new JobError('field "email" is not an e-mail address');
  const senderEmail = optText(o, 'sender_email', 254);
  if (senderEmail && !EMAIL.test(senderEmail)) throw new JobError('field "sender_email" is not an e-mail address');
  const password = optText(o, 'password', 1024);
  if (password !== undefined) {
    const decoded = Buffer.from(password, 'base64');
    if (decoded.length === 0 || decoded.toString('base64').replace(/=+$/, '') !== password.replace(/=+$/, '')) {
      throw new JobError('field "password" is not base64 (FIONA stores the archive password base64-encoded)');
    }
  }
  return {
    project,
    patientid: optText(o, 'patientid', 64),
    studyinstanceuid,
    accessionnumber,
    exportType: typeText as ExportType,
    event: optText(o, 'event', 64),
    destination,
    downloadAttempts,
    email,
    password,
    sender_email: senderEmail,
    user: optText(o, 'user', 64),
  };
}

function jobId(text: string, occurrence: number): string {
  return createHash('sha256').update(`${occurrence}\n${text}`).digest('hex').slice(0, 32);
}

/**
 * Parse the whole jobs file. Blank lines are skipped; a line that is not valid JSON or not
 * a valid job becomes an entry with an error (it is failed with that reason, never
 * silently dropped). A last line without a newline that is not valid JSON may be one being
 * appended right now: it is left for the next run.
 */
export function parseJobsFile(text: string): JobEntry[] {
  const lines = text.split('\n');
  if (!text.endsWith('\n')) {
    const last = lines[lines.length - 1] ?? '';
    try {
      JSON.parse(last);
    } catch {
      lines.pop();
    }
  }
  const seen = new Map<string, number>();
  const entries: JobEntry[] = [];
  lines.forEach((raw, i) => {
    const t = raw.trim();
    if (t === '') return;
    const occurrence = seen.get(t) ?? 0;
    seen.set(t, occurrence + 1);
    const entry: JobEntry = { line: i + 1, id: jobId(t, occurrence) };
    try {
      entry.job = validateJob(JSON.parse(t));
    } catch (err) {
      entry.error = err instanceof SyntaxError ? `line ${i + 1} is not valid JSON: ${err.message}` : `line ${i + 1}: ${(err as Error).message}`;
    }
    entries.push(entry);
  });
  return entries;
}

/** The archive password of a job (FIONA: base64 in the job), if any. */
export function jobPassword(job: ExportJob): Buffer | undefined {
  return job.password ? Buffer.from(job.password, 'base64') : undefined;
}
