/**
 * The contract between the network side (this folder: associations, DIMSE, back-pressure) and
 * whatever keeps the instances (src/lib/receive: the site). The SCP knows nothing of files;
 * the store handler knows nothing of PDUs.
 */
import type { DimseCommand } from './command.js';

export interface AssociationInfo {
  /** Short id for logs and events, unique within this process. */
  id: string;
  callingAet: string;
  calledAet: string;
  /** Peer IP address (IPv4-mapped IPv6 shown as plain IPv4). */
  peer: string;
  peerPort: number;
}

export interface StoreRequest {
  association: AssociationInfo;
  pcId: number;
  /** The presentation context's abstract syntax (what was negotiated). */
  abstractSyntax: string;
  /** The accepted transfer syntax: the data set bytes are in it. */
  transferSyntax: string;
  command: DimseCommand;
}

export interface StoreReply {
  status: number;
  /** Error Comment (0000,0902) for a failure. */
  comment?: string;
}

/** Receives the data set of one C-STORE. */
export interface StoreSink {
  /** Data set bytes (slices of socket chunks, valid until written). False: wait for drained(). */
  write(chunk: Buffer): boolean;
  /** Resolves when the sink can take bytes again. */
  drained(): Promise<void>;
  /**
   * The last fragment arrived: finish and say what to answer. A reply returned directly (not
   * a promise) is sent at once, without holding the socket: the fast path for instances that
   * were written synchronously. Must not throw or reject.
   */
  end(): StoreReply | Promise<StoreReply>;
  /** The association ended before the last fragment. Must not reject. */
  abort(reason: string): Promise<void>;
}

export interface StoreHandler {
  /** A C-STORE request arrived; its data set follows. Must not throw. */
  begin(request: StoreRequest): StoreSink;
}

export type AssociationEnd = 'released' | 'aborted' | 'closed' | 'timeout' | 'protocol-error' | 'shutdown';

/** What the SCP tells its owner (the command turns these into events). */
export interface ScpHooks {
  accepted?(info: AssociationInfo, contexts: { accepted: number; rejected: number }): void;
  rejected?(info: AssociationInfo, reason: string): void;
  ended?(info: AssociationInfo, how: AssociationEnd, detail: string | undefined, counts: { stored: number; failed: number }): void;
  echo?(info: AssociationInfo): void;
  /** Something went wrong that is not one instance's fault (bad PDU, socket error). */
  problem?(info: AssociationInfo | undefined, message: string): void;
}
