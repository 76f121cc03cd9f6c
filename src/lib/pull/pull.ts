/**
 * fiona-pull as a library: find a study on a PACS (C-FIND by Study Instance UID, accession
 * number or patient ID) and retrieve it into a site, with C-MOVE (the PACS sends to our AE
 * title, received by fiona-receive's storage SCP on `port`) or C-GET (received on the same
 * association). Either way each instance goes through fiona-receive's store: streamed to
 * `.arrived/`, structure checked, placed as archive/<Study>/<Series>/<SOP>.dcm, bytes as the
 * PACS sent them.
 */
import { makeEvent, type BaseEvent } from '../events/index.js';
import type { AssociationTimeouts, DicomPeer } from '../net/scu/association.js';
import { findSopClasses, findStudies, type StudyMatch, type StudyQuery } from '../net/scu/query.js';
import { getStudy, moveStudy, type RetrieveCounts } from '../net/scu/retrieve.js';
import { startReceiver } from '../receive/receiver.js';
import { createSiteStore } from '../receive/site-store.js';
import { ensureSite } from '../site/layout.js';

import type { PacsAddress } from './address.js';

export interface PullOptions {
  pacs: PacsAddress;
  /** Our AE title (calling; and the C-MOVE destination unless moveDestination is given). */
  callingAet: string;
  method: 'move' | 'get';
  /** The site folder the instances land in. */
  out: string;
  /** C-MOVE: the port we receive on; the PACS must know it for our AE title. */
  port?: number;
  /** Address to listen on for C-MOVE (default all interfaces). */
  listenHost?: string;
  moveDestination?: string;
  query: StudyQuery;
  fsync?: boolean;
  timeouts?: AssociationTimeouts;
  onEvent?(e: BaseEvent): void;
}

export interface PulledStudy {
  study: string;
  /** What the PACS said the study holds (NumberOfStudyRelatedInstances), when it said. */
  expected?: number;
  counts: RetrieveCounts;
  /** Files placed in the site for this study. */
  files: string[];
  /** Instances that arrived but were put in quarantine (reasons). */
  quarantined: string[];
}

export interface PullResult {
  studies: PulledStudy[];
  completed: number;
  failed: number;
  warning: number;
  files: string[];
}

/** The study is not on the PACS, or the PACS refused: `permanent` says whether a retry can help. */
export class PullError extends Error {
  constructor(message: string, readonly permanent: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PullError';
  }
}

function describeQuery(q: StudyQuery): string {
  if (q.studyUid) return `study ${q.studyUid}`;
  if (q.accession) return 'the accession number given';
  return 'the patient ID given';
}

export async function pull(o: PullOptions): Promise<PullResult> {
  const emit = o.onEvent ?? (() => undefined);
  const peer: DicomPeer = { host: o.pacs.host, port: o.pacs.port, calledAet: o.pacs.aet, callingAet: o.callingAet };
  let matches: StudyMatch[];
  try {
    matches = await findStudies(peer, o.query, o.timeouts);
  } catch (err) {
    const msg = (err as Error).message;
    const hint = /aborted by the peer|rejected/.test(msg) ? ' (does the PACS know our AE title?)' : '';
    throw new PullError(`${msg}${hint}`, false, { cause: err });
  }
  if (matches.length === 0) throw new PullError(`the PACS ${o.pacs.aet} has no ${describeQuery(o.query)}`, true);
  emit(makeEvent('found', { studies: matches.map((m) => ({ study: m.studyUid, instances: m.instances, series: m.series, modalities: m.modalities })) }));

  const layout = await ensureSite(o.out);
  const placed = new Map<string, string[]>();
  const quarantined = new Map<string, string[]>();
  // Per instance: append in place (a copy of the list per event would be quadratic in a study).
  const add = (m: Map<string, string[]>, key: string, value: string): void => {
    const list = m.get(key);
    if (list) list.push(value);
    else m.set(key, [value]);
  };
  const onStoreEvent = (e: BaseEvent): void => {
    if (e.event === 'stored' && typeof e.study === 'string' && typeof e.path === 'string') {
      add(placed, e.study, e.path);
    } else if (e.event === 'quarantined') {
      add(quarantined, typeof e.study === 'string' ? e.study : '', String(e.reason ?? 'quarantined'));
    }
    emit(e);
  };

  const studies: PulledStudy[] = [];
  const retrieveAll = async (retrieve: (uid: string) => Promise<RetrieveCounts>): Promise<void> => {
    for (const m of matches) {
      emit(makeEvent('pull-started', { study: m.studyUid, method: o.method, pacs: o.pacs.aet }));
      let counts: RetrieveCounts;
      try {
        counts = await retrieve(m.studyUid);
      } catch (err) {
        const msg = (err as Error).message;
        const completed = (err as { counts?: RetrieveCounts }).counts?.completed ?? 0;
        // Many PACS (Orthanc among them) answer an unknown destination with a bare failure.
        const hint = o.method === 'move' && completed === 0 && !/destination unknown/.test(msg)
          ? ` (does the PACS know the destination ${o.moveDestination ?? o.callingAet} at this host, port ${o.port}?)`
          : '';
        throw new PullError(`${o.method === 'move' ? 'C-MOVE' : 'C-GET'} of study ${m.studyUid} from ${o.pacs.aet}: ${msg}${hint}`, /destination unknown/.test(msg), { cause: err });
      }
      // Copies: what arrived by now (a late C-STORE must not change a study already reported).
      const files = [...(placed.get(m.studyUid) ?? [])];
      studies.push({ study: m.studyUid, expected: m.instances, counts, files, quarantined: [...(quarantined.get(m.studyUid) ?? [])] });
      emit(makeEvent('pulled', { study: m.studyUid, method: o.method, completed: counts.completed, failed: counts.failed, warning: counts.warning, stored: files.length, expected: m.instances, status: counts.statusText }));
    }
  };

  if (o.method === 'move') {
    if (o.port === undefined) throw new PullError('C-MOVE needs the port the PACS sends to (--port; the PACS must know our AE title at that port)', true);
    const destination = o.moveDestination ?? o.callingAet;
    const receiver = await startReceiver({
      site: layout.root,
      port: o.port,
      host: o.listenHost,
      aet: destination,
      maxAssociations: 8,
      fsync: o.fsync ?? true,
      idleTimeoutMs: o.timeouts?.idleMs ?? 120_000,
      onEvent: onStoreEvent,
    });
    try {
      await retrieveAll((uid) => moveStudy(peer, destination, uid, o.timeouts));
    } finally {
      await receiver.stop(30_000);
    }
  } else {
    const store = createSiteStore({ layout, fsync: o.fsync ?? true, onEvent: onStoreEvent });
    try {
      await retrieveAll(async (uid) => {
        const classes = await findSopClasses(peer, uid, o.timeouts).catch(() => []);
        return getStudy(peer, uid, classes, store, o.timeouts);
      });
    } finally {
      // The store keeps temp files made ahead of need in .arrived/: closing removes them.
      store.close();
    }
  }
  const sum = (f: (s: PulledStudy) => number): number => studies.reduce((n, s) => n + f(s), 0);
  return {
    studies,
    completed: sum((s) => s.counts.completed),
    failed: sum((s) => s.counts.failed + s.quarantined.length),
    warning: sum((s) => s.counts.warning),
    files: studies.flatMap((s) => s.files),
  };
}
