import type { RequestStore, TransferRequest, TransferResult } from './requests.js';

/**
 * The queue at a glance, for people (--list) and for fiona-heartbeat (--list --json, or
 * the same files: state/requests/, state/requests/failed/, state/transfers/).
 */
export interface QueueStatus {
  queued: Array<TransferRequest & { last?: TransferResult }>;
  failed: Array<TransferRequest & { last?: TransferResult }>;
  results: TransferResult[];
  lines: string[];
}

export async function listStatus(store: RequestStore): Promise<QueueStatus> {
  const results = await store.listResults();
  const byId = new Map(results.map((r) => [r.id, r]));
  const queued = (await store.listQueued()).map((r) => ({ ...r, last: byId.get(r.id) }));
  const failed = (await store.listFailed()).map((r) => ({ ...r, last: byId.get(r.id) }));
  const lines: string[] = [];
  const key = (r: { study: string; project: string; pseudonym: string; event: string }): string =>
    `${r.study} -> ${r.project} as ${r.pseudonym}${r.event ? ` (${r.event})` : ''}`;
  for (const r of queued) {
    const l = r.last;
    const state = !l || l.revision !== r.revision ? 'queued' : l.status === 'retry' ? `retry ${l.attempts}, next ${l.nextAttempt}: ${l.error}` : l.status;
    lines.push(`queued  ${r.id}  ${key(r)}  [${state}]`);
  }
  for (const r of failed) lines.push(`failed  ${r.id}  ${key(r)}  [${r.last?.attempts ?? '?'} attempts: ${r.last?.error ?? '?'}]`);
  const done = results.filter((r) => r.status === 'done').sort((a, b) => (a.finished ?? '').localeCompare(b.finished ?? ''));
  for (const r of done.slice(-20)) lines.push(`done    ${r.id}  ${key(r)}  [${r.finished}: ${r.instances ?? 0} instances as ${r.mappedStudyUid ?? '-'}]`);
  return { queued, failed, results, lines };
}
