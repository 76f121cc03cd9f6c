import { randomBytes } from 'node:crypto';
import { open, readFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeJsonAtomic } from '../../site/atomic.js';
import { tryLock, type Lock } from '../../site/lock.js';
import { readTextIfExists } from '../../site/if-exists.js';
import { parseJobsFile, type JobEntry } from './job.js';

/**
 * The durable state of queue mode, beside (never inside) FIONA's jobs file, which the web
 * application owns and appends to; fiona never rewrites it.
 *
 *   <state>/jobs/<id>.json     one job's progress: status, attempts, archive, mails sent
 *   <state>/claims/<id>.lock   held (pid + host) while a run works on the job
 *   <state>/results.jsonl      one line per job that ended: done or failed, with the reason
 *   <state>/work/<id>/         the job's temp folder (removed when the job ends)
 *
 * A job is claimed by taking its lock; a lock whose process died (kill -9) is taken over at
 * once by the next run (same host), which sees the attempt that was counted before the work
 * began, cleans the temp folder and carries on. So two runs never work on the same job, and
 * no job is lost.
 */
export type JobStatus = 'pending' | 'running' | 'published' | 'done' | 'failed';

export interface JobState {
  id: string;
  line: number;
  status: JobStatus;
  attempts: number;
  /** Random, fixed at the first claim: the archive is named after it (no identifying value). */
  token: string;
  lastError?: string;
  archive?: string;
  md5?: string;
  bytes?: number;
  mails?: { link?: boolean; password?: boolean };
  created: string;
  updated: string;
}

export interface ResultLine {
  id: string;
  line: number;
  project?: string;
  status: 'done' | 'failed';
  reason?: string;
  archive?: string;
  md5?: string;
  bytes?: number;
  attempts: number;
  seconds?: number;
  time: string;
}

export interface QueueOptions {
  jobsFile: string;
  stateDir: string;
  resultsFile?: string;
  maxAttempts: number;
}

export class ExportQueue {
  readonly resultsFile: string;
  constructor(readonly opts: QueueOptions) {
    this.resultsFile = opts.resultsFile ?? join(opts.stateDir, 'results.jsonl');
  }

  statePath(id: string): string {
    return join(this.opts.stateDir, 'jobs', `${id}.json`);
  }

  workDir(id: string): string {
    return join(this.opts.stateDir, 'work', id);
  }

  async entries(): Promise<JobEntry[]> {
    const text = await readTextIfExists(this.opts.jobsFile);
    return text === undefined ? [] : parseJobsFile(text);
  }

  async state(id: string): Promise<JobState | undefined> {
    try {
      return JSON.parse(await readFile(this.statePath(id), 'utf8')) as JobState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`job state ${this.statePath(id)} is unreadable: ${(err as Error).message}`);
    }
  }

  /** Jobs that are not finished, in file order. */
  async open(): Promise<Array<{ entry: JobEntry; state?: JobState }>> {
    const out: Array<{ entry: JobEntry; state?: JobState }> = [];
    for (const entry of await this.entries()) {
      const state = await this.state(entry.id);
      if (state?.status === 'done' || state?.status === 'failed') continue;
      out.push({ entry, state });
    }
    return out;
  }

  /** Take a job: undefined when another live run holds it or it finished meanwhile. */
  async claim(entry: JobEntry): Promise<Claim | undefined> {
    const lock = await tryLock(join(this.opts.stateDir, 'claims', `${entry.id}.lock`));
    if (!lock) return undefined;
    try {
      const now = new Date().toISOString();
      const state: JobState = (await this.state(entry.id)) ?? {
        id: entry.id,
        line: entry.line,
        status: 'pending',
        attempts: 0,
        token: randomBytes(8).toString('hex'),
        created: now,
        updated: now,
      };
      if (state.status === 'done' || state.status === 'failed') {
        await lock.release();
        return undefined;
      }
      return new Claim(this, entry, state, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  async saveState(state: JobState): Promise<void> {
    state.updated = new Date().toISOString();
    await writeJsonAtomic(this.statePath(state.id), state);
  }

  /**
   * Append a result line (O_APPEND, one write, fsync: lines from concurrent runs never mix).
   * Idempotent: a job that already has a final line gets no second one (a run killed
   * between the result and the state file repeats only the state).
   */
  async appendResult(r: ResultLine): Promise<void> {
    await mkdir(dirname(this.resultsFile), { recursive: true });
    const existing = await readTextIfExists(this.resultsFile);
    if (existing?.includes(`"id":"${r.id}"`)) return;
    const fh = await open(this.resultsFile, 'a', 0o640);
    try {
      await fh.write(`${JSON.stringify(r)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

/** A job this run holds. Every change is saved before the work it describes begins. */
export class Claim {
  constructor(
    private readonly queue: ExportQueue,
    readonly entry: JobEntry,
    readonly state: JobState,
    private readonly lock: Lock,
  ) {}

  get workDir(): string {
    return this.queue.workDir(this.entry.id);
  }

  async save(patch: Partial<JobState>): Promise<void> {
    Object.assign(this.state, patch);
    await this.queue.saveState(this.state);
  }

  /** Record the end of the job: results file first, then the state (see appendResult). */
  async finish(status: 'done' | 'failed', extra: { reason?: string; seconds?: number } = {}): Promise<ResultLine> {
    const r: ResultLine = {
      id: this.entry.id,
      line: this.entry.line,
      project: this.entry.job?.project,
      status,
      reason: extra.reason,
      archive: status === 'done' ? this.state.archive : undefined,
      md5: status === 'done' ? this.state.md5 : undefined,
      bytes: status === 'done' ? this.state.bytes : undefined,
      attempts: this.state.attempts,
      seconds: extra.seconds,
      time: new Date().toISOString(),
    };
    await this.queue.appendResult(r);
    await this.save({ status, lastError: extra.reason });
    return r;
  }

  async release(): Promise<void> {
    await this.lock.release();
  }
}
