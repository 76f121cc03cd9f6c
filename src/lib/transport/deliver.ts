/**
 * Delivery with retries: every file is attempted, the failed ones again after an
 * exponentially growing wait, up to the policy's limit. Each file ends in exactly one
 * final result (sent or failed with the last reason).
 */
import { backoffDelay, sleep, type RetryPolicy } from './retry.js';
import type { AttemptResult, FileResult, SendFile, Transport } from './types.js';

export interface DeliverHooks {
  /** A file's final result (ok or failed), as soon as it is known. */
  onResult?: (r: FileResult) => void;
  /** Before a wait: which retry comes next, how long the wait, how many files, the last reason. */
  onRetry?: (info: { retry: number; delayMs: number; files: number; reason: string }) => void;
}

export async function deliver(
  transport: Transport,
  files: SendFile[],
  policy: RetryPolicy,
  hooks: DeliverHooks = {},
  signal?: AbortSignal,
): Promise<FileResult[]> {
  const results: FileResult[] = [];
  const finish = (r: AttemptResult, attempts: number): void => {
    const final: FileResult = { ...r, attempts };
    results.push(final);
    hooks.onResult?.(final);
  };
  let pending = files;
  for (let attempt = 1; pending.length > 0; attempt++) {
    const again: AttemptResult[] = [];
    const seen = new Set<SendFile>();
    const last = attempt > policy.retries;
    await transport.attempt(
      pending,
      (r) => {
        seen.add(r.file);
        if (r.ok || !r.retryable || last) finish(r, attempt);
        else again.push(r);
      },
      signal,
    );
    // A transport must report every file; one that did not is failed, never silently dropped.
    for (const f of pending) {
      if (!seen.has(f)) {
        const r: AttemptResult = { file: f, ok: false, reason: 'no result from the transport', retryable: true, details: {} };
        if (last) finish(r, attempt);
        else again.push(r);
      }
    }
    if (again.length === 0) break;
    const delayMs = backoffDelay(policy, attempt);
    const reason = again[again.length - 1]!.reason ?? 'failed';
    if (signal?.aborted) {
      for (const r of again) finish({ ...r, reason: `${r.reason ?? 'failed'} (stopped before retrying)` }, attempt);
      break;
    }
    hooks.onRetry?.({ retry: attempt, delayMs, files: again.length, reason });
    const slept = await sleep(delayMs, signal);
    if (!slept) {
      for (const r of again) finish({ ...r, reason: `${r.reason ?? 'failed'} (stopped before retrying)` }, attempt);
      break;
    }
    pending = again.map((r) => r.file);
  }
  return results;
}
