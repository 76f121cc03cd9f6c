/**
 * C-MOVE and C-GET (Study Root Query/Retrieve, PS3.4 C.4.2 and C.4.3).
 *
 * C-MOVE asks the PACS to send the study to a destination AE title in separate associations
 * (the caller listens: fiona-pull starts fiona-receive's storage SCP). C-GET brings the
 * C-STOREs back on our own association, in the SCP role for the storage contexts we offer;
 * each data set is streamed into a StoreHandler (fiona-receive's SiteStore: temp file, File
 * Meta from the command, structure check, atomic placement), never decoded by dcmjs.
 *
 * A request that ends without a final response, or with a failure status, is an error that
 * says why; the counters of the final response (completed, failed, warning) are returned.
 */
import { Writable } from 'node:stream';
import { Dataset, requests } from '../dcmjs-dimse.js';
import type { DimseCommand } from '../scp/command.js';
import type { StoreHandler, StoreSink } from '../scp/types.js';
import {
  NoResponseError,
  ScuAssociation,
  statusClass,
  statusText,
  type AssociationTimeouts,
  type ContextProposal,
  type DicomPeer,
  type DimseResponse,
  type StoreStreamHooks,
} from './association.js';

export const STUDY_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.2.2';
export const STUDY_ROOT_GET = '1.2.840.10008.5.1.4.1.2.2.3';

const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflate: '1.2.840.10008.1.2.1.99',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLsLossless: '1.2.840.10008.1.2.4.80',
  jpegLsNear: '1.2.840.10008.1.2.4.81',
  j2kLossless: '1.2.840.10008.1.2.4.90',
  j2k: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
} as const;

/** Each compressed syntax gets a context of its own, so the PACS can send what it has as it is. */
const COMPRESSED = [
  TS.jpegBaseline, TS.jpegExtended, TS.jpegLossless, TS.jpegLosslessSV1, TS.jpegLsLossless, TS.jpegLsNear, TS.j2kLossless, TS.j2k, TS.rle, TS.deflate,
];

/** Storage classes offered for C-GET when the PACS does not say which a study holds. */
export const COMMON_STORAGE_CLASSES = [
  '1.2.840.10008.5.1.4.1.1.4', // MR
  '1.2.840.10008.5.1.4.1.1.4.1', // Enhanced MR
  '1.2.840.10008.5.1.4.1.1.4.2', // MR Spectroscopy
  '1.2.840.10008.5.1.4.1.1.2', // CT
  '1.2.840.10008.5.1.4.1.1.2.1', // Enhanced CT
  '1.2.840.10008.5.1.4.1.1.7', // Secondary Capture
  '1.2.840.10008.5.1.4.1.1.88.11', // Basic Text SR
  '1.2.840.10008.5.1.4.1.1.88.22', // Enhanced SR
  '1.2.840.10008.5.1.4.1.1.88.33', // Comprehensive SR
  '1.2.840.10008.5.1.4.1.1.11.1', // Grayscale Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.128', // PET
  '1.2.840.10008.5.1.4.1.1.20', // NM
  '1.2.840.10008.5.1.4.1.1.6.1', // US
  '1.2.840.10008.5.1.4.1.1.1', // CR
  '1.2.840.10008.5.1.4.1.1.1.1', // DX
  '1.2.840.10008.5.1.4.1.1.1.2', // MG
  '1.2.840.10008.5.1.4.1.1.12.1', // XA
  '1.2.840.10008.5.1.4.1.1.66', // Raw Data
  '1.2.840.10008.5.1.4.1.1.104.1', // Encapsulated PDF
];

export interface RetrieveCounts {
  completed: number;
  failed: number;
  warning: number;
  status: number;
  /** The final status in words (with the PACS's error comment, if any). */
  statusText: string;
}

export class RetrieveError extends Error {
  constructor(message: string, readonly kind: 'refused' | 'failed' | 'no-response', readonly counts?: RetrieveCounts) {
    super(message);
    this.name = 'RetrieveError';
  }
}

