import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { BaseEvent } from '../../events/types.js';
import { makeEvent } from '../../events/types.js';
import { removePartial } from '../archive.js';
import { makeAnonymizer, type DeidSettings } from '../deid.js';
import { sendLinkMail, sendPasswordMail, type MailSettings } from '../mail.js';
import { rulesWithRoutedPseudonym } from '../participant.js';
import type { ProjectRules } from '../../deid/project.js';
import { recordMeasurement } from '../measurements.js';
import { ExportError, runExport } from '../run.js';
import type { ExportSource } from '../source.js';
import type { EntryRecord } from '../zip/index.js';
import { jobPassword, type ExportJob } from './job.js';
import type { Claim, ExportQueue, ResultLine } from './state.js';

/**
 * Queue mode: take jobs from FIONA's jobs file one at a time, each ending as done or failed
 * (with the reason) in the results file; a job whose failure may pass (PACS down, disk
 * full, mail server away) stays pending until the attempt limit. Safe under cron: runs
 * overlap without sharing a job, and a run killed at any point is finished by the next.
 */
export interface QueueRunOptions {
  queue: ExportQueue;
  once: boolean;
  outDir: string;
  level: number;
  /** From --password-file; a job's own password (FIONA field) wins. */
  password?: Buffer;
  /** Convert to NIfTI for every job (jobs with exportType NIFTI always are). */
  nifti: boolean;
  /** De-identification options on top of each job's project rules. */
  deid: Omit<DeidSettings, 'project'>;
  configRaw: Record<string, unknown>;
  /** Where a job's DICOM come from. */
  sourceFor(job: ExportJob): ExportSource;
  mail?: MailSettings;
  /** Download links are <linkBase><archive file name>. */
  linkBase?: string;
  measurementsFile?: string;
  fionaVersion: string;
  dcm2niix?: string;
  emit(e: BaseEvent): void;
  log(message: string): void;
  onProgress?: (stage: string, done: number, total?: number) => void;
  onEntry?: (e: EntryRecord) => void;
}

export interface QueueSummary {
  done: number;
  failed: number;
  retry: number;
  busy: number;
}

function archiveName(job: ExportJob, token: string): string {
  return `${job.project}_${token}`;
}

async function fail(claim: Claim, o: QueueRunOptions, reason: string): Promise<ResultLine> {
  const r = await claim.finish('failed', { reason });
  o.emit(makeEvent('export-failed', { job: claim.entry.id, line: claim.entry.line, project: claim.entry.job?.project, reason, attempts: r.attempts }));
  o.log(`job ${claim.entry.id.slice(0, 12)} (line ${claim.entry.line}) failed: ${reason}`);
  return r;
}

/** A failure that may pass: retry on a later run, or give up at the limit. */
async function transient(claim: Claim, o: QueueRunOptions, reason: string): Promise<'failed' | 'retry'> {
  if (claim.state.attempts >= o.queue.opts.maxAttempts) {
    await fail(claim, o, `gave up after ${claim.state.attempts} attempts: ${reason}`);
    return 'failed';
  }
  await claim.save({ status: claim.state.archive && claim.state.status === 'published' ? 'published' : 'pending', lastError: reason });
  o.emit(makeEvent('export-retry', { job: claim.entry.id, line: claim.entry.line, project: claim.entry.job?.project, reason, attempts: claim.state.attempts }));
  o.log(`job ${claim.entry.id.slice(0, 12)} (line ${claim.entry.line}) will be retried (attempt ${claim.state.attempts} of ${o.queue.opts.maxAttempts}): ${reason}`);
  return 'retry';
}

async function notify(claim: Claim, job: ExportJob, o: QueueRunOptions, password: Buffer | undefined): Promise<void> {
  if (!job.email || !o.mail) return;
  const name = `${archiveName(job, claim.state.token)}.zip`;
  const reference = claim.state.token.slice(0, 6).toUpperCase();
  const mails = { ...(claim.state.mails ?? {}) };
  if (!mails.link) {
    await sendLinkMail(o.mail, {
      to: job.email,
      project: job.project,
      event: job.event,
      participant: job.patientid,
      link: o.linkBase ? `${o.linkBase}${encodeURIComponent(name)}` : name,
      reference,
      requester: job.sender_email,
      encrypted: password !== undefined,
    });
    mails.link = true;
    await claim.save({ mails });
    o.emit(makeEvent('mailed', { job: claim.entry.id, kind: 'link', to: job.email }));
  }
  if (password && !mails.password) {
    await sendPasswordMail(o.mail, job.email, reference, password.toString('utf8'));
    mails.password = true;
    await claim.save({ mails });
    o.emit(makeEvent('mailed', { job: claim.entry.id, kind: 'password', to: job.email }));
  }
}

/**
 * The job's de-identification rules. The pseudonym is the job's patientid, else the
 * command's --patient-id, else (a study from the site) the one fiona-route gave the study
 * in the project, so the archive and the research PACS name the participant alike.
 */
async function jobRules(job: ExportJob, o: QueueRunOptions): Promise<ProjectRules> {
  const s = { ...o.deid, project: job.project, patientId: job.patientid ?? o.deid.patientId };
  let site: string | undefined;
  if (s.patientId === undefined) {
    try {
      const source = o.sourceFor(job);
      if (source.kind === 'site') site = source.site;
    } catch {
      // no source: the export itself fails with the reason
    }
  }
  return (await rulesWithRoutedPseudonym(s, o.configRaw, site, job.studyinstanceuid)).rules;
}

