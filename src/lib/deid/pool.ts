import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { newWorker } from '../dicom/file-thread.js';
// Types only: the anonymizer (and the DICOM core under it) is loaded by the worker threads,
// and by the calling thread only when it anonymizes itself (one thread, or a worker died).
import type { AnonymizeResult, Anonymizer, AnonymizerOptions } from './anonymizer.js';
import type { ProjectRules } from './project.js';
import type { PseudonymTableEntry } from './pseudonyms.js';

/**
 * Anonymizing on every core. With one thread the calling thread does everything (and an
 * I/O thread publishes its outputs). With N >= 2, N worker threads each run the whole
 * pipeline for the files they are handed (read, decide, rewrite, leak check, publish, all
 * with synchronous file calls), and the calling thread only walks the inputs, hands paths
 * out in batches and writes the events. Each worker has its own anonymizer built from the
 * same rules and secret (pseudonyms are keyed, not stateful, so they need not agree on
 * anything). The pool has the anonymizer's interface.
 */
export interface PoolConfig {
  rules: ProjectRules;
  secret?: Uint8Array;
  pseudonymTable?: Map<string, PseudonymTableEntry>;
  quarantineDir?: string;
  site?: string;
  fsync?: boolean;
  version?: string;
  /** One thread only: publish outputs in an I/O thread, started at once (default: when there are at least 2 cores). */
  ioThread?: boolean;
}

export interface AnonymizerPool extends Anonymizer {
  readonly threads: number;
  close(): Promise<void>;
}

/** What a worker is given (structured-cloned: Sets, Maps and RegExps survive). */
export interface WorkerInit {
  config: PoolConfig;
  /** Files a worker works on at once (their fsyncs overlap; without fsync they simply follow each other). */
  inFlight: number;
  /** The workers' create lock (worker-io.ts), over a SharedArrayBuffer. */
  createLock?: Int32Array;
}

/** Calling thread -> worker: the configuration (once), then batches of files. */
export type WorkerRequest = { init: WorkerInit } | { files: WorkerFile[] };

export interface WorkerFile {
  id: number;
  input: string;
  outDir: string;
}

/** Worker -> calling thread: answers, a few at a time. */
export interface WorkerReply {
  id: number;
  result?: AnonymizeResult;
  error?: string;
}

export async function anonymizerOptions(c: PoolConfig): Promise<AnonymizerOptions> {
  const { SeriesClassLookup } = await import('./burned-in.js');
  return {
    secret: c.secret,
    pseudonymTable: c.pseudonymTable,
    quarantineDir: c.quarantineDir,
    seriesClasses: c.site ? new SeriesClassLookup(c.site) : undefined,
    fsync: c.fsync,
    version: c.version,
  };
}

/**
 * One less than the cores (at least 1, at most 8: each thread is a V8 heap of some 20-30
 * MB). On 2 cores that is one anonymizing thread with the I/O thread beside it: measured
 * on the benchmark's ext4 (docs/fiona-anonymize.md, Performance), two workers that each
 * create their outputs were slower than one thread whose creates, writes and renames all
 * go through the one I/O thread (0.68x against 0.81x gdcmanon), since the creates of two
 * threads in the same folders contend in the kernel; on tmpfs the two workers were faster.
 */
export function defaultThreads(): number {
  return Math.max(1, Math.min(availableParallelism() - 1, MAX_DEFAULT_THREADS));
}

const MAX_DEFAULT_THREADS = 8;

/** Files handed to a worker per message. */
const CHUNK = 8;

/**
 * Worker threads started before the configuration is known: a worker's start-up (a Node
 * environment and the anonymizer's modules, some 60-80 ms) then overlaps the calling
 * thread's own (option parsing, rules, secret). Give them to createAnonymizerPool; a pool
 * that does not use them terminates them.
 */
export interface StartedWorkers {
  readonly workers: Worker[];
}

export function startWorkers(n: number): StartedWorkers {
  const url = new URL('./worker.js', import.meta.url);
  const workers: Worker[] = [];
  for (let k = 0; k < n; k++) workers.push(newWorker(url));
  return { workers };
}

async function localAnonymizer(config: PoolConfig, io: AnonymizerOptions['io']): Promise<Anonymizer> {
  const { createAnonymizer } = await import('./anonymizer.js');
  return createAnonymizer(config.rules, { ...(await anonymizerOptions(config)), io });
}

