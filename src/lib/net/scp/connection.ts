/**
 * One association on the receiving side: A-ASSOCIATE negotiation, C-ECHO, C-STORE with the
 * data set streamed to a StoreSink, release, abort, idle timeout, graceful shutdown.
 *
 * Built on dcmjs-dimse's Scp for what it does well: parsing the A-ASSOCIATE-RQ into an
 * Association and writing the A-ASSOCIATE-AC/RJ. Its socket handling is replaced (the
 * `_wrapSocket` override below) by PduReader, which streams PDV bytes without copies and with
 * back-pressure; commands and responses are coded in command.ts. See pdu-reader.ts for why.
 *
 * Rules kept here:
 * - every callback is guarded: an exception ends this association with an A-ABORT, never the
 *   process;
 * - the C-STORE response is sent only after the sink's end() returned or resolved (the file
 *   is in place);
 * - while an instance is being finished, no further PDU is read (no pipelining surprises);
 * - a data set cut short by a release, abort, close or timeout goes to sink.abort().
 */
import type { Socket } from 'node:net';
import { Scp, type Association } from '../dcmjs-dimse.js';
import { CommandError, CommandField, Status, encodePDataTf, encodeResponse, parseCommand, type DimseCommand } from './command.js';
import { PduReader, PduType, ProtocolError, type PduReaderHandler } from './pdu-reader.js';
import { ContextResult, decideAssociation, type ScpPolicy } from './policy.js';
import type { AssociationEnd, AssociationInfo, ScpHooks, StoreHandler, StoreReply, StoreSink } from './types.js';

/** The parts of dcmjs-dimse's Network this class relies on (not in its typings). */
interface NetworkInternals {
  _processPdu(data: Buffer): Promise<void>;
  _wrapSocket(): void;
}

{
  const proto = Scp.prototype as unknown as Partial<NetworkInternals>;
  if (typeof proto._processPdu !== 'function' || typeof proto._wrapSocket !== 'function') {
    throw new Error('dcmjs-dimse internals changed (_processPdu/_wrapSocket missing): fiona needs dcmjs-dimse 0.3.3');
  }
}

export interface ConnectionOptions {
  id: string;
  policy: ScpPolicy;
  handler: StoreHandler;
  hooks: ScpHooks;
  /** Largest PDU we announce we can receive. */
  maxPduLength: number;
  /** Abort an association on which the peer sends nothing for this long (ms); 0: never. */
  idleTimeoutMs: number;
  acquireSlot(): boolean;
  releaseSlot(): void;
  isDraining(): boolean;
}

interface AcceptedContext {
  abstractSyntax: string;
  transferSyntax: string;
}

/** The request whose data set is arriving (or about to). */
interface Current {
  command: DimseCommand;
  pcId: number;
  sink?: StoreSink;
  /** No sink: read the data set and drop it, then answer with this. */
  discardReply?: { status: number; comment: string };
  bytes: number;
}

type State = 'awaiting-associate' | 'associated' | 'ended';

const MAX_COMMAND_BYTES = 64 * 1024;
/** A connection must send its A-ASSOCIATE-RQ within this time (DCMTK's ACSE timeout is 30 s). */
const ASSOCIATE_TIMEOUT_MS = 30_000;

/** An AE title as we show and record it: printable ASCII, no backslash (it separates values). */
function printableAet(aet: string): string {
  return aet.replace(/[^\x20-\x5b\x5d-\x7e]/g, '?');
}

/** A-ABORT source 0 = service user (we decided), 2 = service provider (protocol error). */
function abortPdu(source: number, reason: number): Buffer {
  return Buffer.from([PduType.Abort, 0, 0, 0, 0, 4, 0, 0, source, reason]);
}
const RELEASE_RP = Buffer.from([PduType.ReleaseRp, 0, 0, 0, 0, 4, 0, 0, 0, 0]);

