/**
 * Checksums (SHA-256, MD5, or both) of the blocks an upload reads, computed in a worker
 * thread on the same memory: the blocks live in one SharedArrayBuffer, the upload reads a
 * block into it, hands the block to ssh2 (which copies it into its packets at once) and to
 * the worker, and the block is free again when the worker has hashed it. The file is read
 * once, and the hashing (SHA-256 ~0.55 s of CPU per GB with SHA instructions, MD5 ~1.4 s)
 * runs beside the SSH encryption instead of on the same thread. A stream that needs no
 * checksum (`--verify size`) gives its blocks back at once.
 *
 * A block may be laid out in slots with room before each piece of data (`head` bytes before
 * every `piece` bytes): the upload writes each SFTP WRITE request's header there and hands
 * the slot to the channel as it is, without ssh2's copy (sftp-write.ts). The hash covers the
 * pieces only, in order. A block is free again when everyone holding it has let go
 * (`retain`/`release`): the hashing thread, and the upload until the server has answered
 * every request of it (the channel may keep a slot queued until its window opens).
 *
 * Where a worker cannot start (or dies), hashing goes on in-process: slower, same result.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { HashAlg } from './checksum.js';

/** The digests of one stream, hex, by algorithm. */
export type Digests = Partial<Record<HashAlg, string>>;

export interface Block {
  index: number;
  /** The block's memory: slots of `head` free bytes followed by `piece` bytes of data. */
  buf: Buffer;
  /** The data areas of the slots, in order (views into buf). */
  pieces: Buffer[];
}

