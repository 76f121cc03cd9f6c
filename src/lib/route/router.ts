import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { writeJsonAtomic } from '../site/atomic.js';
import type { SiteLayout } from '../site/layout.js';
import { RequestStore, type EnqueueOutcome, type TransferRequest } from '../transfer/requests.js';
import type { AutoIdStore } from './autoid.js';
import { matchStudy } from './match.js';
import type { ArrivalSink } from './sink.js';
import { hasMetadata, readStudy, studySignature, StudyNotFoundError, type StudyInfo } from './study.js';
import type { RouteMatch, RoutingRules } from './types.js';

/** What routing one study did; the command turns it into events. */
export interface StudyRouting {
  study: string;
  status: 'routed' | 'unrouted' | 'missing';
  requests: Array<{ match: RouteMatch; outcome: EnqueueOutcome }>;
  /** Why the study went nowhere, or rules that matched but could not be used. */
  problems: string[];
  /** A sink (REDCap) that failed; local requests were still written. */
  sinkError?: string;
}

export interface RouterOptions {
  site: SiteLayout;
  rules: RoutingRules;
  autoIds: AutoIdStore;
  store?: RequestStore;
  sink?: ArrivalSink;
  /** Decide and report, write nothing. */
  dryRun?: boolean;
  now?: () => Date;
}

/** <site>/state/unrouted/<Study>.json: studies no rule took, for fiona-heartbeat and people. */
export function unroutedPath(site: SiteLayout, study: string): string {
  return join(site.state, 'unrouted', `${study}.json`);
}

function describeConnection(s: StudyInfo): string {
  return `called ${s.called || '(unknown)'}, calling ${s.calling || '(unknown)'}`;
}

export class Router {
  readonly store: RequestStore;
  constructor(private readonly o: RouterOptions) {
    this.store = o.store ?? new RequestStore(o.site);
  }

  async routeStudy(uid: string): Promise<StudyRouting> {
    let study: StudyInfo;
    try {
      study = await readStudy(this.o.site, uid);
    } catch (err) {
      if (err instanceof StudyNotFoundError) return { study: uid, status: 'missing', requests: [], problems: [err.message] };
      throw err;
    }
    if (!hasMetadata(study)) {
      const reason = 'no series metadata under raw/ (is fiona-classify in the pipeline?)';
      await this.markUnrouted(study, [reason]);
      return { study: uid, status: 'unrouted', requests: [], problems: [reason] };
    }
    const now = this.o.now?.() ?? new Date();
    const { matches, problems } = await matchStudy(this.o.rules, study, this.o.autoIds, now);
    if (matches.length === 0) {
      const why = [`no route, coupling entry or automatic-ID project matches (${describeConnection(study)})`, ...problems];
      await this.markUnrouted(study, why);
      const sinkError = await this.arrival(study, []);
      return { study: uid, status: 'unrouted', requests: [], problems: why, sinkError };
    }
    const signature = studySignature(study);
    const requests: StudyRouting['requests'] = [];
    for (const match of matches) {
      const key = { study: uid, project: match.project, pseudonym: match.pseudonym, event: match.event };
      const outcome: EnqueueOutcome = this.o.dryRun
        ? { action: 'queued', request: { version: 1, id: '(dry run)', ...key, via: [match.via], created: '', updated: '', revision: 0, signature, reason: 'new' } }
        : await this.store.enqueue(key, [match.via], signature);
      requests.push({ match, outcome });
    }
    if (!this.o.dryRun) await rm(unroutedPath(this.o.site, uid), { force: true });
    const sinkError = await this.arrival(study, requests.map((r) => r.outcome));
    return { study: uid, status: 'routed', requests, problems, sinkError };
  }

  private async markUnrouted(study: StudyInfo, reasons: string[]): Promise<void> {
    if (this.o.dryRun) return;
    await writeJsonAtomic(unroutedPath(this.o.site, study.uid), {
      study: study.uid,
      time: (this.o.now?.() ?? new Date()).toISOString(),
      called: study.called,
      calling: study.calling,
      series: study.series.length,
      reasons,
    });
  }

  /** Tell the sink; a failure is returned (the local queue is already written). */
  private async arrival(study: StudyInfo, outcomes: EnqueueOutcome[]): Promise<string | undefined> {
    const sink = this.o.sink;
    if (!sink || this.o.dryRun) return undefined;
    try {
      await sink.studyArrived(study);
      for (const o of outcomes) {
        if (o.action === 'unchanged' || o.request.redcapInstance !== undefined) continue;
        const instance = await sink.transferRequested(o.request);
        if (instance !== undefined) await this.rememberInstance(o.request, instance);
      }
      return undefined;
    } catch (err) {
      return `${sink.origin}: ${errorMessage(err)}`;
    }
  }

  private async rememberInstance(request: TransferRequest, instance: number): Promise<void> {
    await this.store.withQueueLock(async () => {
      const now = await this.store.readRequest(request.id);
      if (!now) return;
      now.redcapInstance = instance;
      request.redcapInstance = instance;
      await writeJsonAtomic(this.store.requestPath(request.id), now);
    });
  }
}