const RETRIEVE_STATUS: Record<number, string> = {
  0xa701: 'refused: out of resources, unable to calculate the number of matches',
  0xa702: 'refused: out of resources, unable to perform sub-operations',
  0xa801: 'refused: move destination unknown (the PACS does not know our AE title / port)',
  0xa900: 'failed: identifier does not match SOP class',
  0xb000: 'warning: sub-operations complete, one or more failures or warnings',
  0xfe00: 'cancelled',
};

function describe(status: number, comment?: string): string {
  const text = RETRIEVE_STATUS[status] ?? statusText(status);
  return comment ? `${text} (${comment})` : text;
}

type CountedResponse = DimseResponse & {
  getCompleted?: () => number;
  getFailures?: () => number;
  getWarnings?: () => number;
  getErrorComment?: () => string;
};

function countsOf(responses: DimseResponse[]): RetrieveCounts {
  const last = responses[responses.length - 1] as CountedResponse | undefined;
  if (!last) throw new RetrieveError('no response', 'no-response');
  const status = last.getStatus();
  const n = (f?: () => number): number => {
    const v = f?.call(last);
    return typeof v === 'number' && Number.isFinite(v) ? v : 0;
  };
  return {
    completed: n(last.getCompleted),
    failed: n(last.getFailures),
    warning: n(last.getWarnings),
    status,
    statusText: describe(status, last.getErrorComment?.call(last) || undefined),
  };
}

async function run(assoc: ScuAssociation, request: unknown, what: string): Promise<RetrieveCounts> {
  let responses: DimseResponse[];
  try {
    responses = await assoc.request(request);
  } catch (err) {
    if (err instanceof NoResponseError) throw new RetrieveError(`${what}: the PACS ended without a final response (${err.message})`, 'no-response');
    throw new RetrieveError(`${what}: ${(err as Error).message}`, 'no-response');
  }
  const counts = countsOf(responses);
  const cls = statusClass(counts.status);
  if (cls === 'failure' || cls === 'cancel') {
    const refused = (counts.status & 0xff00) === 0xa700 || counts.status === 0xa801;
    throw new RetrieveError(`${what} ${counts.statusText}`, refused ? 'refused' : 'failed', counts);
  }
  return counts;
}

function qrContext(abstractSyntax: string): ContextProposal {
  return { abstractSyntax, transferSyntaxes: [TS.explicitLE, TS.implicitLE] };
}

/** Ask the PACS to send a study to `destinationAet` (who must be listening). */
export async function moveStudy(peer: DicomPeer, destinationAet: string, studyUid: string, timeouts: AssociationTimeouts = {}): Promise<RetrieveCounts> {
  const assoc = await ScuAssociation.open(peer, [qrContext(STUDY_ROOT_MOVE)], timeouts);
  try {
    const ctx = assoc.acceptedContext(STUDY_ROOT_MOVE);
    if (!ctx) throw new RetrieveError(`${peer.calledAet} does not accept Study Root C-MOVE`, 'refused');
    const request = requests.CMoveRequest.createStudyMoveRequest(destinationAet, studyUid);
    request.getDataset()?.setTransferSyntaxUid(ctx.transferSyntax!);
    return await run(assoc, request, 'C-MOVE');
  } finally {
    await assoc.release(5_000).catch(() => assoc.abort());
  }
}

type StoreRq = {
  getAffectedSopClassUid(): string;
  getAffectedSopInstanceUid(): string;
  getMessageId(): number;
  getPriority?: () => number;
  getDataset(): unknown;
};

/** Feeds a StoreSink with the PDV bytes dcmjs-dimse hands over, with its back-pressure. */
class SinkWritable extends Writable {
  constructor(readonly sink: StoreSink) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.sink.write(chunk)) cb();
    else this.sink.drained().then(() => cb(), cb);
  }
}

/** A data set placeholder carrying the store's answer to the C-STORE response. */
class StoredDataset extends Dataset {
  constructor(readonly status: number, ts: string) {
    super({}, ts);
  }
}

