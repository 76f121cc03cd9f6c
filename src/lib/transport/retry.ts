/** Exponential backoff: attempt n (1-based) waits initial * 2^(n-1), capped, with a little jitter. */
export interface RetryPolicy {
  /** Retries after the first attempt (0 = try once). */
  retries: number;
  /** Wait before the first retry (ms). */
  initialDelayMs: number;
  /** Upper bound of a single wait (ms). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 3, initialDelayMs: 2_000, maxDelayMs: 300_000 };

export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, retry - 1));
  // +-10% so that several gateways retrying one PACS do not knock in step.
  return Math.max(0, Math.round(base * (0.9 + 0.2 * random())));
}

/** Sleep that ends early (resolving false) when the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
