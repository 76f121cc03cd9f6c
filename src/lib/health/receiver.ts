/** Is the receiver there? A C-ECHO with a deadline: a dead one refuses, a hung one is silent. */
import { echo } from '../net/scu/echo.js';
import type { DicomPeer } from '../net/scu/association.js';
import type { CheckResult } from './types.js';

export async function checkReceiver(peer: DicomPeer, timeoutMs: number): Promise<CheckResult> {
  const where = `${peer.calledAet}@${peer.host}:${peer.port}`;
  const r = await echo(peer, { connectMs: timeoutMs, associateMs: timeoutMs, idleMs: timeoutMs });
  if (r.ok) return { name: 'receiver', state: 'ok', message: `receiver ${where} answered C-ECHO in ${r.ms} ms`, data: { ms: r.ms, answered: true } };
  const hung = r.kind === 'timeout';
  return {
    name: 'receiver',
    state: 'critical',
    message: `receiver ${where} ${hung ? 'does not answer (hung?)' : 'is down'}: ${r.reason}`,
    data: { ms: r.ms, answered: false, kind: r.kind },
  };
}
