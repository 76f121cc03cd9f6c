/**
 * fiona-receive as a library: a storage SCP whose instances land in a site. Reports every
 * happening as an event through `onEvent` (the command writes them to stdout and the FIFO).
 */
import { makeEvent, type BaseEvent } from '../events/index.js';
import { ensureSite, type SiteLayout } from '../site/index.js';
import { FIONA_IMPLEMENTATION_CLASS_UID, fionaImplementationVersion } from '../net/dcmjs-dimse.js';
import { StoreScpServer } from '../net/scp/server.js';
import type { AssociationInfo, ScpHooks } from '../net/scp/types.js';
import { createSiteStore, sweepArrived } from './site-store.js';

export interface ReceiverOptions {
  site: string;
  port: number;
  /** Address to bind; undefined: all interfaces. */
  host?: string;
  aet: string;
  allow?: string[];
  /** More called AE titles accepted besides aet. */
  alsoCalled?: string[];
  maxAssociations: number;
  fsync: boolean;
  /** Abort associations silent this long (ms); 0: never. */
  idleTimeoutMs: number;
  maxPduLength?: number;
  spillBytes?: number;
  highWaterBytes?: number;
  onEvent(event: BaseEvent): void;
}

export interface Receiver {
  port: number;
  layout: SiteLayout;
  /** Stop listening, let instances in flight finish (up to graceMs), then close everything. */
  stop(graceMs?: number): Promise<void>;
  /** Abort everything now; partial instances are still put aside. */
  forceStop(): void;
}

function who(a: AssociationInfo): Record<string, string> {
  return { association: a.id, calling: a.callingAet, called: a.calledAet, peer: a.peer };
}

function hooksFor(onEvent: (e: BaseEvent) => void): ScpHooks {
  return {
    accepted: (a, c) => onEvent(makeEvent('association', { state: 'accepted', ...who(a), contexts: c.accepted, rejectedContexts: c.rejected })),
    rejected: (a, reason) => onEvent(makeEvent('association', { state: 'rejected', reason, ...who(a) })),
    ended: (a, how, detail, counts) =>
      onEvent(makeEvent('association', { state: how, ...(detail ? { reason: detail } : {}), ...who(a), stored: counts.stored, failed: counts.failed })),
    echo: (a) => onEvent(makeEvent('echo', who(a))),
    problem: (a, message) => onEvent(makeEvent('error', { message, ...(a ? who(a) : {}) })),
  };
}

export async function startReceiver(opts: ReceiverOptions): Promise<Receiver> {
  const layout = await ensureSite(opts.site);
  for (const e of await sweepArrived(layout)) opts.onEvent(e);
  const store = createSiteStore({
    layout,
    fsync: opts.fsync,
    onEvent: opts.onEvent,
    spillBytes: opts.spillBytes,
    highWaterBytes: opts.highWaterBytes,
  });
  const server = new StoreScpServer({
    policy: { aet: opts.aet, allow: opts.allow, alsoCalled: opts.alsoCalled },
    handler: store,
    hooks: hooksFor(opts.onEvent),
    maxAssociations: opts.maxAssociations,
    maxPduLength: opts.maxPduLength,
    idleTimeoutMs: opts.idleTimeoutMs,
    implementationClassUid: FIONA_IMPLEMENTATION_CLASS_UID,
    implementationVersionName: fionaImplementationVersion(),
  });
  const port = await server.listen(opts.port, opts.host);
  opts.onEvent(makeEvent('listening', { port, aet: opts.aet, site: layout.root, ...(opts.host ? { host: opts.host } : {}) }));
  return {
    port,
    layout,
    stop: async (graceMs) => {
      await server.close(graceMs);
      store.close();
    },
    forceStop: () => server.forceClose(),
  };
}