/** The storage contexts for C-GET: each class with uncompressed syntaxes, and each compressed syntax alone. */
export function getContexts(sopClasses: string[]): ContextProposal[] {
  const classes = sopClasses.length > 0 ? sopClasses : COMMON_STORAGE_CLASSES;
  const full = 1 + classes.length * (1 + COMPRESSED.length);
  const out: ContextProposal[] = [qrContext(STUDY_ROOT_GET)];
  for (const sc of classes) {
    out.push({ abstractSyntax: sc, transferSyntaxes: [TS.explicitLE, TS.implicitLE], scpRole: true });
    // 128 contexts at most per association: without room, the PACS may have to transcode.
    if (full <= 128) for (const ts of COMPRESSED) out.push({ abstractSyntax: sc, transferSyntaxes: [ts], scpRole: true });
  }
  return out.slice(0, 128);
}

/**
 * C-GET a study: the C-STOREs arrive on this association and go to `store` as they stream.
 * `sopClasses` are the storage classes to offer (findSopClasses); empty: a common list.
 */
export async function getStudy(
  peer: DicomPeer,
  studyUid: string,
  sopClasses: string[],
  store: StoreHandler,
  timeouts: AssociationTimeouts = {},
): Promise<RetrieveCounts> {
  let current: { sink: StoreSink; done: boolean } | undefined;
  let seq = 0;
  // The data sets stream to the store as they arrive (not held in memory and decoded).
  const hooks: StoreStreamHooks = {
    createStoreWritableStream(pc, request) {
      const rq = request as StoreRq;
      const command: DimseCommand = {
        commandField: 0x0001,
        messageId: rq.getMessageId(),
        affectedSopClassUid: rq.getAffectedSopClassUid(),
        affectedSopInstanceUid: rq.getAffectedSopInstanceUid(),
        priority: rq.getPriority?.(),
        hasDataset: true,
      };
      const sink = store.begin({
        association: { id: `get-${process.pid.toString(36)}-${++seq}`, callingAet: peer.calledAet, calledAet: peer.callingAet, peer: peer.host, peerPort: peer.port },
        pcId: pc.getPresentationContextId(),
        abstractSyntax: pc.getAbstractSyntaxUid(),
        transferSyntax: pc.getAcceptedTransferSyntaxUid() ?? '',
        command,
      });
      current = { sink, done: false };
      return new SinkWritable(sink);
    },
    createDatasetFromStoreWritableStream(w, pc, callback) {
      const sink = (w as SinkWritable).sink;
      const ts = pc.getAcceptedTransferSyntaxUid() ?? '1.2.840.10008.1.2';
      const finish = async (): Promise<number> => {
        if (!w.writableFinished) await new Promise<void>((resolve, reject) => w.once('finish', resolve).once('error', reject));
        const reply = await sink.end();
        return reply.status;
      };
      finish()
        .catch(() => 0x0110)
        .then((status) => {
          if (current?.sink === sink) current.done = true;
          callback(new StoredDataset(status, ts));
        });
    },
  };
  const assoc = await ScuAssociation.open(peer, getContexts(sopClasses), {
    ...timeouts,
    onStoreRequest: (request) => {
      const ds = (request as StoreRq).getDataset();
      return ds instanceof StoredDataset ? ds.status : 0x0110;
    },
    storeStream: hooks,
  });
  try {
    const ctx = assoc.acceptedContext(STUDY_ROOT_GET);
    if (!ctx) throw new RetrieveError(`${peer.calledAet} does not accept Study Root C-GET`, 'refused');
    const request = requests.CGetRequest.createStudyGetRequest(studyUid);
    request.getDataset()?.setTransferSyntaxUid(ctx.transferSyntax!);
    return await run(assoc, request, 'C-GET');
  } finally {
    if (current && !current.done) await current.sink.abort('the C-GET association ended mid-instance');
    await assoc.release(5_000).catch(() => assoc.abort());
  }
}
