/**
 * The listening side: a TCP server whose connections are StoreScpConnections, a limit on
 * associations at once, and a shutdown that lets instances in flight finish.
 *
 * dcmjs-dimse's Server is not used: it cannot report the port it got for port 0, cannot bind
 * an address, and its close() destroys sockets mid-instance.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { UnavailableError } from '../../errors.js';
import { Implementation } from '../dcmjs-dimse.js';
import { StoreScpConnection } from './connection.js';
import type { ScpPolicy } from './policy.js';
import type { ScpHooks, StoreHandler } from './types.js';

export interface StoreScpOptions {
  policy: ScpPolicy;
  handler: StoreHandler;
  hooks?: ScpHooks;
  /** Associations served at once; more are rejected (transient, local limit exceeded). */
  maxAssociations: number;
  /** Largest PDU we announce (bytes). */
  maxPduLength?: number;
  /** Abort an association idle this long (ms); 0: never. */
  idleTimeoutMs?: number;
  implementationClassUid: string;
  implementationVersionName: string;
}

export const DEFAULT_MAX_PDU = 256 * 1024;

export class StoreScpServer {
  private server?: NetServer;
  private readonly connections = new Set<StoreScpConnection>();
  private active = 0;
  private draining = false;
  private seq = 0;
  private readonly hooks: ScpHooks;

  constructor(private readonly opts: StoreScpOptions) {
    this.hooks = opts.hooks ?? {};
    // dcmjs-dimse writes these statics into every A-ASSOCIATE-AC.
    Implementation.setImplementationClassUid(opts.implementationClassUid);
    Implementation.setImplementationVersion(opts.implementationVersionName.slice(0, 16));
    Implementation.setMaxPduLength(Math.max(opts.maxPduLength ?? DEFAULT_MAX_PDU, Implementation.getMaxPduLength()));
  }

  /** Start listening; resolves with the port (useful with port 0). */
  listen(port: number, host?: string): Promise<number> {
    const server = createServer((socket) => this.onConnection(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const why = err.code === 'EADDRINUSE' ? 'is already in use' : err.code === 'EACCES' ? 'needs privileges (ports below 1024)' : `cannot be opened: ${err.message}`;
        reject(new UnavailableError(`port ${port}${host ? ` on ${host}` : ''} ${why}`, { cause: err }));
      };
      server.once('error', onError);
      server.listen({ port, host }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.hooks.problem?.(undefined, `server error: ${err.message}`));
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  get activeAssociations(): number {
    return this.active;
  }

  /**
   * Stop: no new connections; associations finish the instance in flight, are answered, then
   * aborted. After graceMs, whatever is left is aborted and its partial instance put aside.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    for (const c of this.connections) c.shutdown();
    const all = Promise.all([...this.connections].map((c) => c.settled()));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const c of this.connections) c.forceClose();
        resolve();
      }, graceMs);
    });
    await Promise.race([all, grace]);
    clearTimeout(timer);
    // After forceClose, wait for partial instances to be put aside.
    await Promise.all([...this.connections].map((c) => c.settled()));
    await closed;
  }

  /** Abort everything now (a second signal). */
  forceClose(): void {
    this.draining = true;
    this.server?.close();
    for (const c of this.connections) c.forceClose();
  }

  private onConnection(socket: Socket): void {
    try {
      const id = `${process.pid.toString(36)}-${(++this.seq).toString(36)}`;
      const conn = new StoreScpConnection(socket, {
        id,
        policy: this.opts.policy,
        handler: this.opts.handler,
        hooks: this.hooks,
        maxPduLength: this.opts.maxPduLength ?? DEFAULT_MAX_PDU,
        idleTimeoutMs: this.opts.idleTimeoutMs ?? 0,
        acquireSlot: () => {
          if (this.active >= this.opts.maxAssociations) return false;
          this.active++;
          return true;
        },
        releaseSlot: () => {
          this.active = Math.max(0, this.active - 1);
        },
        isDraining: () => this.draining,
      });
      this.connections.add(conn);
      socket.on('close', () => {
        void conn.settled().then(() => this.connections.delete(conn));
      });
      if (this.draining) conn.shutdown();
    } catch (err) {
      this.hooks.problem?.(undefined, `cannot serve a connection: ${(err as Error).message}`);
      socket.destroy();
    }
  }
}
