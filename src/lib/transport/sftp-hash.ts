/**
 * MD5 of the blocks an upload reads, computed in a worker thread on the same memory: the
 * blocks live in one SharedArrayBuffer, the upload reads a block into it, hands the block
 * to ssh2 (which copies it into its packets at once) and to the worker, and the block is
 * free again when the worker has hashed it. The file is read once, and the hashing (about
 * 1.5 s of CPU per GB) runs beside the SSH encryption instead of on the same thread.
 *
 * Where a worker cannot start (or dies), hashing goes on in-process: slower, same result.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface Block {
  index: number;
  buf: Buffer;
}

/** Runs in the worker (eval'd, CommonJS): per stream one Hash, blocks in message order. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const mem = Buffer.from(workerData.sab);
const blockLen = workerData.blockLen;
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.t === 'u') {
    let h = hashes.get(m.id);
    if (!h) { h = createHash('md5'); hashes.set(m.id, h); }
    h.update(mem.subarray(m.b * blockLen, m.b * blockLen + m.n));
    parentPort.postMessage({ t: 'r', b: m.b });
  } else if (m.t === 'd') {
    const h = hashes.get(m.id) ?? createHash('md5');
    hashes.delete(m.id);
    parentPort.postMessage({ t: 'h', id: m.id, md5: h.digest('hex') });
  }
});`;

type Msg = { t: 'r'; b: number } | { t: 'h'; id: number; md5: string };

export class BlockHasher {
  readonly blockLen: number;
  private readonly blocks: Block[];
  private readonly free: number[];
  private readonly waiting: Array<(b: Block) => void> = [];
  private worker?: Worker;
  private nextId = 1;
  /** Blocks the worker holds; the worker keeps the process alive only while it owes something. */
  private readonly atWorker = new Set<number>();
  /** Streams fed to the worker: their state is lost if it dies. */
  private readonly workerIds = new Set<number>();
  private readonly digests = new Map<number, { resolve: (md5: string) => void; reject: (e: Error) => void }>();
  /** In-process hashes (no worker). */
  private readonly local = new Map<number, Hash>();

  constructor(blockLen: number, count: number) {
    this.blockLen = blockLen;
    const sab = new SharedArrayBuffer(blockLen * count);
    this.blocks = Array.from({ length: count }, (_, index) => ({ index, buf: Buffer.from(sab, index * blockLen, blockLen) }));
    this.free = this.blocks.map((b) => b.index);
    try {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sab, blockLen } });
      w.unref();
      w.on('message', (m: Msg) => this.onMessage(m));
      w.on('error', (err) => this.fail(w, err));
      w.on('exit', () => this.fail(w, new Error('the hashing thread ended')));
      this.worker = w;
    } catch {
      this.worker = undefined; // hash in-process
    }
  }

  /** A free block (waits until the worker gives one back). */
  acquire(): Promise<Block> {
    const i = this.free.pop();
    if (i !== undefined) return Promise.resolve(this.blocks[i]!);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A block that was acquired but not handed to update(). */
  release(block: Block): void {
    const next = this.waiting.shift();
    if (next) next(block);
    else this.free.push(block.index);
  }

  /** A new hash; feed it with update() in order, end it with digest(). */
  begin(): number {
    return this.nextId++;
  }

  /** Hash the first `len` bytes of `block` into stream `id`; the block is released after. */
  update(id: number, block: Block, len: number): void {
    if (this.workerIds.has(id) && !this.worker) {
      this.release(block); // its earlier blocks died with the worker: digest() fails
      return;
    }
    if (!this.worker) {
      let h = this.local.get(id);
      if (!h) this.local.set(id, (h = createHash('md5')));
      h.update(block.buf.subarray(0, len));
      this.release(block);
      return;
    }
    this.workerIds.add(id);
    this.atWorker.add(block.index);
    this.owedChanged();
    this.worker.postMessage({ t: 'u', id, b: block.index, n: len });
  }

  digest(id: number): Promise<string> {
    if (!this.workerIds.has(id)) {
      const h = this.local.get(id) ?? createHash('md5');
      this.local.delete(id);
      return Promise.resolve(h.digest('hex'));
    }
    this.workerIds.delete(id);
    if (!this.worker) return Promise.reject(new Error('local md5 failed: the hashing thread ended'));
    const w = this.worker;
    return new Promise((resolve, reject) => {
      this.digests.set(id, { resolve, reject });
      this.owedChanged();
      w.postMessage({ t: 'd', id });
    });
  }

  /** Forget a stream that will not be finished (a failed upload). */
  drop(id: number): void {
    this.local.delete(id);
    if (this.workerIds.has(id)) void this.digest(id).catch(() => undefined);
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate().catch(() => undefined);
  }

  private owedChanged(): void {
    if (this.atWorker.size + this.digests.size > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  private onMessage(m: Msg): void {
    if (m.t === 'r') {
      this.atWorker.delete(m.b);
      this.release(this.blocks[m.b]!);
    } else {
      const d = this.digests.get(m.id);
      this.digests.delete(m.id);
      d?.resolve(m.md5);
    }
    this.owedChanged();
  }

  /**
   * The worker is gone: digests it owed fail (their uploads fail and are retried, hashed
   * in-process then); blocks it held are free again.
   */
  private fail(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    for (const d of this.digests.values()) d.reject(new Error(`local md5 failed: ${err.message}`));
    this.digests.clear();
    const held = [...this.atWorker];
    this.atWorker.clear();
    for (const b of held) this.release(this.blocks[b]!);
  }
}