/** Work on one claimed job to its end (or to a retry). */
async function processClaim(claim: Claim, o: QueueRunOptions): Promise<'done' | 'failed' | 'retry'> {
  const { entry } = claim;
  if (!entry.job) {
    await fail(claim, o, entry.error ?? 'unreadable job');
    return 'failed';
  }
  const job = entry.job;
  if (job.email && !o.mail) {
    await fail(claim, o, 'the job asks for a mail and no SMTP server is configured (--smtp or "smtp" in the config)');
    return 'failed';
  }
  const already = Math.max(claim.state.attempts, job.downloadAttempts);
  if (already >= o.queue.opts.maxAttempts) {
    await fail(claim, o, `attempt limit reached (${already} of ${o.queue.opts.maxAttempts})${claim.state.lastError ? `: ${claim.state.lastError}` : ''}`);
    return 'failed';
  }
  // Count the attempt before the work: a run killed mid-job has used it.
  await claim.save({ attempts: already + 1 });
  const name = archiveName(job, claim.state.token);
  const password = jobPassword(job) ?? o.password;
  const start = performance.now();
  let stages: Record<string, number> = {};

  const published = claim.state.status === 'published' && claim.state.archive !== undefined && existsSync(claim.state.archive);
  if (!published) {
    await claim.save({ status: 'running' });
    o.emit(makeEvent('export-started', { job: entry.id, line: entry.line, project: job.project, attempt: claim.state.attempts }));
    let deid;
    try {
      deid = makeAnonymizer(await jobRules(job, o), { version: o.fionaVersion });
    } catch (err) {
      await fail(claim, o, `project ${job.project}: ${(err as Error).message}`);
      return 'failed';
    }
    try {
      await removePartial(o.outDir, name);
      const outcome = await runExport({
        project: job.project,
        studyUid: job.studyinstanceuid,
        exportType: job.exportType,
        event: job.event,
        nifti: o.nifti || job.exportType === 'NIFTI',
        source: o.sourceFor(job),
        deid,
        outDir: o.outDir,
        name,
        level: o.level,
        password,
        workDir: claim.workDir,
        fionaVersion: o.fionaVersion,
        dcm2niix: o.dcm2niix,
        onProgress: o.onProgress,
        onEntry: o.onEntry,
      });
      stages = outcome.stages;
      await claim.save({ status: 'published', archive: outcome.archive.path, md5: outcome.archive.md5, bytes: outcome.archive.bytes });
      o.emit(
        makeEvent('exported', {
          job: entry.id,
          project: job.project,
          path: outcome.archive.path,
          md5: outcome.archive.md5,
          bytes: outcome.archive.bytes,
          series: outcome.series.length,
          instances: outcome.instances,
          notReleased: outcome.notReleased.reduce((n, r) => n + r.count, 0),
          encrypted: password !== undefined,
        }),
      );
    } catch (err) {
      const e = err instanceof ExportError ? err : new ExportError((err as Error).message, false);
      if (e.permanent) {
        await fail(claim, o, e.message);
        return 'failed';
      }
      return transient(claim, o, e.message);
    }
  }
  try {
    await notify(claim, job, o, password);
  } catch (err) {
    return transient(claim, o, (err as Error).message);
  }
  const seconds = Math.round(performance.now() - start) / 1000;
  if (o.measurementsFile) {
    try {
      await recordMeasurement(o.measurementsFile, job.project, seconds, stages);
    } catch (err) {
      o.log(`warning: cannot update ${o.measurementsFile}: ${(err as Error).message}`);
    }
  }
  await claim.finish('done', { seconds });
  o.emit(makeEvent('export-done', { job: entry.id, line: entry.line, project: job.project, path: claim.state.archive, seconds }));
  return 'done';
}

export async function processQueue(o: QueueRunOptions): Promise<QueueSummary> {
  const summary: QueueSummary = { done: 0, failed: 0, retry: 0, busy: 0 };
  // FIONA took the jobs with the fewest attempts first, so one bad job cannot block the rest.
  const open = await o.queue.open();
  open.sort((a, b) => (a.state?.attempts ?? 0) - (b.state?.attempts ?? 0) || a.entry.line - b.entry.line);
  for (const { entry } of open) {
    const claim = await o.queue.claim(entry);
    if (!claim) {
      summary.busy++;
      continue;
    }
    try {
      const r = await processClaim(claim, o);
      summary[r === 'retry' ? 'retry' : r]++;
    } catch (err) {
      // Not a job's fault (the state folder cannot be written, ...): the job stays pending
      // with its attempt counted, and the queue goes on.
      const reason = `unexpected: ${(err as Error).message}`;
      o.log(`job ${entry.id.slice(0, 12)} (line ${entry.line}): ${reason}`);
      summary[await transient(claim, o, reason).catch(() => 'retry' as const)]++;
    } finally {
      await claim.release();
    }
    if (o.once) break;
  }
  return summary;
}

/** A fresh random token for one-off exports (the archive name). */
export function newToken(): string {
  return randomBytes(8).toString('hex');
}
