import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { relative } from 'node:path';
import { errorMessage } from '../errors.js';
import { readStudy, studySignature, StudyNotFoundError, type StudyInfo } from '../route/study.js';
import type { ResultSink } from '../route/sink.js';
import type { Project, RoutingRules } from '../route/types.js';
import { tryLock } from '../site/lock.js';
import type { SiteLayout } from '../site/layout.js';
import type { AnonymizedResult, QuarantinedResult } from '../deid/anonymizer.js';
import {
  deliver, openTransport, parseDestination, recordDelivery,
  type Destination, type FileResult, type RetryPolicy, type SendFile, type Transport,
} from '../transport/index.js';
import { createTransferAnonymizer, type TransferAnonymizer } from './anonymize.js';
import { selectSeries } from './features.js';
import { RequestStore, type AttemptRecord, type TransferRequest, type TransferResult } from './requests.js';

/**
 * Works off the transfer queue: for each due request (oldest first), anonymize the study
 * with its project's rules and the request's pseudonym and event, send it to the project's
 * destination, record the result. One transfer per key at a time (a pid lock per key), so
 * cron runs that overlap share the queue instead of doubling work. A run killed at any
 * point leaves the request queued and its result marked running; the next run counts that
 * attempt as interrupted and starts the study again from the archive. De-identified UIDs
 * are keyed and repeatable, so a resend overwrites at the destination and duplicates nothing.
 */
export interface TransferLog {
  info(m: string): void;
  warn(m: string): void;
}

export interface TransferRunnerOptions {
  site: SiteLayout;
  rules: RoutingRules;
  store?: RequestStore;
  sink?: ResultSink;
  /** Attempts per request revision before it fails for good (default 5). */
  maxAttempts?: number;
  /** Wait before the 2nd attempt; doubles each time, capped at maxRetryDelayMs (default 60 s, 1 h). */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Retries inside one attempt, per file, by the transport (default 2 quick retries). */
  sendRetry?: RetryPolicy;
  /** Defaults for sftp:// destinations whose project names no key. */
  sftp?: { identity?: string; knownHosts?: string };
  associations?: number;
  version?: string;
  log?: TransferLog;
  now?: () => Date;
}

export type OutcomeStatus = 'done' | 'retry' | 'failed' | 'report-pending' | 'skipped';

export interface TransferOutcome {
  id: string;
  status: OutcomeStatus;
  request?: TransferRequest;
  result?: TransferResult;
  /** Why skipped, or the error. */
  reason?: string;
  /** Route bumped the request while it ran: it stays queued for the new data. */
  requeued?: boolean;
}

/** Files de-identified before their batch is sent (a series, or this many of a long one). */
const BATCH = 100;

function* batches(files: string[], size: number): Generator<string[]> {
  for (let i = 0; i < files.length; i += size) yield files.slice(i, i + size);
}

/** A failure no retry can mend (the study is gone, the project is unknown, every instance refused). */
class PermanentError extends Error {}

const SILENT: TransferLog = { info: () => {}, warn: () => {} };

export class TransferRunner {
  readonly store: RequestStore;
  private readonly o: Required<Pick<TransferRunnerOptions, 'maxAttempts' | 'retryDelayMs' | 'maxRetryDelayMs' | 'sendRetry'>> & TransferRunnerOptions;
  private readonly log: TransferLog;

