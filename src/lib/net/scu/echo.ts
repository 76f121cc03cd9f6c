/**
 * C-ECHO (Verification, PS3.4 Annex A): is the peer there and does it speak DICOM?
 */
// Our own Upper Layer association: no dcmjs-dimse / dcmjs to load for an echo.
import { UlAssociation } from '../ul-association.js';
import { AssociationError, statusText, type AssociationTimeouts, type DicomPeer } from '../scu-common.js';

const VERIFICATION = '1.2.840.10008.1.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export interface EchoResult {
  ok: boolean;
  /** Round trip from connect to the C-ECHO response (ms). */
  ms: number;
  status?: number;
  /** Why it failed, when it did. */
  reason?: string;
  /** refused, timeout, rejected, ... (AssociationError kinds) or 'status' for a non-success answer. */
  kind?: string;
}

/** One C-ECHO on a fresh association. Never throws for a peer problem: the result says what happened. */
export async function echo(peer: DicomPeer, timeouts: AssociationTimeouts = {}): Promise<EchoResult> {
  const start = performance.now();
  const elapsed = (): number => Math.round((performance.now() - start) * 10) / 10;
  let assoc: UlAssociation | undefined;
  try {
    assoc = await UlAssociation.open(peer, [{ abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE, EXPLICIT_LE] }], timeouts);
    if (!assoc.acceptedContext(VERIFICATION)) {
      assoc.abort();
      return { ok: false, ms: elapsed(), reason: 'the peer does not accept the Verification SOP class', kind: 'rejected' };
    }
    const status = (await withTimeout(assoc.echo(), timeouts.idleMs ?? 30_000)).status;
    const ms = elapsed();
    await assoc.release(2_000).catch(() => undefined);
    if (status !== 0) return { ok: false, ms, status, reason: `C-ECHO answered ${statusText(status)}`, kind: 'status' };
    return { ok: true, ms, status };
  } catch (err) {
    assoc?.abort();
    const kind = err instanceof AssociationError ? err.kind : 'timeout';
    return { ok: false, ms: elapsed(), reason: (err as Error).message, kind };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no C-ECHO response within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
