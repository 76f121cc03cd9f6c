/**
 * fiona-heartbeat's checks in one report: receiver (C-ECHO), disk, queues, stuck work,
 * newest arrival; the overall state is the worst of them. With a restart command, a
 * receiver that does not answer is restarted and asked again.
 */
import { join } from 'node:path';
import type { DicomPeer } from '../net/scu/association.js';
import { siteLayout } from '../site/layout.js';
import { checkArrival } from './arrival.js';
import { checkDisk, type Threshold } from './disk.js';
import { checkOutbox, checkQueue, checkTransferQueue, type QueueLimits } from './queues.js';
import { checkReceiver } from './receiver.js';
import { restartReceiver, type RestartOutcome } from './restart.js';
import { checkStuck } from './stuck.js';
import { worst, type CheckResult, type HealthState } from './types.js';

export interface HeartbeatOptions {
  site?: string;
  /** The receiver to C-ECHO; undefined skips the check. */
  receiver?: DicomPeer;
  timeoutMs: number;
  disk: { warn: Threshold; crit: Threshold };
  outboxes: string[];
  queues: string[];
  queueLimits: QueueLimits;
  stuckMs: number;
  arrival: { warnMs?: number; critMs?: number };
  restart?: { argv: string[]; minIntervalMs: number; waitMs: number; timeoutMs: number };
}

export interface HeartbeatReport {
  state: HealthState;
  time: string;
  checks: CheckResult[];
  restart?: RestartOutcome & { answeredAfter?: boolean };
}

export async function runHeartbeat(o: HeartbeatOptions): Promise<HeartbeatReport> {
  const checks: CheckResult[] = [];
  const layout = o.site ? siteLayout(o.site) : undefined;
  let restart: HeartbeatReport['restart'];
  if (o.receiver) {
    let receiver = await checkReceiver(o.receiver, o.timeoutMs);
    if (receiver.state === 'critical' && o.restart) {
      const stateFile = layout ? join(layout.state, 'heartbeat.json') : undefined;
      restart = await restartReceiver(o.restart.argv, { stateFile, minIntervalMs: o.restart.minIntervalMs, timeoutMs: o.restart.timeoutMs });
      if (restart.ran) {
        await new Promise((r) => setTimeout(r, o.restart!.waitMs));
        const again = await checkReceiver(o.receiver, o.timeoutMs);
        restart.answeredAfter = again.state === 'ok';
        // Restarted and answering: a person should know, nobody needs to get up.
        receiver = again.state === 'ok'
          ? { ...again, state: 'warning', message: `${again.message} after a restart (${receiver.message})` }
          : { ...receiver, message: `${receiver.message}; restart ran (exit ${restart.exitCode}) and it still does not answer` };
      } else {
        receiver = { ...receiver, message: `${receiver.message}; not restarted: ${restart.skipped}` };
      }
    }
    checks.push(receiver);
  }
  if (layout) {
    checks.push(await checkDisk(layout.root, o.disk.warn, o.disk.crit).catch((err: Error) => unknown('disk', err)));
    checks.push(...(await checkTransferQueue(layout.state, o.queueLimits)));
    checks.push(await checkArrival(layout.root, o.arrival.warnMs, o.arrival.critMs));
  }
  for (const dir of o.outboxes) checks.push(...(await checkOutbox(dir, o.queueLimits)));
  for (const dir of o.queues) checks.push(await checkQueue(dir.split('/').filter(Boolean).pop() ?? dir, dir, o.queueLimits));
  const stuckDirs = [...(layout ? [layout.state] : []), ...o.outboxes.map((d) => join(d, '.fiona-send'))];
  if (stuckDirs.length > 0) checks.push(await checkStuck(stuckDirs, o.stuckMs));
  return { state: worst(checks.map((c) => c.state)), time: new Date().toISOString(), checks, restart };
}

function unknown(name: string, err: Error): CheckResult {
  return { name, state: 'unknown', message: `${name}: ${err.message}`, data: {} };
}

/** Nagios plugin output: a status line with performance data, then one line per check. */
export function formatNagios(r: HeartbeatReport): string {
  const label = r.state.toUpperCase();
  const problems = r.checks.filter((c) => c.state !== 'ok');
  const headline = (problems.length > 0 ? problems : r.checks.slice(0, 2)).map((c) => c.message).join('; ') || 'nothing checked';
  const perf: string[] = [];
  for (const c of r.checks) {
    if (c.name === 'receiver' && typeof c.data.ms === 'number') perf.push(`echo_ms=${c.data.ms}ms`);
    if (c.name === 'disk' && typeof c.data.freePercent === 'number') perf.push(`disk_free=${c.data.freePercent}%`);
    if (c.name.startsWith('queue:') && typeof c.data.items === 'number') perf.push(`'${c.name.replace(/'/g, '')}'=${c.data.items}`);
    if (c.name === 'arrival' && typeof c.data.ageSeconds === 'number') perf.push(`arrival_age=${c.data.ageSeconds}s`);
  }
  const lines = [`FIONA ${label} - ${headline}${perf.length ? ` | ${perf.join(' ')}` : ''}`];
  for (const c of r.checks) lines.push(`${c.state.toUpperCase()}: ${c.message}`);
  return `${lines.join('\n')}\n`;
}
