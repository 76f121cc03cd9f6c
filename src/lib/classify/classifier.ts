import { readdir, realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { DicomParseError, isPathSafeUid, readHeaderFull, type Header } from '../dicom/index.js';
import { errorMessage } from '../errors.js';
import { makeEvent, type BaseEvent } from '../events/index.js';
import { seriesJsonPath, type SiteLayout } from '../site/layout.js';
import { quarantineFile } from '../site/quarantine.js';
import { firstValue } from './header-values.js';
import { instanceLookup } from './lookup.js';
import { linkInstance, linkParticipant } from './links.js';
import { evaluateInstance } from './rules-eval.js';
import { emptyDelta, fieldsFromHeader, mergeSeries, minSlice, type IncomingConnection, type SeriesDelta, type SeriesJson } from './series.js';
import { flushSeries, readSeriesJson } from './series-store.js';
import type { RuleSet } from './types.js';

/**
 * Classify instances into the site: read the header, link the file into raw/ and
 * participants/, evaluate the rules, and keep the series JSON up to date.
 *
 * Series JSON writes are batched per series (a flush at most `flushDelayMs` after the first
 * new instance, or every `flushBatch` instances) so 10,000 instances do not mean 10,000
 * rewrites; a `classified` event is emitted only after the flush that includes the
 * instance, so an event always means "on disk".
 */
export interface ClassifyJob {
  path: string;
  conn: IncomingConnection;
  /** Where the job came from, for messages ("line 12", an argument). */
  origin?: string;
}

export interface ClassifierOptions {
  layout: SiteLayout;
  rules: RuleSet;
  emit: (event: BaseEvent) => void;
  warn: (message: string) => void;
  flushDelayMs?: number;
  flushBatch?: number;
  /** A series with nothing new for this long is forgotten (re-read from disk if it comes back). */
  idleMs?: number;
}

interface Pending {
  path: string;
  sop: string;
  calling: string;
}

interface SeriesState {
  study: string;
  series: string;
  /** The series JSON as last read or written (or the first instance's fields). */
  base: SeriesJson;
  delta: SeriesDelta;
  sops: Set<string>;
  /** base + delta as rules see it; rebuilt only when the delta's entry sets or the rules change. */
  view?: SeriesJson;
  viewRules?: RuleSet;
  pending: Pending[];
  timer?: NodeJS.Timeout;
  /** Forgets the series after a quiet while (a daemon runs for months). */
  idle?: NodeJS.Timeout;
  flushing: Promise<void>;
}

const STUDY_UID = 0x0020000d;
const SERIES_UID = 0x0020000e;
const SOP_UID = 0x00080018;
const SLICE_LOCATION = 0x00201041;

export const UNKNOWN_CONNECTION: IncomingConnection = { AETitleCaller: 'unknown', AETitleCalled: 'unknown', CallerIP: 'unknown' };

export class Classifier {
  readonly stats = { classified: 0, quarantined: 0, failed: 0 };
  private rules: RuleSet;
  private readonly series = new Map<string, Promise<SeriesState>>();
  private readonly participants = new Set<string>();
  private readonly flushDelayMs: number;
  private readonly flushBatch: number;
  private readonly idleMs: number;

  constructor(private readonly opts: ClassifierOptions) {
    this.rules = opts.rules;
    this.flushDelayMs = opts.flushDelayMs ?? 100;
    this.flushBatch = opts.flushBatch ?? 256;
    this.idleMs = opts.idleMs ?? 10 * 60_000;
  }

  setRules(rules: RuleSet): void {
    this.rules = rules;
  }

  /** Classify one file; never throws for a bad file (it is quarantined or reported). */
  async process(job: ClassifyJob): Promise<void> {
    let path = resolve(job.path);
    const where = job.origin ? `${job.origin}: ${path}` : path;
    // A path into the site's link trees names a link: link to what it points at, never to
    // the link itself (that would replace raw/.../<SOP> by a link to itself).
    const { layout } = this.opts;
    if (path.startsWith(layout.raw + sep) || path.startsWith(layout.participants + sep)) {
      try {
        path = await realpath(path);
      } catch {
        // a dangling link: reported below as a missing file
      }
    }
    let h: Header;
    try {
      h = await readHeaderFull(path);
    } catch (err) {
      if (err instanceof DicomParseError) return this.reject(path, where, `not readable as DICOM: ${err.message}`);
      const code = (err as NodeJS.ErrnoException).code;
      this.stats.failed++;
      this.opts.warn(code === 'ENOENT' ? `${where}: no such file (skipped)` : `${where}: cannot read: ${errorMessage(err)}`);
      return;
    }
    const study = firstValue(h, STUDY_UID);
    const series = firstValue(h, SERIES_UID);
    const sop = firstValue(h, SOP_UID);
    for (const [field, v] of [['StudyInstanceUID', study], ['SeriesInstanceUID', series], ['SOPInstanceUID', sop]] as const) {
      if (v === undefined || !isPathSafeUid(v)) {
        return this.reject(path, where, `${field} is ${v === undefined ? 'missing' : `not a valid UID: ${JSON.stringify(v.slice(0, 80))}`}`);
      }
    }
    try {
      await this.classifyValid(h, path, job.conn, study!, series!, sop!);
    } catch (err) {
      this.stats.failed++;
      this.opts.warn(`${where}: ${errorMessage(err)}`);
    }
  }

  private async classifyValid(h: Header, path: string, conn: IncomingConnection, study: string, series: string, sop: string): Promise<void> {
    const { layout } = this.opts;
    const state = await this.seriesState(h, conn, study, series);
    if (state.idle) clearTimeout(state.idle);
    state.idle = undefined;
    await linkInstance(layout, study, series, sop, path);
    state.sops.add(sop);
    if (!this.participants.has(study)) {
      await linkParticipant(layout, study, firstValue(h, 0x00100020), firstValue(h, 0x00080020), firstValue(h, 0x00080030));
      this.participants.add(study);
    }
    const slice = firstValue(h, SLICE_LOCATION);
    if (slice !== undefined && slice !== '') state.delta.sliceMin = minSlice(state.delta.sliceMin, slice);
    const view = this.viewOf(state);
    const result = evaluateInstance(this.rules, instanceLookup(h, view), view.ClassifyType);
    const known = state.delta.passed.size + state.delta.failedSeriesLevel.size;
    for (const k of result.passed) state.delta.passed.add(k);
    for (const k of result.failedSeriesLevel) state.delta.failedSeriesLevel.add(k);
    if (state.delta.passed.size + state.delta.failedSeriesLevel.size !== known) state.view = undefined;
    state.pending.push({ path, sop, calling: conn.AETitleCaller });
    // A failed flush has warned and kept its instances for the next one: nothing to add here.
    if (state.pending.length >= this.flushBatch) {
      await this.flush(state).catch(() => undefined);
    } else if (!state.timer) {
      state.timer = setTimeout(() => void this.flush(state).catch(() => undefined), this.flushDelayMs);
    }
  }

  /**
   * The series JSON as the rules see it for the next instance. A full merge costs a copy and
   * two sorted unions; after the first instances of a series the entry sets stop changing, so
   * only NumFiles and SliceLocation are brought up to date.
   */
  private viewOf(state: SeriesState): SeriesJson {
    const numFiles = Math.max(state.sops.size, state.base.NumFiles);
    if (!state.view || state.viewRules !== this.rules) {
      state.view = mergeSeries(state.base, state.delta, this.rules, numFiles);
      state.viewRules = this.rules;
      return state.view;
    }
    state.view.NumFiles = numFiles;
    const slice = minSlice(typeof state.view.SliceLocation === 'string' ? state.view.SliceLocation : undefined, state.delta.sliceMin);
    if (slice !== undefined) state.view.SliceLocation = slice;
    return state.view;
  }

  /** The in-memory state of a series, created once per process (links and JSON read from disk). */
  private seriesState(h: Header, conn: IncomingConnection, study: string, series: string): Promise<SeriesState> {
    const key = `${study}/${series}`;
    let p = this.series.get(key);
    if (!p) {
      p = this.loadSeries(h, conn, study, series);
      this.series.set(key, p);
      p.catch(() => this.series.delete(key));
    }
    return p;
  }

  private async loadSeries(h: Header, conn: IncomingConnection, study: string, series: string): Promise<SeriesState> {
    const { layout } = this.opts;
    const dir = join(layout.raw, study, series);
    const names = await readdir(dir).catch(() => [] as string[]);
    const { json, corruptMovedTo } = await readSeriesJson(seriesJsonPath(layout, study, series));
    if (corruptMovedTo) this.opts.warn(`series JSON was not valid JSON; moved aside to ${corruptMovedTo} and rebuilt`);
    return {
      study,
      series,
      base: json ?? fieldsFromHeader(h, conn, study, series),
      delta: emptyDelta(),
      sops: new Set(names.filter((n) => !n.startsWith('.'))),
      pending: [],
      flushing: Promise.resolve(),
    };
  }

  /** Write a series' delta and emit the events of the instances it covers (one flush at a time per series). */
  private flush(state: SeriesState): Promise<void> {
    const run = state.flushing.then(() => this.flushNow(state));
    state.flushing = run.catch(() => undefined);
    return run;
  }

  private async flushNow(state: SeriesState): Promise<void> {
    if (state.timer) clearTimeout(state.timer);
    state.timer = undefined;
    if (state.pending.length === 0) return;
    const pending = state.pending;
    const delta = state.delta;
    state.pending = [];
    state.delta = emptyDelta();
    try {
      const { json, corruptMovedTo } = await flushSeries(this.opts.layout, state.study, state.series, state.base, delta, this.rules);
      if (corruptMovedTo) this.opts.warn(`series JSON was not valid JSON; moved aside to ${corruptMovedTo} and rebuilt`);
      state.base = json;
      state.view = undefined;
      this.forgetWhenIdle(state);
      for (const p of pending) {
        this.stats.classified++;
        this.opts.emit(
          makeEvent('classified', {
            path: p.path,
            study: state.study,
            series: state.series,
            sop: p.sop,
            types: json.ClassifyType,
            ...(p.calling !== 'unknown' ? { calling: p.calling } : {}),
          }),
        );
      }
    } catch (err) {
      // Keep what was learned; the next flush (or flushAll) tries again.
      state.pending = pending.concat(state.pending);
      for (const k of delta.passed) state.delta.passed.add(k);
      for (const k of delta.failedSeriesLevel) state.delta.failedSeriesLevel.add(k);
      state.delta.sliceMin = minSlice(state.delta.sliceMin, delta.sliceMin);
      this.opts.warn(`cannot write the series JSON of ${state.study}/${state.series}: ${errorMessage(err)}`);
      throw err;
    }
  }

  private forgetWhenIdle(state: SeriesState): void {
    if (state.idle) clearTimeout(state.idle);
    state.idle = setTimeout(() => {
      if (state.pending.length > 0 || state.timer) return;
      this.series.delete(`${state.study}/${state.series}`);
      this.participants.delete(state.study);
    }, this.idleMs);
    state.idle.unref();
  }

  /** Flush every series with pending instances; the number of instances that could not be written. */
  async flushAll(): Promise<number> {
    let lost = 0;
    for (const p of this.series.values()) {
      const state = await p.catch(() => undefined);
      if (!state) continue;
      await this.flush(state).catch(() => {
        lost += state.pending.length;
      });
    }
    this.stats.failed += lost;
    return lost;
  }

  /** A bad file: moved to quarantine when it is the site's own, left alone (reported) otherwise. */
  private async reject(path: string, where: string, reason: string): Promise<void> {
    const { layout } = this.opts;
    if (!(path.startsWith(layout.root + sep))) {
      this.stats.failed++;
      this.opts.warn(`${where}: ${reason} (outside the site: left in place)`);
      return;
    }
    try {
      const q = await quarantineFile(layout.quarantine, path, reason, { tool: 'fiona-classify' });
      this.stats.quarantined++;
      this.opts.warn(`${where}: ${reason}; moved to ${q.path}`);
      this.opts.emit(makeEvent('quarantined', { path: q.path, original: path, reason }));
    } catch (err) {
      this.stats.failed++;
      this.opts.warn(`${where}: ${reason}; could not quarantine it: ${errorMessage(err)}`);
    }
  }
}