export class StoreScpConnection extends Scp implements PduReaderHandler {
  // Fields are set after dcmjs-dimse's constructor ran (it calls _wrapSocket, a no-op here).
  private readonly opts: ConnectionOptions;
  private readonly sock: Socket;
  private readonly reader: PduReader;
  private state: State = 'awaiting-associate';
  private info: AssociationInfo;
  private readonly contexts = new Map<number, AcceptedContext>();
  private hasSlot = false;
  private commandParts: Buffer[] = [];
  private commandBytes = 0;
  private pdv = { pcId: 0, isCommand: false, isLast: false };
  private current?: Current;
  /** Reasons the reader is held (sink back-pressure, an instance being finished). */
  private holds = 0;
  private busy?: Promise<void>;
  private closeAfterResponse = false;
  private readonly counts = { stored: 0, failed: 0 };
  private endReported = false;
  private readonly closedPromise: Promise<void>;
  private pendingAbort?: Promise<void>;

  constructor(socket: Socket, opts: ConnectionOptions) {
    super(socket, {});
    this.opts = opts;
    this.sock = socket;
    const peer = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.info = { id: opts.id, callingAet: '', calledAet: '', peer, peerPort: socket.remotePort ?? 0 };
    this.reader = new PduReader(this, () => socket.pause(), () => socket.resume());

    socket.setNoDelay(true);
    // Until the A-ASSOCIATE-RQ: the ACSE timeout; then the idle timeout (see negotiate()).
    socket.setTimeout(ASSOCIATE_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => this.guard(() => this.reader.push(chunk)));
    socket.on('timeout', () => this.guard(() => this.onIdle()));
    socket.on('error', (err: Error) => {
      // 'close' follows; ECONNRESET is how many senders end.
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') {
        this.opts.hooks.problem?.(this.info, `socket error: ${err.message}`);
      }
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.guard(() => this.onClosed());
        resolve();
      });
    });
    // dcmjs-dimse reports A-ASSOCIATE-RQ parse failures this way.
    this.on('networkError', (err: Error) => this.protocolAbort(`bad A-ASSOCIATE-RQ: ${err.message}`));
  }

  /** Replaces dcmjs-dimse's socket wiring (Buffer.concat accumulator, unordered async PDUs). */
  _wrapSocket(): void {}

  /** Resolves when the socket is closed and any partial instance has been put aside. */
  async settled(): Promise<void> {
    await this.closedPromise;
    await this.busy;
    await this.pendingAbort;
  }

  get associationInfo(): AssociationInfo {
    return this.info;
  }

  /** Shutdown: let the instance in flight finish and be answered, then abort. */
  shutdown(): void {
    if (this.state === 'awaiting-associate') {
      // An A-ASSOCIATE-RQ still to come is rejected (transient: the sender retries later);
      // a connection that sends none is not waited for.
      setTimeout(() => {
        if (this.state === 'awaiting-associate') this.sock.destroy();
      }, 2000).unref();
      return;
    }
    if (this.state !== 'associated') return;
    if (this.current || this.busy) {
      this.closeAfterResponse = true;
      return;
    }
    this.abortAssociation('shutdown', 'the receiver is shutting down', 0, 0);
  }

  /** Give up now (second signal, grace period over): partial instance put aside, A-ABORT. */
  forceClose(): void {
    if (this.state === 'ended') {
      this.sock.destroy();
      return;
    }
    this.abortAssociation('shutdown', 'the receiver stopped before the instance was complete', 0, 0);
  }

  // --- dcmjs-dimse Scp callbacks ------------------------------------------------------------

  override associationRequested(association: Association): void {
    this.guard(() => this.negotiate(association));
  }

  override associationReleaseRequested(): void {
    // Not used: release PDUs are handled in onControlPdu.
  }

  // --- PduReaderHandler ----------------------------------------------------------------------

  onControlPdu(type: number, pdu: Buffer): boolean {
    switch (type) {
      case PduType.AssociateRq:
        if (this.state !== 'awaiting-associate') return this.protocolAbort('A-ASSOCIATE-RQ on an established association');
        // Parses and calls associationRequested() synchronously (no await before its emit).
        (this as unknown as NetworkInternals)._processPdu(pdu).catch((err: unknown) => this.protocolAbort(`A-ASSOCIATE-RQ: ${String(err)}`));
        return true;
      case PduType.ReleaseRq:
        if (this.state !== 'associated') return this.protocolAbort('A-RELEASE-RQ without an association');
        if (this.current) {
          // A release in the middle of a data set: the sender broke off; keep the bytes aside.
          this.abortCurrent('the sender released the association before the data set was complete');
        }
        this.sock.write(RELEASE_RP);
        this.finish('released');
        this.sock.end();
        return true;
      case PduType.Abort: {
        const source = pdu.length >= 10 ? (pdu[8] as number) : -1;
        const reason = pdu.length >= 10 ? (pdu[9] as number) : -1;
        if (this.current) this.abortCurrent(`the sender aborted the association (A-ABORT source ${source}, reason ${reason}) before the data set was complete`);
        this.finish('aborted', `A-ABORT from the peer (source ${source}, reason ${reason})`);
        this.sock.destroy();
        return true;
      }
      default:
        return this.protocolAbort(`unexpected PDU type ${type} for an association acceptor`);
    }
  }

  onPdvStart(pcId: number, isCommand: boolean, isLast: boolean): void {
    if (this.state !== 'associated') throw new ProtocolError('P-DATA-TF before the association was accepted');
    if (!this.contexts.has(pcId)) throw new ProtocolError(`PDV on presentation context ${pcId}, which was not accepted`);
    if (isCommand && this.current) throw new ProtocolError('a command PDV arrived while a data set was expected');
    if (!isCommand && !this.current) throw new ProtocolError('a data set PDV arrived without a command');
    if (!isCommand && this.current && this.current.pcId !== pcId) {
      throw new ProtocolError(`data set PDV on presentation context ${pcId}, its command came on ${this.current.pcId}`);
    }
    this.pdv = { pcId, isCommand, isLast };
  }

  onPdvData(data: Buffer): boolean {
    if (this.pdv.isCommand) {
      this.commandBytes += data.length;
      if (this.commandBytes > MAX_COMMAND_BYTES) throw new ProtocolError(`command set longer than ${MAX_COMMAND_BYTES} bytes`);
      this.commandParts.push(Buffer.from(data));
      return true;
    }
    const cur = this.current as Current;
    cur.bytes += data.length;
    if (!cur.sink) return true;
    if (cur.sink.write(data)) return true;
    const sink = cur.sink;
    this.hold();
    sink.drained().then(
      () => this.release(),
      () => this.release(),
    );
    return false;
  }

  onPdvEnd(): boolean {
    if (!this.pdv.isLast) return true;
    if (this.pdv.isCommand) {
      const bytes = this.commandParts.length === 1 ? (this.commandParts[0] as Buffer) : Buffer.concat(this.commandParts);
      this.commandParts = [];
      this.commandBytes = 0;
      return this.onCommand(bytes, this.pdv.pcId);
    }
    return this.onDatasetComplete();
  }

  // --- association -------------------------------------------------------------------------

  private negotiate(association: Association): void {
    const calling = association.getCallingAeTitle();
    const called = association.getCalledAeTitle();
    this.info = { ...this.info, callingAet: printableAet(calling), calledAet: printableAet(called) };
    const proposed = association.getPresentationContexts().map(({ id, context }) => ({
      id,
      abstractSyntax: context.getAbstractSyntaxUid(),
      transferSyntaxes: context.getTransferSyntaxUids(),
    }));
    const draining = this.opts.isDraining();
    const slotFree = !draining && this.opts.acquireSlot();
    const decision = decideAssociation(
      { callingAet: calling, calledAet: called, contexts: proposed },
      this.opts.policy,
      { slotFree, draining },
    );
    if (!decision.accept) {
      if (slotFree) this.opts.releaseSlot();
      const r = decision.rejection;
      this.sendAssociationReject(r.result, r.source, r.reason);
      this.state = 'ended';
      this.endReported = true;
      this.opts.hooks.rejected?.(this.info, r.why);
      this.sock.end();
      return;
    }
    this.hasSlot = true;
    let accepted = 0;
    for (const d of decision.contexts) {
      const context = association.getPresentationContext(d.id);
      context.setResult(d.result, d.transferSyntax);
      // We only ever act as SCP: the peer may be SCU, not SCP, on a context.
      if (context.getUserRole() !== undefined || context.getProviderRole() !== undefined) {
        context.setUserRole(true);
        context.setProviderRole(false);
      }
      if (d.result === ContextResult.Acceptance && d.transferSyntax) {
        this.contexts.set(d.id, { abstractSyntax: context.getAbstractSyntaxUid(), transferSyntax: d.transferSyntax });
        accepted++;
      }
    }
    // No asynchronous operations window: one request at a time.
    association.setNegotiateAsyncOps(false);
    association.setMaxAsyncOpsInvoked(1);
    association.setMaxAsyncOpsPerformed(1);
    // Announce our own receive limit (dcmjs-dimse would otherwise echo the peer's).
    association.setMaxPduLength(this.opts.maxPduLength);
    this.sendAssociationAccept();
    this.state = 'associated';
    this.sock.setTimeout(this.opts.idleTimeoutMs);
    this.opts.hooks.accepted?.(this.info, { accepted, rejected: decision.contexts.length - accepted });
  }

  // --- DIMSE ---------------------------------------------------------------------------------

  private onCommand(bytes: Buffer, pcId: number): boolean {
    let command: DimseCommand;
    try {
      command = parseCommand(bytes);
    } catch (err) {
      if (err instanceof CommandError) throw new ProtocolError(`bad command set: ${err.message}`);
      throw err;
    }
    const context = this.contexts.get(pcId) as AcceptedContext;
    switch (command.commandField) {
      case CommandField.CEchoRq:
        if (command.hasDataset) {
          this.current = { command, pcId, bytes: 0, discardReply: { status: Status.Success, comment: '' } };
          return true;
        }
        this.respond(command, pcId, Status.Success);
        this.opts.hooks.echo?.(this.info);
        return this.afterResponse();
      case CommandField.CStoreRq: {
        if (!command.hasDataset) {
          this.respond(command, pcId, Status.CannotUnderstand, 'C-STORE-RQ without a data set');
          this.counts.failed++;
          return this.afterResponse();
        }
        let sink: StoreSink | undefined;
        let discardReply: Current['discardReply'];
        try {
          sink = this.opts.handler.begin({
            association: this.info,
            pcId,
            abstractSyntax: context.abstractSyntax,
            transferSyntax: context.transferSyntax,
            command,
          });
        } catch (err) {
          discardReply = { status: Status.ProcessingFailure, comment: `cannot store: ${(err as Error).message}` };
        }
        this.current = { command, pcId, sink, discardReply, bytes: 0 };
        return true;
      }
      case CommandField.CCancelRq:
        return true;
      default:
        if (command.hasDataset) {
          this.current = {
            command,
            pcId,
            bytes: 0,
            discardReply: { status: Status.UnrecognizedOperation, comment: 'this receiver serves C-STORE and C-ECHO only' },
          };
          return true;
        }
        this.respond(command, pcId, Status.UnrecognizedOperation, 'this receiver serves C-STORE and C-ECHO only');
        return this.afterResponse();
    }
  }

  private onDatasetComplete(): boolean {
    const cur = this.current as Current;
    this.current = undefined;
    if (!cur.sink) {
      const reply = cur.discardReply ?? { status: Status.ProcessingFailure, comment: 'no store' };
      this.respond(cur.command, cur.pcId, reply.status, reply.comment);
      if (cur.command.commandField === CommandField.CStoreRq) this.counts.failed++;
      return this.afterResponse();
    }
    let result: StoreReply | Promise<StoreReply>;
    try {
      result = cur.sink.end();
    } catch (err) {
      result = { status: Status.ProcessingFailure, comment: `store failed: ${String(err)}` };
    }
    if (!(result instanceof Promise)) {
      // Written and placed synchronously: answer now, keep reading.
      this.answerStore(cur, result);
      return this.afterResponse();
    }
    this.hold();
    this.busy = result
      .catch((err: unknown) => ({ status: Status.ProcessingFailure, comment: `store failed: ${String(err)}` }))
      .then((reply) => {
        if (this.state !== 'associated') return; // the peer went away meanwhile
        this.answerStore(cur, reply);
        this.afterResponse();
      })
      .catch((err: unknown) => {
        this.protocolAbort(`after store: ${String(err)}`);
      })
      .finally(() => {
        this.busy = undefined;
        this.release();
      });
    return false;
  }

  private answerStore(cur: Current, reply: StoreReply): void {
    if (reply.status === Status.Success) this.counts.stored++;
    else this.counts.failed++;
    this.respond(cur.command, cur.pcId, reply.status, reply.comment);
  }

  private respond(command: DimseCommand, pcId: number, status: number, comment?: string): void {
    if (this.sock.destroyed) return;
    this.sock.write(encodePDataTf(pcId, encodeResponse(command, status, comment), true));
  }

  /** After a response: a pending shutdown aborts now. Returns true (keep reading) otherwise. */
  private afterResponse(): boolean {
    if (this.closeAfterResponse && this.state === 'associated') {
      this.abortAssociation('shutdown', 'the receiver is shutting down', 0, 0);
      return false;
    }
    return true;
  }

  // --- holds on the reader -------------------------------------------------------------------

  private hold(): void {
    this.holds++;
  }

  private release(): void {
    this.holds = Math.max(0, this.holds - 1);
    if (this.holds === 0 && this.state === 'associated') this.guard(() => this.reader.unblock());
  }

  // --- endings -------------------------------------------------------------------------------

  private abortCurrent(reason: string): void {
    const cur = this.current;
    this.current = undefined;
    if (!cur?.sink) return;
    if (cur.command.commandField === CommandField.CStoreRq) this.counts.failed++;
    const sink = cur.sink;
    const previous = this.pendingAbort ?? Promise.resolve();
    this.pendingAbort = previous.then(() => sink.abort(reason)).catch((err: unknown) => {
      this.opts.hooks.problem?.(this.info, `could not put aside a partial instance: ${String(err)}`);
    });
  }

  private abortAssociation(how: AssociationEnd, detail: string, source: number, reason: number): void {
    if (this.current) this.abortCurrent(`${detail} (${this.current.bytes} data set bytes had arrived)`);
    if (!this.sock.destroyed && this.state !== 'ended') this.sock.write(abortPdu(source, reason));
    this.finish(how, detail);
    this.sock.end();
    // Do not wait for a peer that may never close.
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  private protocolAbort(message: string): false {
    if (this.state === 'ended' && this.endReported) {
      this.sock.destroy();
      return false;
    }
    this.opts.hooks.problem?.(this.info, message);
    this.abortAssociation('protocol-error', message, 2, 0);
    return false;
  }

  private onIdle(): void {
    if (this.reader.isBlocked || this.holds > 0 || this.busy) return; // we are the slow one
    if (this.state === 'ended') {
      this.sock.destroy();
      return;
    }
    const ms = this.state === 'associated' ? this.opts.idleTimeoutMs : ASSOCIATE_TIMEOUT_MS;
    this.abortAssociation('timeout', `nothing received for ${Math.round(ms / 1000)} s`, 2, 0);
  }

  private onClosed(): void {
    if (this.current) this.abortCurrent(`the connection closed before the data set was complete (${this.current.bytes} bytes had arrived)`);
    this.finish('closed', 'the connection closed without A-RELEASE');
  }

  private finish(how: AssociationEnd, detail?: string): void {
    const wasAssociated = this.state === 'associated';
    this.state = 'ended';
    if (this.hasSlot) {
      this.hasSlot = false;
      this.opts.releaseSlot();
    }
    if (this.endReported) return;
    this.endReported = true;
    if (wasAssociated) this.opts.hooks.ended?.(this.info, how, detail, { ...this.counts });
  }

  /** Run a callback; anything it throws ends this association, never the process. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      const message = err instanceof ProtocolError ? err.message : `internal error: ${(err as Error).stack ?? String(err)}`;
      try {
        this.protocolAbort(message);
      } catch {
        this.sock.destroy();
      }
    }
  }
}
