import type { AnonymizeResult, Anonymizer } from './anonymizer.js';
import type { InputUnit } from './inputs.js';
import type { MappingRecorder } from './mapping.js';
import type { BaseEvent } from '../events/types.js';

/**
 * A batch: input units in, each file through the anonymizer (pool) with a bounded number in
 * flight (memory stays flat however large the batch), each outcome reported as it comes.
 */
export type BatchOutcome = AnonymizeResult | { status: 'failed'; source: string; reason: string };

export interface BatchSummary {
  anonymized: number;
  quarantined: number;
  failed: number;
  invalid: number;
  seconds: number;
  /** True when the batch was stopped before its inputs ran out. */
  interrupted: boolean;
}

export interface BatchOptions {
  anonymizer: Anonymizer;
  outDir: string;
  /** Files in flight at once (enough to keep every worker and the disk busy). */
  inFlight: number;
  mapping?: MappingRecorder;
  onOutcome(o: BatchOutcome): void;
  onOther?(e: BaseEvent): void;
  onInvalid?(u: Extract<InputUnit, { kind: 'invalid' }>): void;
  /** Stop taking inputs (SIGINT/SIGTERM): what is in flight is finished, the rest is left. */
  signal?: AbortSignal;
}

export async function runBatch(units: AsyncIterable<InputUnit>, o: BatchOptions): Promise<BatchSummary> {
  const started = performance.now();
  const summary: BatchSummary = { anonymized: 0, quarantined: 0, failed: 0, invalid: 0, seconds: 0, interrupted: false };
  const running = new Set<Promise<void>>();
  const one = async (path: string): Promise<void> => {
    let outcome: BatchOutcome;
    try {
      outcome = await o.anonymizer.anonymizeFile(path, o.outDir);
    } catch (err) {
      outcome = { status: 'failed', source: path, reason: (err as Error).message };
    }
    if (outcome.status === 'anonymized') {
      summary.anonymized++;
      o.mapping?.add('StudyInstanceUID', outcome.original.study, outcome.study);
      o.mapping?.add('SeriesInstanceUID', outcome.original.series, outcome.series);
    } else if (outcome.status === 'quarantined') summary.quarantined++;
    else summary.failed++;
    o.onOutcome(outcome);
  };
  const it = units[Symbol.asyncIterator]();
  const stopped = new Promise<'stop'>((resolve) => {
    if (o.signal?.aborted) resolve('stop');
    o.signal?.addEventListener('abort', () => resolve('stop'), { once: true });
  });
  for (;;) {
    const next = await Promise.race([it.next(), stopped]);
    if (next === 'stop') {
      summary.interrupted = true;
      void it.return?.();
      break;
    }
    if (next.done) break;
    const u = next.value;
    if (u.kind === 'other') {
      o.onOther?.(u.event);
      continue;
    }
    if (u.kind === 'invalid') {
      summary.invalid++;
      o.onInvalid?.(u);
      continue;
    }
    const p = one(u.path).finally(() => running.delete(p));
    running.add(p);
    if (running.size >= o.inFlight) await Promise.race(running);
  }
  await Promise.all(running);
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}
