import { closeSync, createReadStream, fdatasync, fstatSync, fsyncSync, openSync, readSync, writev, writevSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { crc32, createDeflateRaw, deflateRaw } from 'node:zlib';
import { AesEncryptor, KeySupply, type KeyCache } from './aes.js';
import { BufferPool } from '../../deid/output.js';
import { EntryDigest } from './digest.js';
import { Md5Follower } from './md5.js';
import {
  METHOD_AES,
  METHOD_DEFLATE,
  METHOD_STORE,
  U32_LIMIT,
  centralRecord,
  dosDateTime,
  endRecords,
  localHeader,
  localHeaderLength,
  unsafeEntryName,
  type EntryRecord,
} from './format.js';

const deflateRawAsync = promisify(deflateRaw);

/** A file to put in the archive: from disk (path) or from memory (data). */
export type ZipSource = { name: string; path: string } | { name: string; data: Uint8Array };

export interface ZipOptions {
  /** 0 stores; 1..9 deflate at that zlib level. */
  level: number;
  /** When set, every entry is AES-256 encrypted (WinZip AE-2) with this password. */
  password?: Buffer;
  /** Write ZIP64 structures even when nothing needs them (tests, very large batches). */
  forceZip64?: boolean;
  /** Entries read and compressed ahead of the writer (default 4: uses the libuv pool). */
  concurrency?: number;
  /** Called after each entry is written. */
  onEntry?: (entry: EntryRecord) => void;
  /** The time stamped on entries (default now). */
  time?: Date;
  /** AES: keys derived per entry are kept here for the verifier (see KeyCache). */
  keyCache?: KeyCache;
  /** Return every entry's record in the result (tests, small archives); off: bounded memory. */
  keepEntries?: boolean;
  /**
   * fsync the file before returning (default true). False: return once it is written and
   * flush it to disk in the background, on the descriptor the writer already has (the caller
   * reads the archive back meanwhile and awaits result.synced before publishing it).
   */
  sync?: boolean;
  /**
   * Return as soon as the archive is written, without waiting for its MD5 (result.md5 is then
   * '' and result.md5Pending gives it): the caller reads the archive back while the hash,
   * the slowest single step (MD5 runs at ~400 MB/s on one core), is still being computed.
   */
  deferMd5?: boolean;
}

export interface ZipResult {
  path: string;
  bytes: number;
  /** MD5 of the file as written to disk (read back by a worker thread); '' with deferMd5. */
  md5: string;
  /** The same MD5, as a promise (the only way to get it with deferMd5). */
  md5Pending: Promise<string>;
  /**
   * CRC-32 of each entry's stored bytes as the MD5 thread read them back from the file (one per
   * entry, 0 for compressed or encrypted entries, whose check needs decompression): verifyZip
   * takes them instead of reading stored entries a second time.
   */
  diskCrcs: Promise<Uint32Array>;
  /** Resolves once the file is on disk (at once unless `sync: false`); rejects if the flush failed. */
  synced: Promise<void>;
  count: number;
  /** CRC-32 and size of each entry's source data, for verifyZip's `digest`. */
  digest: EntryDigest;
  /** Only with keepEntries. */
  entries: EntryRecord[];
}

export class ZipWriteError extends Error {
  constructor(message: string, readonly entry?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ZipWriteError';
  }
}

/** Files up to this size are read and compressed whole, several at a time; bigger ones stream. */
const SMALL_LIMIT = 4 * 1024 * 1024;
const STREAM_CHUNK = 1024 * 1024;
/** Entry writes queued on the libuv pool at once (each holds its entry's buffers). */
const MAX_WRITES = 3;
/** Bytes written between background flushes to disk (when the caller syncs at the end). */
const FLUSH_EVERY = 32 * 1024 * 1024;
/** Entries written synchronously between two turns of the event loop. */
const YIELD_EVERY = 64;
/** An entry whose input is this close to 4 GiB gets ZIP64 headers (deflate can grow data slightly). */
const ZIP64_THRESHOLD = U32_LIMIT - 64 * 1024 * 1024;

type Prepared =
  | { kind: 'small'; record: EntryRecord; payload: Buffer[]; release: () => void }
  | { kind: 'large'; name: string; path: string; size: number };

interface Context {
  opts: ZipOptions;
  dos: { dosTime: number; dosDate: number };
  /** 48-bit hashes of the names so far: duplicates are refused without keeping every name. */
  names: Set<number>;
  pool: BufferPool;
  /** AES keys, derived ahead (with a password only). */
  keys?: KeySupply;
}

/**
 * A pooled buffer for file contents or ciphertext (ctx.pool, the de-identifier's BufferPool).
 * Without the pool every entry allocates fresh memory that V8 frees only at its next
 * collection, and the resident size grows with the archive (measured: ~130 MB for a 130 MB
 * study); with it it stays at a few buffers whatever the archive's size. Sizes are rounded
 * up to a few classes (256 KiB, 1 MiB, 4 MiB + 1: typical instances never take 4 MiB), so
 * that a freed buffer fits the next file.
 */
function acquire(pool: BufferPool, size: number): Buffer {
  for (const c of [256 * 1024, 1024 * 1024]) if (size <= c) return pool.acquire(c);
  if (size > SMALL_LIMIT + 1) throw new Error(`BufferPool: ${size} bytes asked, at most ${SMALL_LIMIT + 1}`);
  return pool.acquire(SMALL_LIMIT + 1);
}

function baseRecord(ctx: Context, name: string, size: number, zip64: boolean): EntryRecord {
  return {
    name,
    nameBytes: Buffer.from(name, 'utf8'),
    method: METHOD_STORE,
    innerMethod: METHOD_STORE,
    encrypted: ctx.opts.password !== undefined,
    crc: 0,
    compressedSize: 0,
    uncompressedSize: size,
    offset: 0,
    zip64,
    ...ctx.dos,
  };
}

function checkName(ctx: Context, name: string): void {
  const why = unsafeEntryName(name);
  if (why) throw new ZipWriteError(`unsafe entry name ${JSON.stringify(name)}: ${why}`, name);
  // A hash collision (about 1 in 10^4 for a million names) only refuses a good archive.
  const key = nameKey(name);
  if (ctx.names.has(key)) throw new ZipWriteError(`duplicate entry name ${JSON.stringify(name)}`, name);
  ctx.names.add(key);
}

/**
 * A 48-bit key of a name (two 32-bit FNV-1a variants over its UTF-16 code units), to refuse
 * duplicates without keeping every name. Computed in JS: a crypto hash object per name
 * (the former SHA-1) costs an OpenSSL context for a few dozen bytes.
 */
function nameKey(name: string): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ name.length;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 0x10000 + ((b >>> 16) & 0xffff);
}