/**
 * Runs in the worker (eval'd, CommonJS): per stream one Hash per algorithm (named by the
 * stream's first message), blocks in message order. A stream's last block comes with `l`:
 * its digests go back with that block's release, one message instead of two round trips.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const mem = Buffer.from(workerData.sab);
const { stride, head, piece } = workerData;
/** Hash the first n data bytes of block b (piece by piece, skipping each slot's head). */
const feed = (hs, b, n) => {
  for (let at = b * stride, left = n; left > 0; at += head + piece, left -= piece) {
    const data = mem.subarray(at + head, at + head + Math.min(piece, left));
    for (const [, h] of hs) h.update(data);
  }
};
const hashes = new Map();
const start = (m) => {
  let s = hashes.get(m.id);
  if (!s) { s = m.a.map((a) => [a, createHash(a)]); hashes.set(m.id, s); }
  return s;
};
const digests = (s) => {
  const d = {};
  for (const [a, h] of s) d[a] = h.digest('hex');
  return d;
};
parentPort.on('message', (m) => {
  if (m.t === 'u') {
    const s = start(m);
    feed(s, m.b, m.n);
    if (!m.l) return parentPort.postMessage({ t: 'r', b: m.b });
    hashes.delete(m.id);
    parentPort.postMessage({ t: 'r', b: m.b, id: m.id, d: digests(s) });
  } else if (m.t === 'd') {
    const s = start(m);
    hashes.delete(m.id);
    parentPort.postMessage({ t: 'h', id: m.id, d: digests(s) });
  }
});`;

type Msg = { t: 'r'; b: number; id?: number; d?: Digests } | { t: 'h'; id: number; d: Digests };

interface Deferred {
  promise: Promise<Digests>;
  resolve: (d: Digests) => void;
  reject: (e: Error) => void;
  /** Answered by the worker (or failed). */
  settled: boolean;
  /** Handed out by digest() (or dropped): the entry goes once it is settled too. */
  claimed: boolean;
}

function deferred(claimed: boolean): Deferred {
  let resolve!: (d: Digests) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<Digests>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a dropped stream's failure is nobody's business
  return { promise, resolve, reject, settled: false, claimed };
}

export class BlockHasher {
  /** Data bytes per block. */
  readonly blockLen: number;
  /** Free bytes before each piece of data. */
  readonly head: number;
  /** Data bytes per slot (blockLen is a multiple of it). */
  readonly piece: number;
  private readonly stride: number;
  private readonly blocks: Block[];
  /** Holders of each block (0: free). */
  private readonly refs: number[];
  private readonly free: number[];
  private readonly waiting: Array<(b: Block) => void> = [];
  private worker?: Worker;
  private nextId = 1;
  /** Blocks the worker holds; the worker keeps the process alive only while it owes something. */
  private readonly atWorker = new Set<number>();
  /** Streams fed to the worker: their state is lost if it dies. */
  private readonly workerIds = new Set<number>();
  /** Digests the worker owes (asked for, or coming with a last block). */
  private readonly digests = new Map<number, Deferred>();
  /** The algorithms of each open stream. */
  private readonly algs = new Map<number, HashAlg[]>();
  /** In-process hashes (no worker). */
  private readonly local = new Map<number, Array<[HashAlg, Hash]>>();

  /**
   * `count` blocks of `blockLen` data bytes, in slots of `head` free bytes and `piece` data
   * bytes (default: one slot, no head: the block is plain data).
   */
  constructor(blockLen: number, count: number, layout: { head: number; piece: number } = { head: 0, piece: blockLen }) {
    const { head, piece } = layout;
    if (piece <= 0 || blockLen % piece !== 0 || head < 0) throw new Error(`block of ${blockLen} bytes is no whole number of ${piece}-byte pieces`);
    this.blockLen = blockLen;
    this.head = head;
    this.piece = piece;
    const slots = blockLen / piece;
    const stride = (this.stride = slots * (head + piece));
    const sab = new SharedArrayBuffer(stride * count);
    this.blocks = Array.from({ length: count }, (_, index) => {
      const buf = Buffer.from(sab, index * stride, stride);
      const pieces = Array.from({ length: slots }, (_, k) => buf.subarray(k * (head + piece) + head, (k + 1) * (head + piece)));
      return { index, buf, pieces };
    });
    this.refs = this.blocks.map(() => 0);
    this.free = this.blocks.map((b) => b.index);
    this.sab = sab;
  }

  private readonly sab: SharedArrayBuffer;
  /** The thread starts with the first block to hash (--verify size needs none: ~30 ms saved); once gone, it stays gone. */
  private started = false;

  private startWorker(): void {
    if (this.started) return;
    this.started = true;
    try {
      // No inherited options: under `node --input-type=module -e` the CommonJS source would
      // be read as a module and the thread would end at once.
      const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { sab: this.sab, stride: this.stride, head: this.head, piece: this.piece } });
      w.unref();
      w.on('message', (m: Msg) => this.onMessage(m));
      w.on('error', (err) => this.fail(w, err));
      w.on('exit', () => this.fail(w, new Error('the hashing thread ended')));
      this.worker = w;
    } catch {
      this.worker = undefined; // hash in-process
    }
  }

  /** A free block, held once by the caller (waits until one is let go). */
  acquire(): Promise<Block> {
    const i = this.free.pop();
    if (i !== undefined) {
      this.refs[i] = 1;
      return Promise.resolve(this.blocks[i]!);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** One more holder of an acquired block (each lets go with release()). */
  retain(block: Block): void {
    if (this.refs[block.index]! <= 0) throw new Error(`block ${block.index} is not held`);
    this.refs[block.index]!++;
  }

  /** Let go of a block (update() lets go of the hold it was given once the block is hashed). */
  release(block: Block): void {
    const i = block.index;
    if (this.refs[i]! <= 0) throw new Error(`block ${i} released more often than held`);
    if (--this.refs[i]! > 0) return;
    const next = this.waiting.shift();
    if (next) {
      this.refs[i] = 1;
      next(block);
    } else this.free.push(i);
  }

  /** Slot `k` of `block`: `head` free bytes, then piece `k`. */
  slotOf(block: Block, k: number): Buffer {
    const n = this.head + this.piece;
    return block.buf.subarray(k * n, (k + 1) * n);
  }

  /** The first `len` data bytes of `block`, piece by piece (views, for a vectored read). */
  dataOf(block: Block, len: number): Buffer[] {
    const out: Buffer[] = [];
    for (let k = 0, left = len; left > 0; k++, left -= this.piece) {
      const p = block.pieces[k]!;
      out.push(left >= this.piece ? p : p.subarray(0, left));
    }
    return out;
  }

  /**
   * A new stream computing `algs` (none: its blocks are only passed through); feed it with
   * update() in order, end it with digest().
   */
  begin(algs: readonly HashAlg[]): number {
    const id = this.nextId++;
    this.algs.set(id, [...new Set(algs)]);
    return id;
  }

  /**
   * Hash the first `len` data bytes of `block` into stream `id`; the caller's hold on the
   * block is let go after.
   * `last`: no more blocks follow (the digests come back with this block).
   */
  update(id: number, block: Block, len: number, last = false): void {
    const algs = this.algs.get(id) ?? [];
    if (algs.length > 0) this.startWorker();
    if (algs.length === 0 || (this.workerIds.has(id) && !this.worker)) {
      this.release(block); // nothing to compute, or its earlier blocks died with the worker: digest() fails
      return;
    }
    if (!this.worker) {
      let hs = this.local.get(id);
      if (!hs) this.local.set(id, (hs = algs.map((a) => [a, createHash(a)])));
      for (const data of this.dataOf(block, len)) for (const [, h] of hs) h.update(data);
      this.release(block);
      return;
    }
    const first = !this.workerIds.has(id);
    this.workerIds.add(id);
    this.atWorker.add(block.index);
    if (last) this.digests.set(id, deferred(false));
    this.owedChanged();
    this.worker.postMessage({ t: 'u', id, ...(first ? { a: algs } : {}), b: block.index, n: len, ...(last ? { l: 1 } : {}) });
  }

  /** The stream's digests (only the algorithms it was begun with). */
  digest(id: number): Promise<Digests> {
    const algs = this.algs.get(id) ?? [];
    this.algs.delete(id);
    if (!this.workerIds.has(id)) {
      const hs = this.local.get(id) ?? algs.map((a): [HashAlg, Hash] => [a, createHash(a)]);
      this.local.delete(id);
      return Promise.resolve(Object.fromEntries(hs.map(([a, h]) => [a, h.digest('hex')])) as Digests);
    }
    this.workerIds.delete(id);
    const owed = this.digests.get(id);
    if (owed) {
      // Asked for with the last block; perhaps answered already.
      owed.claimed = true;
      if (owed.settled) this.digests.delete(id);
      return owed.promise;
    }
    if (!this.worker) return Promise.reject(new Error('local checksum failed: the hashing thread ended'));
    const d = deferred(true);
    this.digests.set(id, d);
    this.owedChanged();
    this.worker.postMessage({ t: 'd', id, a: algs });
    return d.promise;
  }

  /** Forget a stream that will not be finished (a failed upload). */
  drop(id: number): void {
    this.local.delete(id);
    if (this.workerIds.has(id)) void this.digest(id).catch(() => undefined);
    else this.algs.delete(id);
  }

  async close(): Promise<void> {
    this.started = true; // closed: no thread starts any more (hashing goes on in-process)
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate().catch(() => undefined);
  }

  private owedChanged(): void {
    let owed = this.atWorker.size;
    for (const d of this.digests.values()) if (!d.settled) owed++;
    if (owed > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  private onMessage(m: Msg): void {
    if (m.t === 'r') {
      this.atWorker.delete(m.b);
      this.release(this.blocks[m.b]!);
    }
    if (m.id !== undefined && m.d) {
      const d = this.digests.get(m.id);
      if (d) {
        d.settled = true;
        d.resolve(m.d);
        if (d.claimed) this.digests.delete(m.id);
      }
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
    for (const [id, d] of this.digests) {
      if (d.settled) continue;
      d.settled = true;
      d.reject(new Error(`local checksum failed: ${err.message}`));
      if (d.claimed) this.digests.delete(id);
    }
    const held = [...this.atWorker];
    this.atWorker.clear();
    for (const b of held) this.release(this.blocks[b]!);
  }
}
