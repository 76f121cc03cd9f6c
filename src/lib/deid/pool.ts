import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type AnonymizeResult, type Anonymizer, type AnonymizerOptions, createAnonymizer } from './anonymizer.js';
import { SeriesClassLookup } from './burned-in.js';
import type { ProjectRules } from './project.js';
import type { PseudonymTableEntry } from './pseudonyms.js';
import { threadIo } from './io-thread.js';

/**
 * Anonymizing on every core: the calling thread plus N-1 worker threads, each with its own
 * anonymizer built from the same rules and secret (pseudonyms are keyed, not stateful, so
 * they need not agree on anything). The calling thread takes its share of the files: it
 * has little else to do, and every extra thread costs a V8 heap (tens of MB). The pool
 * has the anonymizer's interface; with one thread it is the anonymizer.
 */
export interface PoolConfig {
  rules: ProjectRules;
  secret?: Uint8Array;
  pseudonymTable?: Map<string, PseudonymTableEntry>;
  quarantineDir?: string;
  site?: string;
  fsync?: boolean;
  version?: string;
  /** Read inputs and write outputs in an I/O thread (default: when there are at least 2 cores). */
  ioThread?: boolean;
}

export interface AnonymizerPool extends Anonymizer {
  readonly threads: number;
  close(): Promise<void>;
}

/** What a worker is given (structured-cloned: Sets, Maps and RegExps survive). */
export type WorkerInit = PoolConfig;

interface Pending {
  resolve: (r: AnonymizeResult) => void;
  reject: (e: Error) => void;
}

export function anonymizerOptions(c: PoolConfig): AnonymizerOptions {
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
 * One thread less than the cores: the calling thread walks the inputs, hands files out and
 * writes the events, and the kernel's file work (open, create, write, rename: about half of
 * the CPU per file) needs a core's share too. Measured on a 2-core machine, 1,000 files,
 * alternating runs: one thread was as fast or faster than two (median 1.21 s vs 1.37 s wall)
 * and used a fifth less CPU (the second thread's start-up and message passing).
 */
export function defaultThreads(): number {
  return Math.max(1, Math.min(availableParallelism() - 1, 16));
}

export function createAnonymizerPool(config: PoolConfig, threads = defaultThreads(), onWarning?: (message: string) => void): AnonymizerPool {
  // Built here too, in the calling thread: it validates the configuration (a missing secret
  // is an error now, not once per file in each worker) and serves the one-thread case.
  // The calling thread's files are read and written by an I/O thread: the kernel's file
  // work (reading, creating, writing, renaming) then runs on another core while this one goes on.
  // Measured on 2 cores, 1,000 files on ext4: the calling thread's own CPU time fell from
  // about 1.9 s to 1.15 s; the I/O thread costs about 0.2 s of CPU more in all (its start-up
  // and the messages), which a loaded machine with no core to spare pays in wall time.
  const io = (config.ioThread ?? availableParallelism() >= 2) ? threadIo({ onWarning }) : undefined;
  const local = createAnonymizer(config.rules, { ...anonymizerOptions(config), io });
  const closeIo = async (): Promise<void> => io?.close();
  if (threads <= 1) return { ...local, rules: config.rules, threads: 1, close: closeIo };

  interface Slot {
    worker: Worker;
    busy: number;
    pending: Map<number, Pending & { input: string; outDir: string }>;
    dead: boolean;
  }
  const workers: Slot[] = [];
  let nextId = 1;
  let localBusy = 0;
  let closing = false;
  const runLocal = (input: string, outDir: string): Promise<AnonymizeResult> => {
    localBusy++;
    return local.anonymizeFile(input, outDir).finally(() => localBusy--);
  };
  const url = new URL('./worker.js', import.meta.url);
  // Workers start once per run, and only when there is a second file in flight: a run of
  // one file (a pipeline calling fiona-anonymize per instance) pays no worker start-up
  // (a V8 isolate plus the modules, about 0.1 s of CPU each).
  let started = false;
  const startWorkers = (): void => {
    started = true;
    for (let k = 0; k < threads - 1; k++) startWorker();
  };
  const startWorker = (): void => {
    const worker = new Worker(url, { workerData: config satisfies WorkerInit });
    const slot: Slot = { worker, busy: 0, pending: new Map(), dead: false };
    worker.on('message', (m: { id: number; result?: AnonymizeResult; error?: string }) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      slot.busy--;
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.result!);
    });
    // A worker that dies (a bug, memory, its code replaced under it) loses no file: what it
    // had in hand is done again in the calling thread, and it gets no more work.
    const died = (why: string): void => {
      if (slot.dead || closing) return;
      slot.dead = true;
      onWarning?.(`anonymizer worker stopped (${why}); its files are done in the main thread`);
      for (const p of slot.pending.values()) runLocal(p.input, p.outDir).then(p.resolve, p.reject);
      slot.pending.clear();
      slot.busy = 0;
    };
    worker.on('error', (err) => died(err.message));
    worker.on('exit', (code) => died(`exit code ${code}`));
    workers.push(slot);
  };
  return {
    rules: config.rules,
    threads,
    anonymizeFile(input: string, outDir: string): Promise<AnonymizeResult> {
      if (!started) {
        if (localBusy === 0) return runLocal(input, outDir);
        startWorkers();
      }
      const alive = workers.filter((w) => !w.dead);
      if (alive.length === 0) return runLocal(input, outDir);
      const slot = alive.reduce((a, b) => (b.busy < a.busy ? b : a));
      // The calling thread also posts messages and writes events: give it a little less.
      if (localBusy + 1 < slot.busy) return runLocal(input, outDir);
      const id = nextId++;
      slot.busy++;
      return new Promise<AnonymizeResult>((resolve, reject) => {
        slot.pending.set(id, { resolve, reject, input, outDir });
        slot.worker.postMessage({ id, input, outDir });
      });
    },
    async close(): Promise<void> {
      closing = true;
      await Promise.all([...workers.map((w) => w.worker.terminate()), closeIo()]);
    },
  };
}