/** The central directory, kept as the bytes it will be (about 100 per entry), in 1 MiB blocks. */
class CentralDirectory {
  private readonly blocks: Buffer[] = [];
  private cur = Buffer.allocUnsafe(1024 * 1024);
  private used = 0;
  size = 0;

  add(record: Buffer): void {
    if (this.used + record.length > this.cur.length) {
      this.blocks.push(this.cur.subarray(0, this.used));
      this.cur = Buffer.allocUnsafe(Math.max(1024 * 1024, record.length));
      this.used = 0;
    }
    record.copy(this.cur, this.used);
    this.used += record.length;
    this.size += record.length;
  }

  buffers(): Buffer[] {
    return [...this.blocks, this.cur.subarray(0, this.used)];
  }
}

/**
 * Read a whole small file, or return its size when it is too big to hold. Synchronous on
 * purpose: for many small files in the page cache, a blocking read costs a fraction of a
 * round trip through the libuv pool (measured: 230 ms against 400 ms for 1,000 x 130 KB).
 * One read asks for a byte more than fstat said: getting it means the file grew, getting
 * less means it shrank (one syscall per file instead of a second read at the end).
 */
function readSmallFile(name: string, path: string, pool: BufferPool): { buf: Buffer; data: Buffer } | number {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ZipWriteError(`${path} is not a regular file`, name);
    if (st.size > SMALL_LIMIT) return st.size;
    const buf = acquire(pool, st.size + 1);
    try {
      let got = 0;
      for (;;) {
        const n = readSync(fd, buf, got, st.size + 1 - got, got);
        if (n === 0) break;
        got += n;
        if (got > st.size) throw new ZipWriteError(`${path} grew while it was read`, name);
      }
      if (got < st.size) throw new ZipWriteError(`${path} shrank while it was read`, name);
    } catch (err) {
      pool.release(buf);
      throw err;
    }
    return { buf, data: buf.subarray(0, st.size) };
  } finally {
    closeSync(fd);
  }
}

