/**
 * The DICOM client side: one association to a peer, on dcmjs-dimse's Network class.
 *
 * Why not dcmjs-dimse's Client: Client.send() proposes Implicit and Explicit VR Little Endian
 * for every request and transcodes (through dcmjs, which drops private tags) when the peer
 * picks the other one; it also holds every dataset in memory and gives no way to tell a
 * request that never got a response from one that did. Here the caller names exactly which
 * presentation contexts to propose and each request resolves with its responses or fails
 * with the reason.
 *
 * Used by query.ts / retrieve.ts (C-FIND, C-MOVE, C-GET: `onStoreRequest` receives the
 * C-STOREs of a C-GET). C-STORE and C-ECHO go through ../ul-association.ts.
 */
import { connect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
// The shared typed wrapper (it also silences dcmjs-dimse's logger, which writes to stdout).
import {
  Dataset,
  Scp,
  associationClasses,
  constants,
  requests as dimseRequests,
  responses as dimseResponses,
  type Association as DimseAssociation,
  type DimseDataset,
  type PresentationContext as DimseContext,
} from '../dcmjs-dimse.js';
import {
  AssociationError,
  NoResponseError,
  REJECT_REASONS,
  type AcceptedContext,
  type AssociationTimeouts,
  type ContextProposal,
  type DicomPeer,
} from '../scu-common.js';

// Moved to scu-common.ts (the send path loads them without dcmjs-dimse); re-exported for query/retrieve.
export { AssociationError, NoResponseError, statusClass, statusText } from '../scu-common.js';
export type { AcceptedContext, AssociationTimeouts, ContextProposal, DicomPeer, StatusClass } from '../scu-common.js';

const { Association: AssociationClass } = associationClasses;
const { PresentationContextResult, Status } = constants;

type DimseRequest = InstanceType<typeof dimseRequests.CEchoRequest> & {
  on(event: 'response', fn: (r: DimseResponse) => void): void;
  on(event: 'done', fn: () => void): void;
};
export type DimseResponse = InstanceType<typeof dimseResponses.CEchoResponse>;


/**
 * dcmjs-dimse's Network hooks for the data set of an incoming C-STORE (not in its typings):
 * where its bytes go while they arrive, and what stands for the data set once they have.
 */
export interface StoreStreamHooks {
  createStoreWritableStream(pc: DimseContext, request: unknown): Writable;
  createDatasetFromStoreWritableStream(w: Writable, pc: DimseContext, callback: (ds: unknown) => void): void;
}

export interface OpenOptions extends AssociationTimeouts {
  /** Called for C-STORE requests the peer sends us (C-GET). Return the status to answer. */
  onStoreRequest?: (request: unknown) => Promise<number> | number;
  /**
   * Stream the data sets of incoming C-STOREs (C-GET) instead of dcmjs-dimse's default,
   * which holds each in memory and decodes it (dropping private tags).
   */
  storeStream?: StoreStreamHooks;
}



interface NetworkLike {
  socket: Socket;
  association?: DimseAssociation;
  sendAssociationRequest(a: DimseAssociation): void;
  sendAssociationReleaseRequest(): void;
  sendAssociationReleaseResponse(): void;
  sendAbort(source?: number, reason?: number): void;
  sendRequests(r: DimseRequest | DimseRequest[]): void;
  sendResponse(request: unknown, response: unknown): void;
  on(event: string, fn: (...args: never[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  _sendDimse(dimse: { command: CommandLike; context: DimseContext }): void;
  _processPDataTf(pdu: PDataTfLike): Promise<void>;
  _performDimse(context: DimseContext, dimse: unknown): void;
  dimse?: unknown;
}
interface PdvLike {
  getPresentationContextId(): number;
  isCommand(): boolean;
  isLastFragment(): boolean;
  getValue(): Buffer;
}
interface PDataTfLike {
  getPdvs(): PdvLike[];
}
interface CommandLike {
  getDataset(): DimseDataset | undefined;
  getCommandDataset(): DimseDataset;
  raiseDoneEvent?: () => void;
}
type NetworkCtor = new (socket: Socket, opts: Record<string, unknown>) => NetworkLike;

// dcmjs-dimse exports its Network class only as the base of Scp.
const NetworkBase = Object.getPrototypeOf(Scp) as NetworkCtor;

/** Command elements of the responses we parse ourselves (PS3.7 E.1), keyword and VR. */
const COMMAND_ELEMENTS: Record<number, [string, 'UI' | 'US' | 'LO']> = {
  0x00000002: ['AffectedSOPClassUID', 'UI'],
  0x00000100: ['CommandField', 'US'],
  0x00000120: ['MessageIDBeingRespondedTo', 'US'],
  0x00000800: ['CommandDataSetType', 'US'],
  0x00000900: ['Status', 'US'],
  0x00000902: ['ErrorComment', 'LO'],
  0x00001000: ['AffectedSOPInstanceUID', 'UI'],
};
const C_STORE_RSP = 0x8001;
const C_ECHO_RSP = 0x8030;

/**
 * Parse a C-STORE-RSP / C-ECHO-RSP command set (implicit VR little endian, group 0000).
 * dcmjs-dimse parses every command through dcmjs, about 3 ms each, which made sending
 * small instances CPU-bound; responses are tiny and fixed, so they are read here. Anything
 * unexpected returns undefined and takes dcmjs-dimse's own path.
 */
export function parseSimpleResponse(buf: Buffer): Record<string, string | number> | undefined {
  const out: Record<string, string | number> = {};
  let at = 0;
  while (at + 8 <= buf.length) {
    const tag = ((buf.readUInt16LE(at) << 16) | buf.readUInt16LE(at + 2)) >>> 0;
    const len = buf.readUInt32LE(at + 4);
    at += 8;
    if (at + len > buf.length) return undefined;
    if (tag === 0x00000000) {
      at += len; // group length
      continue;
    }
    const el = COMMAND_ELEMENTS[tag];
    if (!el) {
      // Offending element, error ID...: rare, let dcmjs-dimse read them.
      return undefined;
    }
    const [keyword, vr] = el;
    if (vr === 'US') {
      if (len !== 2) return undefined;
      out[keyword] = buf.readUInt16LE(at);
    } else {
      out[keyword] = buf.toString('latin1', at, at + len).replace(/[\0 ]+$/, '');
    }
    at += len;
  }
  if (at !== buf.length) return undefined;
  const field = out.CommandField;
  if (field !== C_STORE_RSP && field !== C_ECHO_RSP) return undefined;
  if (out.CommandDataSetType !== 0x0101 || typeof out.Status !== 'number' || typeof out.MessageIDBeingRespondedTo !== 'number') return undefined;
  return out;
}

/**
 * dcmjs-dimse's Network with two changes: simple responses are read without dcmjs, and a
 * dataset is never transcoded: a transfer syntax mismatch fails the request instead.
 */
class ScuNetwork extends NetworkBase {
  override async _processPDataTf(pdu: PDataTfLike): Promise<void> {
    const pdvs = pdu.getPdvs();
    const only = pdvs.length === 1 ? pdvs[0]! : undefined;
    if (only && this.dimse === undefined && only.isCommand() && only.isLastFragment()) {
      const elements = parseSimpleResponse(only.getValue());
      if (elements) {
        const Rsp = elements.CommandField === C_STORE_RSP ? dimseResponses.CStoreResponse : dimseResponses.CEchoResponse;
        const rsp = new Rsp(elements.Status as number, '');
        rsp.setCommandDataset(new Dataset(elements));
        const context = this.association!.getPresentationContext(only.getPresentationContextId());
        this._performDimse(context, rsp);
        return;
      }
    }
    await super._processPDataTf(pdu);
  }

  override _sendDimse(d: { command: CommandLike; context: DimseContext }): void {
    const dataset = d.command.getDataset();
    if (dataset) {
      const accepted = this.association?.getPresentationContext(d.context.getPresentationContextId()).getAcceptedTransferSyntaxUid();
      if (accepted !== dataset.getTransferSyntaxUid()) {
        // Without a response the request counts as failed by the caller; never transcode.
        d.command.raiseDoneEvent?.();
        return;
      }
    }
    super._sendDimse(d);
  }
}

/**
 * An open association. Requests are sent one after another (dcmjs-dimse's network sends
 * one at a time); each resolves with all its responses (pending ones first) or rejects
 * with NoResponseError / AssociationError.
 */
export class ScuAssociation {
  private chain: Promise<unknown> = Promise.resolve();
  private failure?: AssociationError;
  private closeWaiters: Array<() => void> = [];
  private pendingFail?: (err: Error) => void;
  private closed = false;

  private constructor(
    readonly peer: DicomPeer,
    private readonly network: NetworkLike,
    private readonly socket: Socket,
    private readonly association: DimseAssociation,
  ) {}

  /** Connect, negotiate the proposed contexts, and resolve once the peer accepted. */
  static open(peer: DicomPeer, proposals: ContextProposal[], opts: OpenOptions = {}): Promise<ScuAssociation> {
    if (proposals.length === 0) throw new Error('an association needs at least one presentation context');
    if (proposals.length > 128) throw new Error(`at most 128 presentation contexts per association, got ${proposals.length}`);
    if (opts.storeStream && typeof (NetworkBase.prototype as Partial<StoreStreamHooks>).createStoreWritableStream !== 'function') {
      throw new Error('dcmjs-dimse internals changed (createStoreWritableStream missing): fiona needs dcmjs-dimse 0.3.3');
    }
    const association = new AssociationClass(peer.callingAet, peer.calledAet);
    for (const p of proposals) {
      const id = association.addPresentationContext(p.abstractSyntax);
      for (const ts of p.transferSyntaxes) association.addTransferSyntaxToPresentationContext(id, ts);
      if (p.scpRole) {
        const ctx = association.getPresentationContext(id);
        ctx.setUserRole(true);
        ctx.setProviderRole(true);
      }
    }
    const connectMs = opts.connectMs ?? 15_000;
    const associateMs = opts.associateMs ?? 30_000;
    const idleMs = opts.idleMs ?? 120_000;

    const socket = connect({ host: peer.host, port: peer.port });
    socket.setNoDelay(true);
    const network = new ScuNetwork(socket, {
      connectTimeout: Math.max(connectMs, idleMs),
      associationTimeout: associateMs,
      pduTimeout: idleMs,
    });
    if (opts.storeStream) Object.assign(network, opts.storeStream);
    const scu = new ScuAssociation(peer, network, socket, association);
    const where = `${peer.calledAet}@${peer.host}:${peer.port}`;

    return new Promise<ScuAssociation>((resolve, reject) => {
      let settled = false;
      const fail = (err: AssociationError): void => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(err);
        }
        scu.fail(err);
        socket.destroy();
      };
      // Our own deadline for the whole negotiation; dcmjs-dimse checks only once a second.
      const timer = setTimeout(() => {
        const connected = !socket.connecting;
        fail(
          connected
            ? new AssociationError(`${where}: no answer to the association request within ${associateMs} ms (peer hung?)`, 'timeout')
            : new AssociationError(`${where}: could not connect within ${connectMs} ms`, 'timeout'),
        );
      }, connectMs + associateMs);

      network.on('connect', () => network.sendAssociationRequest(association));
      network.on('associationAccepted', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(scu);
      });
      network.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
        const why = REJECT_REASONS[`${r.source}:${r.reason}`] ?? `source ${r.source}, reason ${r.reason}`;
        const perm = r.result === 1 ? 'permanent' : 'transient';
        fail(new AssociationError(`${where}: association rejected (${perm}): ${why}`, 'rejected'));
      });
      network.on('abort', (a: { source: number; reason: number }) => {
        fail(new AssociationError(`${where}: association aborted by the peer (source ${a.source}, reason ${a.reason})`, 'aborted'));
      });
      network.on('associationReleaseRequested', () => {
        // A peer that releases first: answer and close (PS3.8 7.2).
        network.sendAssociationReleaseResponse();
        fail(new AssociationError(`${where}: the peer released the association`, 'closed'));
      });
      network.on('associationReleaseResponse', () => {
        socket.end();
      });
      network.on('networkError', (err: Error) => {
        fail(classifyNetworkError(where, err, socket));
      });
      network.on('close', () => {
        fail(new AssociationError(`${where}: connection closed`, 'closed'));
        scu.markClosed();
      });
      network.on('cStoreRequest', (request: unknown, callback: (rsp: unknown) => void) => {
        void scu.answerStore(request, callback, opts.onStoreRequest);
      });
    });
  }

  /** The contexts as the peer answered them. */
  contexts(): AcceptedContext[] {
    return this.association.getPresentationContexts().map(({ id, context }) => ({
      id,
      abstractSyntax: context.getAbstractSyntaxUid(),
      transferSyntax: context.getAcceptedTransferSyntaxUid(),
      accepted: context.getResult() === PresentationContextResult.Accept,
      result: context.getResultDescription(),
    }));
  }

  /** The accepted context for exactly this abstract syntax and transfer syntax, if any. */
  acceptedContext(abstractSyntax: string, transferSyntax?: string): AcceptedContext | undefined {
    return this.contexts().find(
      (c) => c.accepted && c.abstractSyntax === abstractSyntax && (transferSyntax === undefined || c.transferSyntax === transferSyntax),
    );
  }

  /** The peer's maximum PDU length (0 = unlimited). */
  get maxPduLength(): number {
    return this.association.getMaxPduLength();
  }

  get isOpen(): boolean {
    return this.failure === undefined && !this.closed;
  }

  /** Send one request and collect its responses; requests queue behind each other. */
  request(request: unknown): Promise<DimseResponse[]> {
    const run = (): Promise<DimseResponse[]> => this.sendOne(request as DimseRequest);
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private sendOne(req: DimseRequest): Promise<DimseResponse[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new AssociationError('association already closed', 'closed'));
    return new Promise<DimseResponse[]>((resolve, reject) => {
      const responses: DimseResponse[] = [];
      let finished = false;
      const finish = (err?: Error): void => {
        if (finished) return;
        finished = true;
        this.pendingFail = undefined;
        if (err) reject(err);
        else resolve(responses);
      };
      this.pendingFail = (err) => finish(new NoResponseError(`no response: ${err.message}`));
      req.on('response', (r) => responses.push(r));
      req.on('done', () => {
        const last = responses[responses.length - 1];
        if (last && last.getStatus() !== Status.Pending) finish();
        else finish(new NoResponseError('no response: the request could not be sent in an accepted presentation context/transfer syntax'));
      });
      this.network.sendRequests(req);
    });
  }

  /** A-RELEASE; resolves when the connection is closed (or after a grace period). */
  async release(graceMs = 10_000): Promise<void> {
    if (this.closed) return;
    await this.chain;
    if (this.closed) return;
    const closed = new Promise<void>((r) => this.closeWaiters.push(r));
    if (!this.failure) this.network.sendAssociationReleaseRequest();
    else this.socket.destroy();
    const timer = setTimeout(() => this.socket.destroy(), graceMs);
    await closed;
    clearTimeout(timer);
  }

  /** A-ABORT and close at once. */
  abort(): void {
    if (this.closed) return;
    try {
      this.network.sendAbort();
    } catch {
      // The socket may already be gone.
    }
    this.fail(new AssociationError('aborted by us', 'aborted'));
    this.socket.destroy();
  }

  private fail(err: AssociationError): void {
    if (!this.failure) this.failure = err;
    this.pendingFail?.(err);
  }

  private markClosed(): void {
    this.closed = true;
    for (const w of this.closeWaiters.splice(0)) w();
  }

  private async answerStore(
    request: unknown,
    callback: (rsp: unknown) => void,
    handler: OpenOptions['onStoreRequest'],
  ): Promise<void> {
    const { CStoreResponse } = dimseResponses;
    let status: number = Status.SopClassNotSupported;
    try {
      if (handler) status = await handler(request);
    } catch {
      status = Status.ProcessingFailure;
    }
    const rsp = CStoreResponse.fromRequest(request as InstanceType<typeof dimseRequests.CStoreRequest>);
    rsp.setStatus(status);
    callback(rsp);
  }
}