export async function createAnonymizerPool(
  config: PoolConfig,
  threads = defaultThreads(),
  onWarning?: (message: string) => void,
  started?: StartedWorkers,
): Promise<AnonymizerPool> {
  if (threads <= 1) {
    for (const w of started?.workers ?? []) void w.terminate();
    // The calling thread's outputs are published by an I/O thread: the kernel's file work
    // (creating, writing, renaming) then runs on another core while this one goes on.
    // Measured on 2 cores, 1,000 files on ext4: the calling thread's own CPU time fell from
    // about 1.9 s to 1.15 s; the I/O thread costs about 0.2 s of CPU more in all.
    const io = (config.ioThread ?? availableParallelism() >= 2) ? (await import('./io-thread.js')).publishingThreadIo({ onWarning }) : undefined;
    const local = await localAnonymizer(config, io);
    return { ...local, rules: config.rules, threads: 1, close: async () => io?.close() };
  }
  return workerPool(config, threads, onWarning, started);
}

interface Pending {
  resolve: (r: AnonymizeResult) => void;
  reject: (e: Error) => void;
  file: WorkerFile;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  outbox: WorkerFile[];
  dead: boolean;
}

function workerPool(config: PoolConfig, threads: number, onWarning: ((message: string) => void) | undefined, started?: StartedWorkers): AnonymizerPool {
  const spare = started?.workers ?? [];
  const workers: Worker[] = spare.slice(0, threads);
  for (const w of spare.slice(threads)) void w.terminate();
  if (workers.length < threads) workers.push(...startWorkers(threads - workers.length).workers);
  const init: WorkerInit = { config, inFlight: config.fsync === false ? 4 : 16, createLock: new Int32Array(new SharedArrayBuffer(4)) };
  let closing = false;
  let nextId = 1;
  let flushScheduled = false;

  // The calling thread anonymizes only when a worker died: built then, once.
  let fallback: Promise<Anonymizer> | undefined;
  const runLocal = (f: WorkerFile): Promise<AnonymizeResult> => {
    fallback ??= localAnonymizer(config, undefined);
    return fallback.then((a) => a.anonymizeFile(f.input, f.outDir));
  };

  const slots: Slot[] = workers.map((worker) => {
    const slot: Slot = { worker, pending: new Map(), outbox: [], dead: false };
    worker.postMessage({ init } satisfies WorkerRequest);
    worker.on('message', (replies: WorkerReply[]) => {
      for (const r of replies) {
        const p = slot.pending.get(r.id);
        if (!p) continue;
        slot.pending.delete(r.id);
        if (r.error !== undefined) p.reject(new Error(r.error));
        else p.resolve(r.result!);
      }
      if (slot.pending.size === 0) worker.unref();
    });
    // A worker that dies (a bug, memory, its code replaced under it) loses no file: what it
    // had in hand (sent or not) is done again in the calling thread, and it gets no more work.
    // Redoing is harmless: an output is published by rename of a complete temp file.
    const died = (why: string): void => {
      if (slot.dead || closing) return;
      slot.dead = true;
      const left = [...slot.pending.values()];
      slot.pending.clear();
      slot.outbox = [];
      if (left.length > 0) onWarning?.(`anonymizer worker stopped (${why}); its files are done in the main thread`);
      for (const p of left) runLocal(p.file).then(p.resolve, p.reject);
    };
    // Taken at 'exit', not at 'error': Node emits 'error' (an uncaught exception in the
    // worker) before the answers the worker had already posted, and 'exit' after them, so a
    // file answered before the worker died is not done (and published) again.
    let error: string | undefined;
    worker.on('error', (err) => (error ??= err.message));
    worker.on('exit', (code) => died(error ?? `exit code ${code}`));
    // An idle worker does not keep the process alive; a file in flight refs it.
    worker.unref();
    return slot;
  });

  const send = (slot: Slot): void => {
    if (slot.outbox.length === 0 || slot.dead) return;
    const files = slot.outbox;
    slot.outbox = [];
    slot.worker.postMessage({ files } satisfies WorkerRequest);
  };
  const flushAll = (): void => {
    flushScheduled = false;
    for (const s of slots) send(s);
  };

  return {
    rules: config.rules,
    threads,
    anonymizeFile(input: string, outDir: string): Promise<AnonymizeResult> {
      const file: WorkerFile = { id: nextId++, input, outDir };
      let slot: Slot | undefined;
      for (const s of slots) if (!s.dead && (!slot || s.pending.size < slot.pending.size)) slot = s;
      if (!slot) return runLocal(file);
      const target = slot;
      return new Promise<AnonymizeResult>((resolve, reject) => {
        target.pending.set(file.id, { resolve, reject, file });
        target.worker.ref();
        target.outbox.push(file);
        // The files of one turn of the event loop go over in a few messages, CHUNK files each.
        if (target.outbox.length >= CHUNK) send(target);
        else if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flushAll);
        }
      });
    },
    async close(): Promise<void> {
      flushAll();
      closing = true;
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