type Large = Extract<Prepared, { kind: 'large' }>;
/** An entry's bytes in memory, with the pooled buffers that hold them. */
interface Loaded {
  data: Uint8Array;
  held: Buffer[];
}

/** Check the name and read the entry (if on disk): its bytes, or what is needed to stream it. */
function load(ctx: Context, src: ZipSource): Loaded | Large {
  checkName(ctx, src.name);
  if (!('path' in src)) return { data: src.data, held: [] };
  const small = readSmallFile(src.name, src.path, ctx.pool);
  if (typeof small === 'number') return { kind: 'large', name: src.name, path: src.path, size: small };
  return { data: small.data, held: [small.buf] };
}

/** Read (if on disk), checksum, compress and encrypt one small entry in memory. */
async function prepare(ctx: Context, src: ZipSource): Promise<Prepared> {
  const loaded = load(ctx, src);
  if ('kind' in loaded) return loaded;
  const held = loaded.held;
  const release = (): void => {
    for (const b of held.splice(0)) ctx.pool.release(b);
  };
  try {
    const { record, payload } = await encodeSmall(ctx, src.name, loaded.data, held);
    return { kind: 'small', record, payload, release };
  } catch (err) {
    release();
    throw err;
  }
}

/** The record of an entry stored as it is (CRC-32 and sizes of `data`). */
function storedRecord(ctx: Context, name: string, data: Uint8Array): EntryRecord {
  const record = baseRecord(ctx, name, data.length, ctx.opts.forceZip64 === true);
  record.crc = crc32(data);
  record.compressedSize = data.length;
  return record;
}

/** Checksum, compress and encrypt an entry held in memory; pooled buffers it takes go to `held`. */
async function encodeSmall(ctx: Context, name: string, data: Uint8Array, held: Buffer[]): Promise<{ record: EntryRecord; payload: Buffer[] }> {
  const record = storedRecord(ctx, name, data);
  let body: Uint8Array = data;
  if (ctx.opts.level > 0 && data.length > 0) {
    // One output chunk for the whole entry: with zlib's default 16 KiB chunks, every chunk is
    // a round trip between the pool thread and the main thread (measured: a third of the CPU).
    const packed = await deflateRawAsync(data, { level: ctx.opts.level, chunkSize: outputChunk(data.length) });
    // Like Info-ZIP: data that deflate cannot shrink (JPEG pixel data, say) is stored.
    if (packed.length < data.length) {
      body = packed;
      record.innerMethod = METHOD_DEFLATE;
    }
  }
  record.method = record.innerMethod;
  let payload: Buffer[] = [Buffer.from(body.buffer, body.byteOffset, body.length)];
  if (ctx.opts.password) {
    const enc = new AesEncryptor(await ctx.keys!.next());
    const out = acquire(ctx.pool, body.length);
    held.push(out);
    payload = [enc.header(), enc.update(body, out.subarray(0, body.length)), enc.final()];
    record.method = METHOD_AES;
  }
  record.compressedSize = payload.reduce((n, b) => n + b.length, 0);
  return { record, payload };
}

/** zlib output chunk size for data of n bytes: room for all of it (deflate may grow data slightly). */
function outputChunk(n: number): number {
  return Math.min(SMALL_LIMIT + 64 * 1024, Math.max(64 * 1024, n + (n >>> 8) + 1024));
}

/** What is left of `buffers` once `written` bytes of them are on disk. */
function unwritten(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  const next: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
    } else {
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return next;
}

/** Write buffers at a position, all of them (writev may write less than asked). */
function writeAll(fd: number, buffers: Buffer[], position: number): number {
  let pos = position;
  let rest = buffers.filter((b) => b.length > 0);
  while (rest.length > 0) {
    const bytesWritten = writevSync(fd, rest.slice(0, 1024), pos);
    pos += bytesWritten;
    rest = unwritten(rest, bytesWritten);
  }
  return pos - position;
}

