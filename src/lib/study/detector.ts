import { isPathSafeUid } from '../dicom/uid.js';
import { errorMessage } from '../errors.js';
import { makeEvent, type BaseEvent } from '../events/index.js';
import type { SiteLayout } from '../site/layout.js';
import { runExec, type ExecSpec } from './exec.js';
import { buildManifest, diffManifests, manifestPath, readManifest, writeManifest } from './manifest.js';
import { listStudies, studyActivity } from './site-scan.js';
import { loadState, saveState, type DetectState, type PendingExec } from './state.js';

/**
 * Study completion: a study is complete when nothing has arrived for the quiet period.
 *
 * Arrivals come from events (their time) and from the site's folders (their mtimes), so a
 * study is not declared complete while files still land in archive/ or raw/ ahead of the
 * events. One timer waits for the earliest deadline.
 *
 * Durability: the manifest studies/<Study>.json is the record that a study was reported
 * (written, then the event, then the folder synced); state/detect-study.json holds open
 * studies and unfinished --exec runs and is rebuilt from the site at start, so a restart
 * or kill -9 loses no study and reports none twice. A study that gets instances after its
 * report is reported again as study-updated, with what changed.
 */
export interface DetectorOptions {
  layout: SiteLayout;
  quietMs: number;
  emit: (e: BaseEvent) => void;
  warn: (m: string) => void;
  exec?: ExecSpec;
  /** Debounce of state writes after arrivals (ms). */
  saveDelayMs?: number;
}

export class StudyDetector {
  private state: DetectState = { version: 1, open: {}, exec: [] };
  private timer?: NodeJS.Timeout;
  private saveTimer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private execChain: Promise<void> = Promise.resolve();
  private readonly completing = new Set<string>();
  private readonly late = new Map<string, number>();
  private closed = false;
  readonly stats = { complete: 0, updated: 0, execFailed: 0 };

  constructor(private readonly opts: DetectorOptions) {}

  /** Load the state and bring it in line with the site; pending --exec runs are restarted. */
  async start(): Promise<void> {
    this.state = await loadState(this.opts.layout, this.opts.warn);
    await this.reconcile();
    await saveState(this.opts.layout, this.state);
    for (const p of [...this.state.exec]) await this.resumeExec(p);
    this.schedule();
  }

  get openStudies(): string[] {
    return Object.keys(this.state.open);
  }

  /** An instance of `study` arrived at `time` (ms). */
  arrival(study: string, time: number): void {
    if (!isPathSafeUid(study)) {
      this.opts.warn(`ignored an event whose study is not a valid UID: ${JSON.stringify(study.slice(0, 80))}`);
      return;
    }
    const t = Math.min(time, Date.now());
    if (this.completing.has(study)) {
      this.late.set(study, Math.max(this.late.get(study) ?? 0, t));
      return;
    }
    const o = this.state.open[study];
    if (o) {
      o.lastArrival = Math.max(o.lastArrival, t);
    } else {
      // Whether it was reported before is settled at completion (the manifest says).
      this.state.open[study] = { firstArrival: t, lastArrival: t, update: false };
    }
    this.saveSoon();
    this.schedule();
  }

  /** Complete every open study whose quiet period is over; returns how many were reported. */
  completeDue(): Promise<number> {
    const run = this.running.then(() => this.completeDueNow());
    this.running = run.then(() => undefined, () => undefined);
    return run;
  }

  private async completeDueNow(): Promise<number> {
    if (this.closed) return 0;
    let n = 0;
    const now = Date.now();
    for (const [study, o] of Object.entries(this.state.open)) {
      if (now - o.lastArrival < this.opts.quietMs) continue;
      try {
        if (await this.complete(study)) n++;
      } catch (err) {
        this.opts.warn(`study ${study}: ${errorMessage(err)}`);
      }
    }
    this.schedule();
    return n;
  }

  /** Report one study if it is still quiet when the site is looked at; true when an event was written. */
  private async complete(study: string): Promise<boolean> {
    const { layout, quietMs } = this.opts;
    const o = this.state.open[study]!;
    const act = await studyActivity(layout, study);
    const last = Math.max(o.lastArrival, Math.floor(act.newest ?? 0));
    if (Date.now() - last < quietMs) {
      o.lastArrival = last;
      return false;
    }
    this.completing.add(study);
    try {
      const old = await readManifest(layout, study);
      const manifest = await buildManifest(layout, study, { firstArrival: old ? Date.parse(old.firstArrival) : o.firstArrival, lastArrival: last }, old ? old.revision + 1 : 1);
      if (manifest.seriesCount === 0) {
        this.opts.warn(`study ${study}: no series folders in archive/ or raw/; nothing to report`);
        delete this.state.open[study];
        await saveState(layout, this.state);
        return false;
      }
      const diff = old ? diffManifests(old, manifest) : undefined;
      if (old && !diff) {
        // Nothing new (a file stored twice, a rewritten link): remember the time, say nothing.
        const { sync } = await writeManifest(layout, { ...old, lastArrival: manifest.lastArrival });
        await sync();
        delete this.state.open[study];
        await saveState(layout, this.state);
        return false;
      }
      const event = old ? 'study-updated' : 'study-complete';
      if (old) {
        manifest.completedAt = old.completedAt;
        manifest.updatedAt = new Date().toISOString();
      }
      const pending: PendingExec | undefined =
        this.opts.exec && (!old || this.opts.exec.updates) ? { study, manifest: manifestPath(layout, study), event, revision: manifest.revision } : undefined;
      if (pending) {
        // Recorded before the manifest commits, so a crash after it still runs the command.
        this.state.exec.push(pending);
        await saveState(layout, this.state);
      }
      const { path, sync } = await writeManifest(layout, manifest);
      this.opts.emit(
        makeEvent(event, {
          study,
          series: manifest.seriesCount,
          instances: manifest.instances,
          types: manifest.types,
          manifest: path,
          firstArrival: manifest.firstArrival,
          lastArrival: manifest.lastArrival,
          ...(diff ? { added: { series: diff.addedSeries, instances: diff.addedInstances }, changed: diff.changed } : {}),
        }),
      );
      await sync();
      if (old) this.stats.updated++;
      else this.stats.complete++;
      delete this.state.open[study];
      await saveState(layout, this.state);
      if (pending) this.queueExec(pending);
      return true;
    } finally {
      this.completing.delete(study);
      const t = this.late.get(study);
      if (t !== undefined) {
        this.late.delete(study);
        this.arrival(study, t);
      }
    }
  }