  constructor(o: TransferRunnerOptions) {
    this.store = o.store ?? new RequestStore(o.site);
    this.o = {
      maxAttempts: 5,
      retryDelayMs: 60_000,
      maxRetryDelayMs: 3_600_000,
      sendRetry: { retries: 2, initialDelayMs: 1_000, maxDelayMs: 10_000 },
      ...o,
    };
    this.log = o.log ?? SILENT;
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /** Requests whose turn it is: queued, and not waiting out a retry delay. */
  async due(): Promise<TransferRequest[]> {
    const out: TransferRequest[] = [];
    const now = this.now().getTime();
    for (const r of await this.store.listQueued()) {
      const res = await this.store.readResult(r.id).catch(() => undefined);
      if (res?.status === 'retry' && res.revision === r.revision && res.nextAttempt && Date.parse(res.nextAttempt) > now) continue;
      out.push(r);
    }
    return out;
  }

  /** Work off the due requests; with `once`, stop after the first one this run took. */
  async run(opts: { once?: boolean; signal?: AbortSignal } = {}): Promise<TransferOutcome[]> {
    const outcomes: TransferOutcome[] = [];
    for (const r of await this.due()) {
      if (opts.signal?.aborted) break;
      const o = await this.transferOne(r.id);
      outcomes.push(o);
      if (opts.once && o.status !== 'skipped') break;
    }
    return outcomes;
  }

  async transferOne(id: string): Promise<TransferOutcome> {
    const lock = await tryLock(this.store.transferLockPath(id));
    if (!lock) return { id, status: 'skipped', reason: 'another fiona-transfer is working on it' };
    try {
      let request: TransferRequest | undefined;
      try {
        request = await this.store.readRequest(id);
      } catch (err) {
        // A damaged request would fail every run: set it aside, with the reason in the message.
        const aside = await this.store.setAside(id).catch(() => undefined);
        return { id, status: 'failed', reason: `the request file ${this.store.requestPath(id)} cannot be read (${errorMessage(err)})${aside ? `; moved to ${aside}` : ''}` };
      }
      if (!request) return { id, status: 'skipped', reason: 'no longer queued' };
      return await this.attempt(request);
    } finally {
      await lock.release();
    }
  }

  private async attempt(request: TransferRequest): Promise<TransferOutcome> {
    const prev = await this.store.readResult(request.id).catch(() => undefined);
    const sameRevision = prev !== undefined && prev.revision === request.revision;
    if (sameRevision && prev.status === 'retry' && prev.nextAttempt && Date.parse(prev.nextAttempt) > this.now().getTime()) {
      return { id: request.id, status: 'skipped', reason: `next attempt at ${prev.nextAttempt}`, request, result: prev };
    }
    if (sameRevision && prev.status === 'sent' && prev.reportPending) return this.report(request, prev);

    const project = this.o.rules.projects.get(request.project);
    if (project && !project.active) {
      return { id: request.id, status: 'skipped', reason: `project ${project.name} is inactive; the request stays queued`, request };
    }
    const history: AttemptRecord[] = [...(prev?.history ?? [])];
    if (prev?.status === 'running') {
      // Its run died (we hold the key's lock now): that attempt counts, and says so.
      const last = history[history.length - 1];
      if (last && last.status === 'running') {
        last.status = 'interrupted';
        last.error = `the run (pid ${prev.pid ?? '?'}) ended before finishing`;
      }
    }
    const attempts = (sameRevision ? prev.attempts : 0) + 1;
    const started = this.now().toISOString();
    const result: TransferResult = {
      id: request.id,
      study: request.study,
      project: request.project,
      pseudonym: request.pseudonym,
      event: request.event,
      status: 'running',
      revision: request.revision,
      attempts,
      pid: process.pid,
      started,
      history: [...history, { attempt: attempts, started, status: 'running' }],
    };
    await this.store.writeResult(result);
    this.log.info(`${request.study} -> ${request.project} as ${request.pseudonym}: attempt ${attempts} (pid ${process.pid} on ${hostname()})`);
    try {
      if (!project) throw new PermanentError(`project ${request.project} is not in the rules (${this.o.rules.origin})`);
      await this.transferStudy(request, project, result);
    } catch (err) {
      return this.failed(request, result, err);
    } finally {
      await rm(this.store.workDir(request.id), { recursive: true, force: true });
    }
    return this.report(request, result);
  }

  /** Anonymize and send; fills `result` (status 'sent') or throws. */
  private async transferStudy(request: TransferRequest, project: Project, result: TransferResult): Promise<void> {
    let study: StudyInfo;
    try {
      study = await readStudy(this.o.site, request.study, { seriesHeaders: true });
    } catch (err) {
      if (err instanceof StudyNotFoundError) throw new PermanentError(`the study is no longer on the gateway (${err.message}); send it again from the PACS`);
      throw err;
    }
    // Everything seen counts, sent or not: a dropped series must not make the study look new.
    result.signature = studySignature(study);
    const { send, skipped } = selectSeries(study, project.features);
    result.skipped = skipped;
    const files = send.flatMap((s) => s.files);
    const work = this.store.workDir(request.id);
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });

