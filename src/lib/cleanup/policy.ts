/**
 * May a study go? It must not be open (fiona-detect-study still collecting it, or an --exec
 * for it pending), must have no transfer queued or running for it, and, unless the policy is
 * "none", must have been delivered: a record in state/delivered/ (fiona-send, or any tool
 * calling recordDelivery, e.g. after an export) or a finished fiona-transfer of the study.
 */
import { join } from 'node:path';
import type { SiteLayout } from '../site/layout.js';
import { readJsonObject, readJsonObjects } from '../site/state-json.js';
import { statePath } from '../study/state.js';
import { readDeliveries } from '../transport/records.js';

export type DeliveryPolicy = 'delivered' | 'none';

export interface SiteActivity {
  /** Studies fiona-detect-study holds open or has an --exec pending for. */
  open: Set<string>;
  /** Studies with a transfer request queued (state/requests/*.json) or given up (failed/). */
  queued: Set<string>;
  failedTransfers: Set<string>;
  /** Studies with a finished transfer (state/transfers/*.json status done), with where to. */
  transferred: Map<string, string[]>;
}

export async function readActivity(layout: SiteLayout): Promise<SiteActivity> {
  const open = new Set<string>();
  // No (or unreadable) fiona-detect-study state: nothing is open.
  const st = (await readJsonObject(statePath(layout))) as { open?: unknown; exec?: unknown } | undefined;
  if (typeof st?.open === 'object' && st.open !== null) for (const s of Object.keys(st.open)) open.add(s);
  if (Array.isArray(st?.exec)) for (const e of st.exec as Array<{ study?: unknown } | null>) if (typeof e?.study === 'string' && e.study) open.add(e.study);
  const queued = new Set<string>();
  for (const { value: r } of await readJsonObjects(join(layout.state, 'requests'))) if (typeof r.study === 'string') queued.add(r.study);
  const failedTransfers = new Set<string>();
  for (const { value: r } of await readJsonObjects(join(layout.state, 'requests', 'failed'))) if (typeof r.study === 'string') failedTransfers.add(r.study);
  const transferred = new Map<string, string[]>();
  for (const { value: r } of await readJsonObjects(join(layout.state, 'transfers'))) {
    if (typeof r.study !== 'string') continue;
    if (r.status === 'running') queued.add(r.study);
    if (r.status === 'done') transferred.set(r.study, [...(transferred.get(r.study) ?? []), String(r.destination ?? r.project ?? 'transfer')]);
  }
  return { open, queued, failedTransfers, transferred };
}

export interface Verdict {
  remove: boolean;
  /** Why not, or where it went. */
  reason: string;
  deliveredTo: string[];
}

export async function judge(layout: SiteLayout, study: string, activity: SiteActivity, policy: DeliveryPolicy): Promise<Verdict> {
  const records = await readDeliveries(layout.root, study);
  const deliveredTo = [...new Set([...records.map((r) => r.to), ...(activity.transferred.get(study) ?? [])])];
  if (activity.open.has(study)) return { remove: false, reason: 'still open (fiona-detect-study)', deliveredTo };
  if (activity.queued.has(study)) return { remove: false, reason: 'a transfer is queued or running', deliveredTo };
  if (policy === 'none') return { remove: true, reason: 'older than the limit', deliveredTo };
  if (deliveredTo.length === 0) {
    const why = activity.failedTransfers.has(study) ? 'its transfer failed' : 'not delivered or exported yet';
    return { remove: false, reason: why, deliveredTo };
  }
  return { remove: true, reason: 'older than the limit and delivered', deliveredTo };
}
