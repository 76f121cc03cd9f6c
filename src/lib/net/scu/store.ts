/**
 * C-STORE SCU (PS3.4 Annex B) that sends each file's original dataset bytes in the file's
 * own transfer syntax: no re-encoding, so private tags and compressed pixel data arrive as
 * they are. Several instances go over one association, and `associations` of them run in
 * parallel. Every request must end with a response; a missing one is a failure.
 */
import { requests } from '../dcmjs-dimse.js';
import {
  AssociationError,
  FileDataset,
  NoResponseError,
  ScuAssociation,
  statusClass,
  statusText,
  type AssociationTimeouts,
  type ContextProposal,
  type DicomPeer,
} from './association.js';

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

const DEFLATED = '1.2.840.10008.1.2.1.99';

/** PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255, so at most 128 per association. */
const MAX_CONTEXTS = 128;

function contextKey(i: StoreInstance): string {
  return `${i.sopClassUid}\u0000${i.transferSyntaxUid}`;
}

/**
 * Store all instances; resolves with one outcome per instance (in completion order).
 * Never rejects for a peer problem: each affected instance gets a failed outcome with the reason.
 */
export async function storeInstances(peer: DicomPeer, instances: StoreInstance[], opts: StoreOptions = {}): Promise<StoreOutcome[]> {
  const queue = [...instances];
  const outcomes: StoreOutcome[] = [];
  const report = (o: StoreOutcome): void => {
    outcomes.push(o);
    opts.onOutcome?.(o);
  };
  const workers = Math.max(1, Math.min(opts.associations ?? 1, queue.length || 1));
  const maxPer = Math.max(1, opts.maxPerAssociation ?? 500);

  const worker = async (): Promise<void> => {
    for (;;) {
      if (opts.signal?.aborted) return;
      const batch = takeBatch(queue, Math.min(maxPer, Math.ceil(queue.length / workers) || 1));
      if (batch.length === 0) return;
      await storeBatch(peer, batch, opts, report);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  for (const rest of queue.splice(0)) {
    report({ instance: rest, state: 'failed', reason: 'not sent: stopped', attempted: false });
  }
  return outcomes;
}

/** Take up to `max` instances whose distinct (SOP class, transfer syntax) pairs fit one association. */
function takeBatch(queue: StoreInstance[], max: number): StoreInstance[] {
  const keys = new Set<string>();
  const batch: StoreInstance[] = [];
  let i = 0;
  while (i < queue.length && batch.length < max) {
    const inst = queue[i]!;
    const k = contextKey(inst);
    if (!keys.has(k) && keys.size >= MAX_CONTEXTS) {
      i++;
      continue;
    }
    keys.add(k);
    batch.push(inst);
    queue.splice(i, 1);
  }
  return batch;
}

function proposalsFor(batch: StoreInstance[]): ContextProposal[] {
  const seen = new Map<string, ContextProposal>();
  for (const i of batch) {
    const k = contextKey(i);
    if (!seen.has(k)) seen.set(k, { abstractSyntax: i.sopClassUid, transferSyntaxes: [i.transferSyntaxUid] });
  }
  return [...seen.values()];
}

async function storeBatch(
  peer: DicomPeer,
  batch: StoreInstance[],
  opts: StoreOptions,
  report: (o: StoreOutcome) => void,
): Promise<void> {
  let assoc: ScuAssociation;
  try {
    assoc = await ScuAssociation.open(peer, proposalsFor(batch), opts);
  } catch (err) {
    const reason = (err as Error).message;
    for (const instance of batch) report({ instance, state: 'failed', reason, attempted: false });
    return;
  }
  let i = 0;
  try {
    for (; i < batch.length; i++) {
      const instance = batch[i]!;
      if (!assoc.acceptedContext(instance.sopClassUid, instance.transferSyntaxUid)) {
        const pc = assoc.contexts().find((c) => c.abstractSyntax === instance.sopClassUid);
        report({
          instance,
          state: 'failed',
          reason: `the peer did not accept SOP class ${instance.sopClassUid} in transfer syntax ${instance.transferSyntaxUid} (${pc?.result ?? 'not negotiated'})`,
          attempted: true,
        });
        continue;
      }
      report(await storeOne(assoc, instance));
      if (!assoc.isOpen) {
        i++;
        break;
      }
    }
  } finally {
    // Whatever was not sent because the association went away is failed, not attempted.
    const lost = batch.slice(i);
    if (lost.length > 0) {
      for (const instance of lost) report({ instance, state: 'failed', reason: 'not sent: the association was lost', attempted: false });
    }
    if (assoc.isOpen) await assoc.release().catch(() => assoc.abort());
    else assoc.abort();
  }
}

async function storeOne(assoc: ScuAssociation, instance: StoreInstance): Promise<StoreOutcome> {
  if (instance.datasetLength <= 0) {
    return { instance, state: 'failed', reason: 'the file holds no dataset after its File Meta', attempted: false };
  }
  if (instance.datasetLength % 2 === 1 && instance.transferSyntaxUid !== DEFLATED) {
    // Every element has even length, so an odd data set is cut or has trailing garbage.
    return { instance, state: 'failed', reason: `the data set has odd length ${instance.datasetLength}: not valid DICOM (truncated?)`, attempted: false };
  }
  const dataset = new FileDataset(
    instance.path,
    instance.datasetOffset,
    instance.datasetLength,
    instance.transferSyntaxUid,
    instance.sopClassUid,
    instance.sopInstanceUid,
  );
  const request = new requests.CStoreRequest(dataset);
  try {
    const responses = await assoc.request(request);
    const last = responses[responses.length - 1]!;
    const status = last.getStatus();
    const comment = last.getErrorComment() || undefined;
    const cls = statusClass(status);
    if (cls === 'success') return { instance, state: 'ok', status, attempted: true };
    if (cls === 'warning') return { instance, state: 'warning', status, reason: statusText(status), errorComment: comment, attempted: true };
    return { instance, state: 'failed', status, reason: `the peer answered ${statusText(status)}${comment ? `: ${comment}` : ''}`, errorComment: comment, attempted: true };
  } catch (err) {
    const reason = err instanceof NoResponseError || err instanceof AssociationError ? err.message : `error: ${(err as Error).message}`;
    return { instance, state: 'failed', reason, attempted: true };
  }
}