function writevAt(fd: number, buffers: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => writev(fd, buffers, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** writeAll on a libuv pool thread: the main thread reads and checksums the next entries meanwhile. */
async function writeAllAsync(fd: number, buffers: Buffer[], position: number): Promise<void> {
  let pos = position;
  let rest = buffers.filter((b) => b.length > 0);
  while (rest.length > 0) {
    const bytesWritten = await writevAt(fd, rest.slice(0, 1024), pos);
    pos += bytesWritten;
    rest = unwritten(rest, bytesWritten);
  }
}

/**
 * Entry writes in flight, finished in order: an entry counts as written (MD5 may read it,
 * onEntry hears of it, its buffers go back to the pool) only when it and all before it are
 * on the page cache. While they run, the writer starts the disk flush in the background every
 * FLUSH_EVERY bytes, so that the caller's final fsync finds little left to do.
 */
class WriteQueue {
  private readonly inFlight: Array<{ done: Promise<void>; end: number; then: (ok: boolean) => void }> = [];
  private flushing?: Promise<void>;
  private flushedTo = 0;

  constructor(
    private readonly fd: number,
    private readonly md5: Md5Follower,
    private readonly flushEvery: number,
  ) {}

  /** Start writing `buffers` at `position`; `then` runs once they (and all earlier) are written or failed. */
  async push(buffers: Buffer[], position: number, end: number, then: (ok: boolean) => void): Promise<void> {
    const done = writeAllAsync(this.fd, buffers, position);
    done.catch(() => undefined); // awaited in order by settle()
    this.inFlight.push({ done, end, then });
    while (this.inFlight.length > MAX_WRITES) await this.settle();
  }

  private async settle(): Promise<void> {
    const w = this.inFlight[0]!;
    let ok = false;
    try {
      await w.done;
      ok = true;
    } finally {
      this.inFlight.shift();
      w.then(ok);
    }
    this.wrote(w.end);
  }

  /** Bytes up to `end` are written (by the queue or directly): the MD5 may read them, the flush may start. */
  wrote(end: number): void {
    this.md5.advance(end);
    if (this.flushEvery > 0 && !this.flushing && end - this.flushedTo >= this.flushEvery) {
      this.flushedTo = end;
      const f = new Promise<void>((resolve) => fdatasync(this.fd, () => resolve())); // errors: the final fsync reports them
      this.flushing = f.then(() => {
        this.flushing = undefined;
      });
    }
  }

  /** Every write finished (throws the first failure). */
  async drain(): Promise<void> {
    while (this.inFlight.length > 0) await this.settle();
  }

  /** Wait for everything in flight, failures ignored (before the file is closed on an error). */
  async quiesce(): Promise<void> {
    while (this.inFlight.length > 0) await this.settle().catch(() => undefined);
    await this.flushing;
  }

  /** Wait for the background flush (before the file is closed). */
  async idle(): Promise<void> {
    await this.flushing;
  }
}

/**
 * Stream one large entry: a placeholder header, the data as it is read, compressed and
 * encrypted, then the header again with the real CRC and sizes (the output is a file,
 * so we seek back, as Info-ZIP does, rather than write a data descriptor).
 */
async function writeLarge(ctx: Context, fd: number, p: Extract<Prepared, { kind: 'large' }>, offset: number): Promise<EntryRecord> {
  const record = baseRecord(ctx, p.name, p.size, ctx.opts.forceZip64 === true || p.size >= ZIP64_THRESHOLD);
  record.offset = offset;
  record.innerMethod = ctx.opts.level > 0 ? METHOD_DEFLATE : METHOD_STORE;
  record.method = ctx.opts.password ? METHOD_AES : record.innerMethod;
  const headerLength = localHeaderLength(record);
  let pos = offset + headerLength;
  const enc = ctx.keys ? new AesEncryptor(await ctx.keys.next()) : undefined;
  if (enc) pos += writeAll(fd, [enc.header()], pos);

  let crc = 0;
  let read = 0;
  const input = createReadStream(p.path, { highWaterMark: STREAM_CHUNK });
  const tapped = (async function* () {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      crc = crc32(chunk, crc);
      read += chunk.length;
      yield chunk;
    }
  })();
  let output: AsyncIterable<Buffer> = tapped;
  if (record.innerMethod === METHOD_DEFLATE) {
    const deflater = createDeflateRaw({ level: ctx.opts.level, chunkSize: STREAM_CHUNK });
    const feed = (async () => {
      try {
        for await (const chunk of tapped) {
          if (!deflater.write(chunk)) await new Promise((r) => deflater.once('drain', r));
        }
        deflater.end();
      } catch (err) {
        deflater.destroy(err as Error);
      }
    })();
    output = (async function* () {
      for await (const chunk of deflater as AsyncIterable<Buffer>) yield chunk;
      await feed;
    })();
  }
  for await (const chunk of output) {
    pos += writeAll(fd, [enc ? enc.update(chunk) : chunk], pos);
  }
  if (enc) pos += writeAll(fd, [enc.final()], pos);
  if (read !== p.size) {
    throw new ZipWriteError(`${p.path} changed while it was archived (${p.size} bytes before, ${read} read)`, p.name);
  }
  record.crc = crc;
  record.compressedSize = pos - offset - headerLength;
  if (!record.zip64 && record.compressedSize >= U32_LIMIT) {
    throw new ZipWriteError(`${p.name}: compressed data exceed 4 GiB without ZIP64 headers`, p.name);
  }
  writeAll(fd, [localHeader(record)], offset);
  return record;
}

/** fdatasync on a libuv pool thread, then close the descriptor (also when the sync fails). */
function syncAndClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) =>
    fdatasync(fd, (err) => {
      try {
        closeSync(fd);
      } catch (closeErr) {
        return reject(err ?? closeErr);
      }
      return err ? reject(err) : resolve();
    }),
  );
}

