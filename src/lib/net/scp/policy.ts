/**
 * Association policy: who may send to us and which presentation contexts we take.
 * A pure function of the request, so it is tested without a network.
 */
import {
  VERIFICATION_SOP_CLASS,
  chooseTransferSyntax,
  isStorageSopClass,
} from './sop-classes.js';

export interface ScpPolicy {
  /** Our AE title; the called AE title must equal it or one of alsoCalled. */
  aet: string;
  /**
   * More called AE titles we answer to. FIONA sites give each research project its own
   * called AE title and route by it (fiona-route's incomingAet).
   */
  alsoCalled?: string[];
  /** Calling AE titles allowed to associate; undefined: anyone. */
  allow?: string[];
}

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** PS3.8 Table 9-21: presentation context results. */
export const ContextResult = {
  Acceptance: 0,
  UserRejection: 1,
  NoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

export interface ContextDecision {
  id: number;
  result: number;
  transferSyntax?: string;
}

/** PS3.8 Table 9-21 (A-ASSOCIATE-RJ): result, source, reason. */
export interface Rejection {
  result: 1 | 2;
  source: 1 | 2 | 3;
  reason: number;
  /** In words, for the event. */
  why: string;
}

export const RejectReason = {
  /** source 1 (service user) */
  NoReasonGiven: 1,
  CallingAetNotRecognized: 3,
  CalledAetNotRecognized: 7,
  /** source 3 (service provider, presentation related) */
  TemporaryCongestion: 1,
  LocalLimitExceeded: 2,
} as const;

export type AssociationDecision =
  | { accept: true; contexts: ContextDecision[] }
  | { accept: false; rejection: Rejection };

export interface AssociationRequestView {
  callingAet: string;
  calledAet: string;
  contexts: ProposedContext[];
}

export function decideAssociation(
  rq: AssociationRequestView,
  policy: ScpPolicy,
  load: { slotFree: boolean; draining: boolean },
): AssociationDecision {
  if (rq.calledAet !== policy.aet && !(policy.alsoCalled ?? []).includes(rq.calledAet)) {
    return {
      accept: false,
      rejection: {
        result: 1,
        source: 1,
        reason: RejectReason.CalledAetNotRecognized,
        why: `called AE title ${JSON.stringify(rq.calledAet)} is not ours (${JSON.stringify(policy.aet)})`,
      },
    };
  }
  if (policy.allow && !policy.allow.includes(rq.callingAet)) {
    return {
      accept: false,
      rejection: {
        result: 1,
        source: 1,
        reason: RejectReason.CallingAetNotRecognized,
        why: `calling AE title ${JSON.stringify(rq.callingAet)} is not in the allow list`,
      },
    };
  }
  if (load.draining) {
    return {
      accept: false,
      rejection: { result: 2, source: 3, reason: RejectReason.TemporaryCongestion, why: 'the receiver is shutting down' },
    };
  }
  if (!load.slotFree) {
    return {
      accept: false,
      rejection: { result: 2, source: 3, reason: RejectReason.LocalLimitExceeded, why: 'too many associations at once (--max-associations)' },
    };
  }
  return { accept: true, contexts: rq.contexts.map(decideContext) };
}

export function decideContext(pc: ProposedContext): ContextDecision {
  const known = pc.abstractSyntax === VERIFICATION_SOP_CLASS || isStorageSopClass(pc.abstractSyntax);
  if (!known) return { id: pc.id, result: ContextResult.AbstractSyntaxNotSupported };
  const ts = chooseTransferSyntax(pc.transferSyntaxes);
  if (ts === undefined) return { id: pc.id, result: ContextResult.TransferSyntaxesNotSupported };
  return { id: pc.id, result: ContextResult.Acceptance, transferSyntax: ts };
}
