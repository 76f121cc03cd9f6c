/**
 * C-STORE SCU (PS3.4 Annex B) that sends each file's original dataset bytes in the file's
 * own transfer syntax: no re-encoding, so private tags and compressed pixel data arrive as
 * they are. Several instances go over one association, and `associations` of them run in
 * parallel. Every request must end with a response; a missing one is a failure.
 */
// Our own Upper Layer association: the send path loads neither dcmjs-dimse nor dcmjs.
import { TS } from '../../dicom/transfer-syntax.js';
import { UlAssociation } from '../ul-association.js';
import {
  AssociationError,
  NoResponseError,
  NotSentError,
  statusClass,
  statusText,
  type AssociationTimeouts,
  type ContextProposal,
  type DicomPeer,
} from '../scu-common.js';

/** What the SCU needs to know of a file (the DICOM core's readHeader gives it). */
export interface StoreInstance {
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Where the dataset starts (after the File Meta group). */
  datasetOffset: number;
  /** Bytes from datasetOffset to the end of the file. */
  datasetLength: number;
}

export interface StoreOutcome {
  instance: StoreInstance;
  state: 'ok' | 'warning' | 'failed';
  /** The DIMSE status of the response, when one came. */
  status?: number;
  /** Human reason for a warning or failure. */
  reason?: string;
  /** Error Comment (0000,0902) of the response, when given. */
  errorComment?: string;
  /** Whether the instance went out on the wire (false: the association failed before). */
  attempted: boolean;
}

export interface StoreOptions extends AssociationTimeouts {
  /** Associations in parallel (default 1). */
  associations?: number;
  /** Instances per association before it is released and a new one opened (default 500). */
  maxPerAssociation?: number;
  /** Called as soon as each instance's outcome is known. */
  onOutcome?: (o: StoreOutcome) => void;
  /** Stop taking new batches when aborted (instances not started are reported as failed, not attempted). */
  signal?: AbortSignal;
}

/** PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255, so at most 128 per association. */
const MAX_CONTEXTS = 128;

function contextKey(i: StoreInstance): string {
  return `${i.sopClassUid}\u0000${i.transferSyntaxUid}`;
}

/** Where instances come from: a list, or a reader that describes files while others are sent. */
export interface InstanceSource {
  /** The next instance, or undefined when there are no more. */
  next(): Promise<StoreInstance | undefined>;
}

function arraySource(instances: StoreInstance[]): InstanceSource {
  let i = 0;
  return { next: async () => instances[i++] };
}

/**
 * Store all instances; resolves with one outcome per instance (in completion order).
 * Never rejects for a peer problem: each affected instance gets a failed outcome with the reason.
 *
 * Each worker opens an association for the presentation contexts it knows of and keeps
 * sending over it as instances arrive from the source; an instance that needs a context
 * this association did not propose waits for the next association (deferred). A worker
 * whose association is refused stops (the peer may allow fewer associations than asked
 * for); the last one standing fails what is left with the reason, for the caller to retry.
 */
export async function storeInstances(peer: DicomPeer, instances: StoreInstance[] | InstanceSource, opts: StoreOptions = {}): Promise<StoreOutcome[]> {
  const source = Array.isArray(instances) ? arraySource(instances) : instances;
  const outcomes: StoreOutcome[] = [];
  const q: RunQueue = {
    deferred: [],
    exhausted: false,
    active: Math.max(1, opts.associations ?? 1),
    maxPer: Math.max(1, opts.maxPerAssociation ?? 1000),
    report: (o) => {
      outcomes.push(o);
      opts.onOutcome?.(o);
    },
    async pull() {
      if (this.exhausted) return undefined;
      const i = await source.next();
      if (i === undefined) this.exhausted = true;
      return i;
    },
  };
  const worker = async (): Promise<void> => {
    try {
      for (;;) {
        if (opts.signal?.aborted) return;
        const first = q.deferred.shift() ?? (await q.pull());
        if (!first) return;
        const refused = await storeRun(peer, first, q, opts);
        if (refused !== undefined) {
          if (q.active > 1) return; // the others carry on
          await failRest(q, refused);
          return;
        }
      }
    } finally {
      q.active--;
    }
  };
  await Promise.all(Array.from({ length: q.active }, worker));
  // Stopped (signal): whatever was not sent is reported, never dropped.
  await failRest(q, 'not sent: stopped');
  return outcomes;
}

interface RunQueue {
  deferred: StoreInstance[];
  exhausted: boolean;
  /** Workers still running. */
  active: number;
  maxPer: number;
  report(o: StoreOutcome): void;
  pull(): Promise<StoreInstance | undefined>;
}

