/**
 * What every DICOM client association shares, whichever engine carries it: the peer, the
 * proposals, timeouts, errors and DIMSE status wording. Kept free of dcmjs-dimse so the send
 * path (src/lib/net/ul-association.ts) loads without it.
 */

/**
 * fiona's Implementation Class UID (PS3.7 D.3.3.2), sent in A-ASSOCIATE-AC/RQ and written
 * into the File Meta (0002,0012) of the files fiona creates. A 2.25 UUID-derived root, fixed.
 */
export const FIONA_IMPLEMENTATION_CLASS_UID = '2.25.65314933880070569962470804345611468111';

/** Where to connect: the peer's address and the two AE titles. */
export interface DicomPeer {
  host: string;
  port: number;
  /** The peer's AE title (called). */
  calledAet: string;
  /** Our AE title (calling). */
  callingAet: string;
}

/** One proposed presentation context: an abstract syntax and the transfer syntaxes we offer for it. */
export interface ContextProposal {
  abstractSyntax: string;
  transferSyntaxes: string[];
  /** SCP/SCU role selection (C-GET: we are SCP for the storage classes). */
  scpRole?: boolean;
}

export interface AssociationTimeouts {
  /** TCP connect (ms). */
  connectMs?: number;
  /** From connect to the A-ASSOCIATE-AC/RJ (ms): a hung peer is caught here. */
  associateMs?: number;
  /** No progress in either direction for this long aborts the association (ms). */
  idleMs?: number;
}

export interface AcceptedContext {
  id: number;
  abstractSyntax: string;
  transferSyntax?: string;
  accepted: boolean;
  /** The peer's reason when not accepted. */
  result: string;
}

/** Why an association did not come up or went away; `transient` says whether a retry may help. */
export class AssociationError extends Error {
  constructor(
    message: string,
    readonly kind: 'refused' | 'unreachable' | 'timeout' | 'rejected' | 'aborted' | 'closed' | 'protocol',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AssociationError';
  }
}

/** A request that ended without a final response (association lost, context missing, peer silent). */
export class NoResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoResponseError';
  }
}

/** A request queued behind another that never went on the wire (the association ended first): send it again. */
export class NotSentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotSentError';
  }
}

/** A-ASSOCIATE-RJ source:reason (PS3.8 9.3.4). */
export const REJECT_REASONS: Record<string, string> = {
  '1:1': 'no reason given',
  '1:2': 'application context name not supported',
  '1:3': 'calling AE title not recognized',
  '1:7': 'called AE title not recognized',
  '2:1': 'no reason given (ACSE)',
  '2:2': 'protocol version not supported',
  '3:1': 'temporary congestion',
  '3:2': 'local limit exceeded',
};

/** Status classes of a DIMSE response (PS3.7 C.4.2.1.4 and Annex C). */
export type StatusClass = 'success' | 'warning' | 'failure' | 'pending' | 'cancel';

export function statusClass(status: number): StatusClass {
  if (status === 0x0000) return 'success';
  if (status === 0xff00 || status === 0xff01) return 'pending';
  if (status === 0xfe00) return 'cancel';
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000) return 'warning';
  return 'failure';
}

/** A readable name for the common statuses. */
export function statusText(status: number): string {
  const known: Record<number, string> = {
    0x0000: 'success',
    0x0001: 'warning: requested optional attributes not supported',
    0x0107: 'warning: attribute list error',
    0x0116: 'warning: attribute value out of range',
    0xb000: 'warning: coercion of data elements',
    0xb006: 'warning: elements discarded',
    0xb007: 'warning: data set does not match SOP class',
    0x0110: 'processing failure',
    0x0111: 'duplicate SOP instance',
    0x0117: 'invalid object instance',
    0x0122: 'SOP class not supported',
    0x0124: 'not authorized',
    0x0210: 'duplicate invocation',
    0x0211: 'unrecognized operation',
    0x0212: 'mistyped argument',
    0x0213: 'resource limitation',
  };
  const hex = `0x${status.toString(16).padStart(4, '0').toUpperCase()}`;
  if (known[status]) return `${known[status]} (${hex})`;
  if ((status & 0xff00) === 0xa700) return `refused: out of resources (${hex})`;
  if ((status & 0xff00) === 0xa900) return `error: data set does not match SOP class (${hex})`;
  if ((status & 0xf000) === 0xc000) return `error: cannot understand (${hex})`;
  return `status ${hex}`;
}
