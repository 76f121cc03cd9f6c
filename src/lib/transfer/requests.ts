import { createHash } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../site/atomic.js';
import { readdirIfExists, readTextIfExists } from '../site/if-exists.js';
import { jsonFileNames } from '../site/state-json.js';
import type { SiteLayout } from '../site/layout.js';
import { signatureCovers, type StudySignature } from '../route/study.js';
import { withLock } from '../site/lock.js';

/**
 * The transfer queue on disk, shared by fiona-route (writes requests) and fiona-transfer
 * (works them off). One request per key (study, project, pseudonym, event):
 *
 *   state/requests/<id>.json          queued: a transfer is due
 *   state/requests/failed/<id>.json   given up after the retries; kept, never lost
 *   state/transfers/<id>.json         the key's last result (what fiona-heartbeat reads)
 *   state/locks/requests.lock         held for the instant a request file changes
 *   state/locks/transfer-<id>.lock    held while one transfer of the key runs
 *
 * A request file stays until its transfer is done, so a run killed at any point leaves
 * it queued. When new series arrive while a transfer runs, route bumps the request's
 * revision; the transfer then keeps the request for another round instead of deleting it.
 */
export interface RequestKey {
  study: string;
  project: string;
  pseudonym: string;
  event: string;
}

export interface TransferRequest extends RequestKey {
  version: 1;
  id: string;
  /** Which rules asked for it (route:…, coupling:…, autoid:…). */
  via: string[];
  /** When first queued: the queue is worked oldest first. */
  created: string;
  updated: string;
  /** Bumped whenever the study grows while the request is queued. */
  revision: number;
  /** Series -> instances when route last looked. */
  signature: StudySignature;
  reason: 'new' | 'new-series' | 'retry';
  /** The REDCap `transfers` instance of this key, when REDCap is the sink. */
  redcapInstance?: number;
}

export type ResultStatus = 'running' | 'retry' | 'sent' | 'done' | 'failed';

export interface AttemptRecord {
  attempt: number;
  started: string;
  finished?: string;
  status: ResultStatus | 'interrupted';
  error?: string;
}

export interface SkippedSeries {
  series: string;
  reason: string;
}

export interface TransferResult extends RequestKey {
  id: string;
  status: ResultStatus;
  /** The request revision this result is about. */
  revision: number;
  /** Attempts made for this revision. */
  attempts: number;
  pid?: number;
  started?: string;
  finished?: string;
  nextAttempt?: string;
  /** What was sent (done, sent) or tried (failed). */
  signature?: StudySignature;
  mappedStudyUid?: string;
  series?: number;
  instances?: number;
  bytes?: number;
  skipped?: SkippedSeries[];
  destination?: string;
  /** Where the time went (ms), for people judging a slow transfer. */
  timings?: { anonymizeMs: number; sendMs: number };
  error?: string;
  /** The REDCap write-back failed after the study was sent; only that is retried. */
  reportPending?: boolean;
  history: AttemptRecord[];
}

export type EnqueueOutcome =
  | { action: 'queued'; request: TransferRequest }
  | { action: 'updated'; request: TransferRequest }
  | { action: 'already-queued'; request: TransferRequest }
  | { action: 'unchanged'; result: TransferResult };

export function requestId(k: RequestKey): string {
  return createHash('sha256').update(JSON.stringify([k.study, k.project, k.pseudonym, k.event])).digest('hex').slice(0, 24);
}