    const dest = parseDestination(project.destination);
    result.destination = dest.url;
    const outputs = await this.anonymizeAndSend(request, project, files, work, dest, result);
    result.series = new Set(outputs.map((r) => r.series)).size;
    result.instances = outputs.length;
    result.status = 'sent';
    result.finished = this.now().toISOString();
    result.error = undefined;
    result.nextAttempt = undefined;
    result.reportPending = this.o.sink !== undefined;
    const last = result.history[result.history.length - 1]!;
    last.status = 'sent';
    last.finished = result.finished;
    await this.store.writeResult(result);
  }

  /**
   * De-identify batch by batch (a series, or 100 files of a long one) and send each batch
   * while the next is de-identified: the two steps overlap instead of adding up. One
   * transport for the study; a batch is sent only after the previous one finished.
   */
  private async anonymizeAndSend(
    request: TransferRequest,
    project: Project,
    files: string[],
    work: string,
    dest: Destination,
    result: TransferResult,
  ): Promise<AnonymizedResult[]> {
    const timings = { anonymizeMs: 0, sendMs: 0 };
    result.timings = timings;
    if (files.length === 0) return [];
    let anonymizer: TransferAnonymizer;
    try {
      anonymizer = await createTransferAnonymizer({ site: this.o.site, project, request, outDir: work, version: this.o.version });
    } catch (err) {
      throw new PermanentError(`anonymize: ${errorMessage(err)}`);
    }
    const outputs: AnonymizedResult[] = [];
    const refused: QuarantinedResult[] = [];
    const sent: FileResult[] = [];
    let transport: Transport | undefined;
    // A send in flight never rejects (a rejection nobody awaits yet would end the process):
    // its outcome is kept and looked at before the next batch goes out.
    type SendOutcome = { results: FileResult[] } | { error: unknown };
    let sending: Promise<SendOutcome> = Promise.resolve({ results: [] });
    const finishSend = async (): Promise<void> => {
      const done = await sending;
      sending = Promise.resolve({ results: [] });
      if ('error' in done) throw done.error;
      sent.push(...done.results);
      const bad = done.results.filter((r) => !r.ok);
      if (bad.length > 0) throw new Error(`send to ${dest.url}: ${bad.length} of ${done.results.length} instances failed (${bad[0]!.reason ?? 'no reason given'})`);
    };
    try {
      for (const batch of batches(files, BATCH)) {
        const t = Date.now();
        let step;
        try {
          step = await anonymizer.run(batch);
        } catch (err) {
          throw new PermanentError(`anonymize: ${errorMessage(err)}`);
        }
        timings.anonymizeMs += Date.now() - t;
        outputs.push(...step.outputs);
        refused.push(...step.refused);
        await finishSend();
        if (step.outputs.length === 0) continue;
        transport ??= this.openTransport(project, dest);
        const sendFiles: SendFile[] = step.outputs.map((r) => ({ path: r.path, name: relative(work, r.path) }));
        const ts = Date.now();
        sending = deliver(transport, sendFiles, this.o.sendRetry).then(
          (results): SendOutcome => ({ results }),
          (error: unknown): SendOutcome => ({ error }),
        ).finally(() => {
          timings.sendMs += Date.now() - ts;
        });
      }
      await finishSend();
    } finally {
      // Never leave a send running behind a failure: wait for it, then close the connection.
      await sending;
      await transport?.close();
    }
    for (const r of refused) result.skipped!.push({ series: '', reason: `instance refused by de-identification: ${r.reason}` });
    if (outputs.length === 0) {
      throw new PermanentError(`anonymize: all ${files.length} instances were refused (first: ${refused[0]?.reason ?? 'no reason given'})`);
    }
    if (refused.length > 0) this.log.warn(`${request.study} -> ${project.name}: ${refused.length} of ${files.length} instances refused by de-identification (${refused[0]!.reason})`);
    result.mappedStudyUid = [...new Set(outputs.map((r) => r.study))].join(',');
    result.bytes = sent.reduce((n, r) => n + (r.bytes ?? 0), 0);
    await recordDelivery(this.o.site.root, { study: request.study, to: dest.url, tool: 'fiona-transfer', kind: 'sent', files: sent.length });
    return outputs;
  }

  private openTransport(project: Project, dest: Destination): Transport {
    const identity = project.identity ?? this.o.sftp?.identity;
    const knownHosts = project.knownHosts ?? this.o.sftp?.knownHosts;
    return openTransport(dest, {
      dicom: { associations: this.o.associations ?? 1 },
      sftp: identity && knownHosts ? { identity, knownHosts } : undefined,
    });
  }

  /** Tell the sink (REDCap) and mark the request done; a sink failure leaves it 'sent'. */
  private async report(request: TransferRequest, result: TransferResult): Promise<TransferOutcome> {
    if (this.o.sink) {
      try {
        await this.o.sink.transferFinished(request, { ...result, status: 'done' });
      } catch (err) {
        const reason = `sent, but recording the result in ${this.o.sink.origin} failed: ${errorMessage(err)}`;
        result.reportPending = true;
        await this.store.writeResult(result);
        return { id: request.id, status: 'report-pending', request, result, reason };
      }
    }
    result.status = 'done';
    result.reportPending = undefined;
    const last = result.history[result.history.length - 1];
    if (last) last.status = 'done';
    await this.store.writeResult(result);
    const left = await this.store.settle(request.id, request.revision, 'done');
    return { id: request.id, status: 'done', request, result, requeued: !left };
  }

  private async failed(request: TransferRequest, result: TransferResult, err: unknown): Promise<TransferOutcome> {
    const permanent = err instanceof PermanentError;
    const message = errorMessage(err);
    const final = permanent || result.attempts >= this.o.maxAttempts;
    const now = this.now();
    result.status = final ? 'failed' : 'retry';
    result.error = message;
    result.finished = now.toISOString();
    result.reportPending = undefined;
    if (!final) {
      const delay = Math.min(this.o.maxRetryDelayMs, this.o.retryDelayMs * 2 ** (result.attempts - 1));
      result.nextAttempt = new Date(now.getTime() + delay).toISOString();
    } else {
      result.nextAttempt = undefined;
    }
    const last = result.history[result.history.length - 1]!;
    last.status = result.status;
    last.finished = result.finished;
    last.error = message;
    await this.store.writeResult(result);
    let requeued = false;
    if (final) requeued = !(await this.store.settle(request.id, request.revision, 'failed'));
    if (this.o.sink) {
      // FIONA recorded every failed attempt; a sink that is down too is only logged here:
      // the failure itself is safe in the local result.
      await this.o.sink.transferFinished(request, result).catch((e: unknown) => this.log.warn(`recording the failure in ${this.o.sink!.origin} failed: ${errorMessage(e)}`));
    }
    return { id: request.id, status: final ? 'failed' : 'retry', request, result, reason: message, requeued };
  }
}