  /**
   * Bring the state in line with the site: studies with files but no manifest are open;
   * studies with files newer than their manifest are open as updates; an open study whose
   * manifest already covers its last arrival was reported before a crash and is dropped.
   */
  async reconcile(): Promise<void> {
    const { layout } = this.opts;
    for (const study of await listStudies(layout)) {
      const act = await studyActivity(layout, study);
      const manifest = await readManifest(layout, study);
      const reportedUpTo = manifest ? Date.parse(manifest.lastArrival) : undefined;
      const open = this.state.open[study];
      const newest = act.newest === undefined ? undefined : Math.floor(act.newest);
      if (open) {
        if (reportedUpTo !== undefined && reportedUpTo >= open.lastArrival && (newest ?? 0) <= reportedUpTo) delete this.state.open[study];
        else open.lastArrival = Math.max(open.lastArrival, newest ?? 0);
      } else if (newest !== undefined && (reportedUpTo === undefined || newest > reportedUpTo)) {
        this.state.open[study] = { firstArrival: Math.floor(act.oldest ?? newest), lastArrival: newest, update: reportedUpTo !== undefined };
      }
    }
  }

  private async resumeExec(p: PendingExec): Promise<void> {
    const m = await readManifest(this.opts.layout, p.study);
    if (!m || m.revision < p.revision) {
      // The report never committed: the study is open again and will be reported (and run) then.
      this.state.exec = this.state.exec.filter((x) => x !== p);
      return;
    }
    this.queueExec(p);
  }

  private queueExec(p: PendingExec): void {
    const spec = this.opts.exec;
    if (!spec) return;
    this.execChain = this.execChain.then(async () => {
      const r = await runExec(spec, p.manifest, { study: p.study, event: p.event, site: this.opts.layout.root });
      if (!r.ok) this.stats.execFailed++;
      this.opts.emit(
        makeEvent('study-exec', {
          study: p.study,
          manifest: p.manifest,
          command: spec.command,
          status: r.ok ? 'ok' : 'failed',
          exitCode: r.exitCode ?? null,
          durationMs: r.durationMs,
          ...(r.error ? { error: r.error } : {}),
        }),
      );
      if (!r.ok) this.opts.warn(`study ${p.study}: ${spec.command} ${r.error ?? `exited with ${r.exitCode}`}`);
      this.state.exec = this.state.exec.filter((x) => x !== p);
      if (!this.closed) this.saveSoon();
      else await saveState(this.opts.layout, this.state);
    });
  }

  /** Wait until nothing is open and every --exec run has finished (end of input). */
  async drain(): Promise<void> {
    while (Object.keys(this.state.open).length > 0 && !this.closed) {
      const next = Math.min(...Object.values(this.state.open).map((o) => o.lastArrival + this.opts.quietMs));
      await sleep(Math.max(10, next - Date.now()));
      await this.completeDue();
    }
    await this.execChain;
  }

  /** Run what is due once (cron mode), waiting for the commands it starts. */
  async scanOnce(): Promise<number> {
    const n = await this.completeDue();
    await this.execChain;
    return n;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    const opens = Object.values(this.state.open);
    if (opens.length === 0) return;
    const next = Math.min(...opens.map((o) => o.lastArrival + this.opts.quietMs));
    this.timer = setTimeout(() => void this.completeDue(), Math.max(0, next - Date.now()) + 5);
  }

  private saveSoon(): void {
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      saveState(this.opts.layout, this.state).catch((err) => this.opts.warn(`cannot save the state: ${errorMessage(err)}`));
    }, this.opts.saveDelayMs ?? 200);
  }

  /** Stop completing studies (SIGTERM): what is open stays open in the state for the next start. */
  stop(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.timer = undefined;
    this.saveTimer = undefined;
  }

  /** Stop timers, wait for a completion in progress and running commands, save the state. */
  async close(): Promise<void> {
    this.stop();
    await this.running;
    await this.execChain;
    await saveState(this.opts.layout, this.state);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