/** A queue file; undefined when it is not there, an error when it cannot be read or parsed. */
async function readJson<T>(path: string): Promise<T | undefined> {
  const text = await readTextIfExists(path);
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

/**
 * Every `<id>.json` of a folder, read by `read`: a file that cannot be read is left out (the
 * failed list and the results are looked at, not worked off); none when the folder is missing.
 */
async function readEach<T>(dir: string, read: (id: string) => Promise<T | undefined>): Promise<T[]> {
  const out: T[] = [];
  for (const n of (await jsonFileNames(dir)) ?? []) {
    if (n.startsWith('.')) continue;
    const r = await read(n.slice(0, -5)).catch(() => undefined);
    if (r) out.push(r);
  }
  return out;
}

const HISTORY_LIMIT = 20;

export class RequestStore {
  readonly requests: string;
  readonly failed: string;
  readonly results: string;
  readonly locks: string;
  readonly work: string;

  constructor(readonly site: SiteLayout) {
    this.requests = join(site.state, 'requests');
    this.failed = join(this.requests, 'failed');
    this.results = join(site.state, 'transfers');
    this.locks = join(site.state, 'locks');
    this.work = join(site.state, 'work');
  }

  requestPath(id: string): string {
    return join(this.requests, `${id}.json`);
  }
  failedPath(id: string): string {
    return join(this.failed, `${id}.json`);
  }
  resultPath(id: string): string {
    return join(this.results, `${id}.json`);
  }
  transferLockPath(id: string): string {
    return join(this.locks, `transfer-${id}.lock`);
  }
  workDir(id: string): string {
    return join(this.work, id);
  }

  /** The brief lock around every change of a request file (route and transfer both take it). */
  withQueueLock<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(join(this.locks, 'requests.lock'), fn);
  }

  readRequest(id: string): Promise<TransferRequest | undefined> {
    return readJson<TransferRequest>(this.requestPath(id));
  }
  readFailed(id: string): Promise<TransferRequest | undefined> {
    return readJson<TransferRequest>(this.failedPath(id));
  }
  readResult(id: string): Promise<TransferResult | undefined> {
    return readJson<TransferResult>(this.resultPath(id));
  }

  async writeResult(r: TransferResult): Promise<void> {
    r.history = r.history.slice(-HISTORY_LIMIT);
    await writeJsonAtomic(this.resultPath(r.id), r);
  }

  /**
   * Queue a transfer of the key unless one is queued that covers the study as it is now,
   * or the last transfer (done, or failed for good) already covered it.
   */
  async enqueue(key: RequestKey, via: string[], signature: StudySignature, extra: Partial<TransferRequest> = {}): Promise<EnqueueOutcome> {
    const id = requestId(key);
    return this.withQueueLock(async () => {
      const now = new Date().toISOString();
      const pending = await this.readRequest(id);
      if (pending) {
        const mergedVia = [...new Set([...pending.via, ...via])];
        if (signatureCovers(pending.signature, signature) && mergedVia.length === pending.via.length) {
          return { action: 'already-queued', request: pending };
        }
        const grown = !signatureCovers(pending.signature, signature);
        const updated: TransferRequest = {
          ...pending,
          via: mergedVia,
          updated: now,
          signature: { ...pending.signature, ...signature },
          revision: grown ? pending.revision + 1 : pending.revision,
        };
        await writeJsonAtomic(this.requestPath(id), updated);
        return { action: grown ? 'updated' : 'already-queued', request: updated };
      }
      const result = await this.readResult(id);
      if (result && (result.status === 'done' || result.status === 'failed') && signatureCovers(result.signature, signature)) {
        return { action: 'unchanged', result };
      }
      const request: TransferRequest = {
        version: 1,
        id,
        ...key,
        via,
        created: now,
        updated: now,
        revision: (result?.revision ?? 0) + 1,
        signature,
        reason: result ? 'new-series' : 'new',
        ...extra,
      };
      await writeJsonAtomic(this.requestPath(id), request);
      // New data for a key that failed for good: it is queued again, so it is no longer failed.
      await rm(this.failedPath(id), { force: true });
      return { action: 'queued', request };
    });
  }

  /** Queued requests, oldest first. */
  async listQueued(): Promise<TransferRequest[]> {
    const out: TransferRequest[] = [];
    for (const n of await readdirIfExists(this.requests)) {
      if (!n.endsWith('.json') || n.startsWith('.')) continue;
      try {
        const r = await this.readRequest(n.slice(0, -5));
        if (r) out.push(r);
      } catch {
        // A damaged request file is reported by the transfer run that tries it (see runner).
        out.push({ id: n.slice(0, -5), created: '', damaged: true } as unknown as TransferRequest);
      }
    }
    return out.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1));
  }

  listFailed(): Promise<TransferRequest[]> {
    return readEach(this.failed, (id) => this.readFailed(id));
  }

  listResults(): Promise<TransferResult[]> {
    return readEach(this.results, (id) => this.readResult(id));
  }

  /**
   * The transfer of `revision` finished (done or failed for good). The request leaves the
   * queue only if route did not bump it meanwhile; returns true when it left.
   */
  async settle(id: string, revision: number, outcome: 'done' | 'failed'): Promise<boolean> {
    return this.withQueueLock(async () => {
      const pending = await this.readRequest(id);
      if (!pending) return true;
      if (pending.revision !== revision) return false;
      if (outcome === 'failed') {
        await mkdir(this.failed, { recursive: true });
        await rename(this.requestPath(id), this.failedPath(id));
      } else {
        await rm(this.requestPath(id), { force: true });
      }
      return true;
    });
  }

  /** Move a request file that cannot be read out of the queue (kept for a person to look at). */
  async setAside(id: string): Promise<string> {
    return this.withQueueLock(async () => {
      await mkdir(this.failed, { recursive: true });
      const target = join(this.failed, `${id}.json.damaged`);
      await rename(this.requestPath(id), target);
      return target;
    });
  }

  /** Put failed requests back in the queue (operator's --retry-failed); returns how many. */
  async requeueFailed(ids?: string[]): Promise<number> {
    return this.withQueueLock(async () => {
      let n = 0;
      for (const r of await this.listFailed()) {
        if (ids && !ids.includes(r.id)) continue;
        const result = await this.readResult(r.id);
        const request: TransferRequest = {
          ...r,
          updated: new Date().toISOString(),
          revision: Math.max(r.revision, result?.revision ?? 0) + 1,
          reason: 'retry',
        };
        await writeJsonAtomic(this.requestPath(r.id), request);
        await rm(this.failedPath(r.id), { force: true });
        n++;
      }
      return n;
    });
  }
}