/**
 * Write a ZIP archive to `target` (the caller's temp name), streaming: memory stays bounded
 * by `concurrency` small entries whatever the total size. On failure the partial file is
 * removed and the error names the entry.
 */
export async function writeZip(
  target: string,
  sources: Iterable<ZipSource> | AsyncIterable<ZipSource>,
  opts: ZipOptions,
): Promise<ZipResult> {
  if (!Number.isInteger(opts.level) || opts.level < 0 || opts.level > 9) {
    throw new ZipWriteError(`compression level must be 0..9, got ${opts.level}`);
  }
  if (opts.password !== undefined && opts.password.length === 0) throw new ZipWriteError('empty password');
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const ctx: Context = { opts, dos: dosDateTime(opts.time ?? new Date()), names: new Set<number>(), pool: new BufferPool(256 * 1024, 2 * concurrency + 2) };
  if (opts.password) ctx.keys = new KeySupply(opts.password, opts.keyCache);
  const entries: EntryRecord[] = [];
  const central = new CentralDirectory();
  const digest = new EntryDigest();
  let count = 0;
  const fd = openSync(target, 'w', 0o600);
  const md5 = new Md5Follower(target);
  let pos = 0;
  const window: Array<Promise<Prepared>> = [];

  const writes = new WriteQueue(fd, md5, opts.sync === false ? FLUSH_EVERY : 0);
  let synced: Promise<void> = Promise.resolve();

  const written = (record: EntryRecord): void => {
    if (opts.keepEntries) entries.push(record);
    opts.onEntry?.(record);
  };

  /** Bookkeeping once an entry's place in the file is fixed (before writes.wrote() passes its end: the MD5 thread's range). */
  const placed = (record: EntryRecord, dataStart: number): void => {
    central.add(centralRecord(record));
    // A stored entry's bytes are CRC'd again as the MD5 thread reads them back (diskCrcs).
    const checked = record.method === METHOD_STORE ? record.compressedSize : 0;
    md5.range(dataStart, checked);
    digest.add(record.name, record.crc, record.uncompressedSize, dataStart, checked);
    count++;
  };

  /** A streamed entry patches its header after its data: everything before it is written first. */
  const writeLargeEntry = async (prepared: Large): Promise<void> => {
    await writes.drain();
    const record = await writeLarge(ctx, fd, prepared, pos);
    const dataStart = record.offset + localHeaderLength(record);
    pos = dataStart + record.compressedSize;
    placed(record, dataStart);
    writes.wrote(pos);
    written(record);
  };

  /** A small entry goes at the end of the file: its header and payload, to write at `start`. */
  const placeSmall = (record: EntryRecord, payload: Buffer[]): { buffers: Buffer[]; start: number } => {
    record.offset = pos;
    const buffers = [localHeader(record), ...payload];
    const start = pos;
    pos += buffers.reduce((n, b) => n + b.length, 0);
    placed(record, start + buffers[0]!.length);
    return { buffers, start };
  };

  const flushOne = async (): Promise<void> => {
    const prepared = await window.shift()!;
    if (prepared.kind === 'large') return writeLargeEntry(prepared);
    const record = prepared.record;
    const { buffers, start } = placeSmall(record, prepared.payload);
    await writes.push(buffers, start, pos, (ok) => {
      prepared.release();
      if (ok) written(record);
    });
  };

  /** Entries written by writeDirect since it last gave the event loop a turn. */
  let sinceYield = 0;
  /**
   * Stored and not encrypted, an entry needs no work off the main thread: it is read,
   * checksummed and written in one synchronous step, with no promise, no pool round trip and
   * no read-ahead window. Measured with the synchronous stage listing and the batched MD5
   * messages (1,000 x 134 KB): process CPU 0.65 -> 0.55 s, wall 0.46 -> 0.42 s (medians of 7).
   */
  const writeDirect = (src: ZipSource): Promise<void> | undefined => {
    const loaded = load(ctx, src);
    if ('kind' in loaded) return writeLargeEntry(loaded);
    try {
      const record = storedRecord(ctx, src.name, loaded.data);
      const data = loaded.data;
      const { buffers, start } = placeSmall(record, [Buffer.from(data.buffer, data.byteOffset, data.length)]);
      writeAll(fd, buffers, start);
      writes.wrote(pos);
      written(record);
    } finally {
      for (const b of loaded.held) ctx.pool.release(b);
    }
    // Back to the event loop now and then, so that a long synchronous run does not hold up
    // what else the process does meanwhile (events queued on a pipe, the MD5 thread's messages).
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      return new Promise<void>((resolve) => setImmediate(resolve));
    }
    return undefined;
  };

  const direct = opts.level === 0 && opts.password === undefined;
  const add = (src: ZipSource): Promise<void> | undefined => {
    if (direct) return writeDirect(src);
    const p = prepare(ctx, src);
    p.catch(() => undefined); // awaited in order by flushOne; keep Node from calling it unhandled
    window.push(p);
    return window.length >= concurrency ? flushOne() : undefined;
  };

  try {
    // A plain iterable (the stage listing) is walked without a promise per entry.
    if (Symbol.iterator in sources) {
      for (const src of sources) {
        const p = add(src);
        if (p) await p;
      }
    } else {
      for await (const src of sources) {
        const p = add(src);
        if (p) await p;
      }
    }
    while (window.length > 0) await flushOne();
    await writes.drain();
    const cdOffset = pos;
    pos += writeAll(fd, central.buffers(), pos);
    pos += writeAll(fd, [endRecords(count, cdOffset, central.size, opts.forceZip64)], pos);
    if (opts.sync !== false) {
      fsyncSync(fd);
      await writes.idle();
      closeSync(fd);
    } else {
      await writes.idle();
      synced = syncAndClose(fd); // the last step: nothing after it may close fd in the catch below
    }
  } catch (err) {
    // No write may still run on the descriptor when it is closed (it could be reused).
    await writes.quiesce();
    for (const r of await Promise.allSettled(window)) if (r.status === 'fulfilled' && r.value.kind === 'small') r.value.release();
    await md5.abort();
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    await rm(target, { force: true });
    if (err instanceof ZipWriteError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new ZipWriteError(`cannot write ${target}: ${e.message}`, undefined, { cause: err });
  }
  const followed = md5.finish(pos);
  const md5Pending = followed.then((r) => r.md5);
  const diskCrcs = followed.then((r) => r.crcs);
  // A caller that defers the hash may fail before it asks for it: no unhandled rejection then.
  md5Pending.catch(() => undefined);
  diskCrcs.catch(() => undefined);
  synced.catch(() => undefined);
  return { path: target, bytes: pos, md5: opts.deferMd5 ? '' : await md5Pending, md5Pending, diskCrcs, synced, count, digest, entries };
}