async function failRest(q: RunQueue, reason: string): Promise<void> {
  for (let next = q.deferred.shift() ?? (await q.pull()); next; next = q.deferred.shift() ?? (await q.pull())) {
    q.report({ instance: next, state: 'failed', reason, attempted: false });
  }
}

/**
 * One association: propose the contexts of `first` and of the deferred instances, then send
 * as they come. Returns the reason when the association could not be opened.
 */
async function storeRun(peer: DicomPeer, first: StoreInstance, q: RunQueue, opts: StoreOptions): Promise<string | undefined> {
  const proposals = new Map<string, ContextProposal>();
  for (const i of [first, ...q.deferred]) {
    const k = contextKey(i);
    if (!proposals.has(k) && proposals.size < MAX_CONTEXTS) proposals.set(k, { abstractSyntax: i.sopClassUid, transferSyntaxes: [i.transferSyntaxUid] });
  }
  let assoc: UlAssociation;
  try {
    assoc = await UlAssociation.open(peer, [...proposals.values()], opts);
  } catch (err) {
    const reason = (err as Error).message;
    q.report({ instance: first, state: 'failed', reason, attempted: false });
    return reason;
  }
  let current: StoreInstance | undefined = first;
  let sent = 0;
  // Two requests handed to the association at once: the second is read and framed while the
  // first waits for its response, and goes out the moment that response arrives.
  const inflight: Array<Promise<void>> = [];
  const settle = async (): Promise<void> => {
    await inflight.shift();
  };
  try {
    while (current) {
      if (opts.signal?.aborted) break;
      if (!proposals.has(contextKey(current))) {
        q.deferred.push(current); // for the next association
      } else if (!assoc.acceptedContext(current.sopClassUid, current.transferSyntaxUid)) {
        const sop = current.sopClassUid;
        const pc = assoc.contexts().find((c) => c.abstractSyntax === sop);
        q.report({
          instance: current,
          state: 'failed',
          reason: `the peer did not accept SOP class ${sop} in transfer syntax ${current.transferSyntaxUid} (${pc?.result ?? 'not negotiated'})`,
          attempted: true,
        });
      } else {
        const instance = current;
        inflight.push(
          storeOne(assoc, instance).then((o) => {
            // Queued behind a request whose association then ended: it goes to the next association.
            if (o === NOT_SENT) q.deferred.push(instance);
            else q.report(o);
          }),
        );
        sent++;
        if (inflight.length >= 2) await settle();
        // The association is gone (the instance got its failure); the next one gets a new association.
        if (!assoc.isOpen || sent >= q.maxPer) {
          current = undefined;
          break;
        }
      }
      // Next: a deferred instance this association can take, else the source.
      const idx = q.deferred.findIndex((d) => proposals.has(contextKey(d)));
      current = idx >= 0 ? q.deferred.splice(idx, 1)[0] : await q.pull();
    }
  } finally {
    while (inflight.length > 0) await settle();
    if (current) q.deferred.push(current);
    if (assoc.isOpen) await assoc.release().catch(() => assoc.abort());
    else assoc.abort();
  }
  return undefined;
}

const NOT_SENT = Symbol('not sent');

async function storeOne(assoc: UlAssociation, instance: StoreInstance): Promise<StoreOutcome | typeof NOT_SENT> {
  if (instance.datasetLength <= 0) {
    return { instance, state: 'failed', reason: 'the file holds no dataset after its File Meta', attempted: false };
  }
  if (instance.datasetLength % 2 === 1 && instance.transferSyntaxUid !== TS.DeflatedExplicitVRLittleEndian) {
    // Every element has even length, so an odd data set is cut or has trailing garbage.
    return { instance, state: 'failed', reason: `the data set has odd length ${instance.datasetLength}: not valid DICOM (truncated?)`, attempted: false };
  }
  try {
    const last = await assoc.store(instance.sopClassUid, instance.sopInstanceUid, instance.transferSyntaxUid, {
      path: instance.path,
      offset: instance.datasetOffset,
      length: instance.datasetLength,
    });
    const status = last.status;
    const comment = last.errorComment;
    const cls = statusClass(status);
    if (cls === 'success') return { instance, state: 'ok', status, attempted: true };
    if (cls === 'warning') return { instance, state: 'warning', status, reason: statusText(status), errorComment: comment, attempted: true };
    return { instance, state: 'failed', status, reason: `the peer answered ${statusText(status)}${comment ? `: ${comment}` : ''}`, errorComment: comment, attempted: true };
  } catch (err) {
    if (err instanceof NotSentError) return NOT_SENT;
    const reason = err instanceof NoResponseError || err instanceof AssociationError ? err.message : `error: ${(err as Error).message}`;
    return { instance, state: 'failed', reason, attempted: true };
  }
}