function classifyNetworkError(where: string, err: Error, socket: Socket): AssociationError {
  const msg = err.message;
  if (/ECONNREFUSED/.test(msg)) return new AssociationError(`${where}: connection refused (nothing listens there)`, 'refused', { cause: err });
  if (/EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/.test(msg)) return new AssociationError(`${where}: host unreachable (${msg})`, 'unreachable', { cause: err });
  const assocTimeout = /association timeout \((\d+)\)/i.exec(msg);
  if (assocTimeout) {
    return new AssociationError(`${where}: no answer to the association request within ${assocTimeout[1]} ms (peer hung?)`, 'timeout', { cause: err });
  }
  const pduTimeout = /PDU timeout \((\d+)\)/i.exec(msg);
  if (pduTimeout) return new AssociationError(`${where}: no progress for ${pduTimeout[1]} ms (peer hung?)`, 'timeout', { cause: err });
  if (/timeout/i.test(msg)) {
    return new AssociationError(`${where}: ${socket.connecting ? 'connect' : 'association'} timed out (${msg.replace(/^.*-> /, '')})`, 'timeout', { cause: err });
  }
  if (/ECONNRESET|EPIPE/.test(msg)) return new AssociationError(`${where}: connection reset by the peer`, 'closed', { cause: err });
  return new AssociationError(`${where}: ${msg}`, 'protocol', { cause: err });
}

