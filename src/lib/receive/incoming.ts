/**
 * One instance on its way in: the data set bytes of a C-STORE go to a temp file in
 * `<site>/.arrived/`, behind a File Meta group built from the request, while DatasetWalker
 * checks their structure. When the last fragment is in, the file is closed and either moved
 * into `archive/<Study>/<Series>/<SOP>.dcm` or put in quarantine with a reason; only then is
 * the sender answered.
 *
 * Writing: a data set up to `spillBytes` is kept in memory (as the socket's own chunks, no
 * copy) and, once complete, written with writev + close + rename called synchronously, into a
 * temp file usually created ahead (temp-files.ts):
 * profiling showed the per-instance cost of a receiver dominated by the round trips through
 * libuv's thread pool (four per instance, each a thread wake-up and an event-loop wake-up),
 * not by the syscalls themselves (tens of microseconds on a local disk). That is what DCMTK's
 * storescp does too. A larger data set is written as it comes through the thread pool, and
 * the socket is held while more than `highWaterBytes` wait for the disk, so memory stays
 * bounded for a 2 GB instance and a slow disk slows the sender rather than filling memory.
 */
import { constants as zc, createInflateRaw, type InflateRaw } from 'node:zlib';
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, writevSync } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { datasetEncoding } from '../net/scp/sop-classes.js';
import type { StoreReply, StoreRequest, StoreSink } from '../net/scp/types.js';
import { DatasetWalker, type WalkResult } from './dataset-walker.js';
import { buildFileHead } from '../dicom/file-meta.js';
import type { InstancePlacement } from './placement.js';
import type { TempFile } from './temp-files.js';

export const TAG = {
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
} as const;

export interface IncomingOptions {
  /** The temp file (in .arrived/), maybe already created and open (see temp-files.ts). */
  temp: TempFile;
  fsync: boolean;
  spillBytes: number;
  highWaterBytes: number;
  implementationClassUid: string;
  implementationVersionName: string;
}

/** The facts placement needs once the bytes are on disk. */
export interface ReceivedInstance {
  request: StoreRequest;
  tempPath: string;
  /** File size: File Meta + data set. */
  fileBytes: number;
  datasetBytes: number;
  walk: WalkResult;
}

/** Errors the disk gives that mean "no room": the sender is told Out of Resources. */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}

export class IncomingInstance implements StoreSink {
  /** Set once the data set outgrew spillBytes and is being written as it comes. */
  private opening?: Promise<FileHandle>;
  private fh?: FileHandle;
  private pending: Buffer[];
  /** Bytes handed to write() and not yet on disk. */
  private queued: number;
  private fileBytes = 0;
  private datasetBytes = 0;
  private writing?: Promise<void>;
  private ioError?: unknown;
  private drainWaiters: Array<() => void> = [];
  private readonly walker: DatasetWalker;
  private inflater?: InflateRaw;
  private inflateDone?: Promise<void>;
  private inflateError?: string;
  private settled = false;

  constructor(
    private readonly request: StoreRequest,
    private readonly opts: IncomingOptions,
    private readonly placement: InstancePlacement,
  ) {
    const head = buildFileHead({
      sopClassUid: request.command.affectedSopClassUid ?? request.abstractSyntax,
      sopInstanceUid: request.command.affectedSopInstanceUid ?? '',
      transferSyntaxUid: request.transferSyntax,
      implementationClassUid: opts.implementationClassUid,
      implementationVersionName: opts.implementationVersionName,
      sourceAet: request.association.callingAet,
    });
    this.pending = [head];
    this.queued = head.length;
    const enc = datasetEncoding(request.transferSyntax);
    this.walker = new DatasetWalker(
      { explicitVr: enc.explicitVr, littleEndian: enc.littleEndian },
      [TAG.SOPClassUID, TAG.SOPInstanceUID, TAG.StudyInstanceUID, TAG.SeriesInstanceUID],
    );
    if (enc.deflated) this.startInflater();
  }

  write(chunk: Buffer): boolean {
    this.datasetBytes += chunk.length;
    let inflaterFull = false;
    if (this.inflater) inflaterFull = !this.inflater.write(chunk);
    else this.walker.feed(chunk);
    if (this.ioError !== undefined) return true; // keep reading; the sender gets a failure at the end
    this.pending.push(chunk);
    this.queued += chunk.length;
    if (this.queued >= this.opts.spillBytes) {
      this.startSpill();
      this.pump();
    }
    return this.queued < this.opts.highWaterBytes && !inflaterFull;
  }

  drained(): Promise<void> {
    const inflaterWait = this.inflater && this.inflater.writableNeedDrain
      ? new Promise<void>((resolve) => this.inflater?.once('drain', () => resolve()))
      : Promise.resolve();
    const diskWait = this.queued < this.opts.highWaterBytes || this.ioError !== undefined
      ? Promise.resolve()
      : new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    return Promise.all([inflaterWait, diskWait]).then(() => undefined);
  }

  end(): StoreReply | Promise<StoreReply> {
    if (!this.inflater && !this.opening) return this.endInMemory(this.walker.finish());
    return this.endAsync();
  }

  private async endAsync(): Promise<StoreReply> {
    const walk = this.inflater ? await this.finishWalk() : this.walker.finish();
    if (!this.opening) return this.endInMemory(walk);
    try {
      await this.flushAll();
      if (this.opts.fsync) await (this.fh as FileHandle).sync();
      await (this.fh as FileHandle).close();
      this.fh = undefined;
    } catch (err) {
      await this.discard();
      return this.placement.failed(this.request, err, this.datasetBytes);
    }
    this.settled = true;
    return this.placement.place({
      request: this.request,
      tempPath: this.tempPath,
      fileBytes: this.fileBytes,
      datasetBytes: this.datasetBytes,
      walk,
    });
  }

  async abort(reason: string): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    if (this.inflater) this.inflater.destroy();
    this.startSpill();
    try {
      await this.flushAll();
      await (this.fh as FileHandle).close();
      this.fh = undefined;
    } catch {
      await this.discard();
      return;
    }
    await this.placement.partial(this.request, this.tempPath, reason, this.datasetBytes);
  }

  // --- structure check ------------------------------------------------------------------------

  private startInflater(): void {
    const inflater = createInflateRaw({ finishFlush: zc.Z_SYNC_FLUSH });
    this.inflater = inflater;
    inflater.on('data', (out: Buffer) => this.walker.feed(out));
    this.inflateDone = new Promise<void>((resolve) => {
      inflater.on('end', () => resolve());
      inflater.on('close', () => resolve());
      inflater.on('error', (err: Error) => {
        this.inflateError = `the deflated data set cannot be inflated: ${err.message}`;
        resolve();
      });
    });
  }

  private async finishWalk(): Promise<WalkResult> {
    if (this.inflater) {
      this.inflater.end();
      await this.inflateDone;
    }
    const walk = this.walker.finish();
    if (this.inflateError && !walk.problem) walk.problem = this.inflateError;
    return walk;
  }

  // --- disk ---------------------------------------------------------------------------------

  /** The whole data set is in memory: write, close and place it without the thread pool. */
  private endInMemory(walk: WalkResult): StoreReply | Promise<StoreReply> {
    const buffers = this.pending.length > 512 ? [Buffer.concat(this.pending)] : this.pending;
    this.pending = [];
    try {
      const fd = this.takeFd() ?? openTempSync(this.tempPath);
      try {
        let written = writevSync(fd, buffers);
        while (written < this.queued) {
          // A short write: rare, finish it from where it stopped.
          written += writevSync(fd, [Buffer.concat(buffers).subarray(written)]);
        }
        if (this.opts.fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.fileBytes = this.queued;
      this.queued = 0;
    } catch (err) {
      this.settled = true;
      try {
        rmSync(this.tempPath, { force: true });
      } catch {
        // nothing to remove
      }
      return this.placement.failed(this.request, err, this.datasetBytes);
    }
    this.settled = true;
    const inst = { request: this.request, tempPath: this.tempPath, fileBytes: this.fileBytes, datasetBytes: this.datasetBytes, walk };
    return this.placement.placeSync(inst) ?? this.placement.place(inst);
  }

  private get tempPath(): string {
    return this.opts.temp.path;
  }

  /** The descriptor of a temp file created ahead, once (then it is ours to close). */
  private takeFd(): number | undefined {
    const fd = this.opts.temp.fd;
    this.opts.temp.fd = undefined;
    return fd;
  }

  /** From now on bytes go to disk as they come. */
  private startSpill(): void {
    if (this.opening) return;
    this.opening = this.openTemp();
    // A failed open is reported by the writer; never as an unhandled rejection.
    this.opening.catch(() => undefined);
  }

  private async openTemp(): Promise<FileHandle> {
    const ahead = this.takeFd();
    if (ahead !== undefined) {
      // Created ahead (empty, ours): reopen it as a FileHandle for the streaming writer.
      closeSync(ahead);
      return open(this.tempPath, 'w', 0o644);
    }
    try {
      return await open(this.tempPath, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // .arrived/ was removed under us: make it again once.
      await mkdir(dirname(this.tempPath), { recursive: true });
      return open(this.tempPath, 'wx', 0o644);
    }
  }

  /** Start the writer if it is idle: it writes whatever is pending, in order, until none is. */
  private pump(): void {
    if (this.writing || this.ioError !== undefined) return;
    this.writing = this.writeLoop()
      .catch((err: unknown) => {
        this.ioError = err;
        this.pending = [];
        this.queued = 0;
      })
      .finally(() => {
        this.writing = undefined;
        this.wakeDrain();
      });
  }

  private async writeLoop(): Promise<void> {
    this.fh ??= await (this.opening as Promise<FileHandle>);
    const fh = this.fh;
    while (this.pending.length > 0) {
      const buffers = this.pending;
      this.pending = [];
      let n = 0;
      for (const b of buffers) n += b.length;
      await writeAll(fh, buffers, n);
      this.fileBytes += n;
      this.queued -= n;
      this.wakeDrain();
    }
  }

  private async flushAll(): Promise<void> {
    for (;;) {
      if (this.writing) await this.writing;
      if (this.ioError !== undefined) throw this.ioError;
      if (this.pending.length === 0 && this.fh) return;
      this.pump();
    }
  }

  private wakeDrain(): void {
    if (this.queued >= this.opts.highWaterBytes && this.ioError === undefined) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private async discard(): Promise<void> {
    this.settled = true;
    const ahead = this.takeFd();
    if (ahead !== undefined) closeSync(ahead);
    try {
      const fh = this.fh ?? (await this.opening);
      await fh?.close();
    } catch {
      // not opened, or already closed
    }
    this.fh = undefined;
    await rm(this.tempPath, { force: true }).catch(() => undefined);
  }
}

/** Open the temp file for a new instance; recreate .arrived/ if someone removed it. */
function openTempSync(path: string): number {
  try {
    return openSync(path, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'wx', 0o644);
  }
}

/** writev until every byte is down (a short write is possible on some filesystems). */
async function writeAll(fh: FileHandle, buffers: Buffer[], total: number): Promise<void> {
  let { bytesWritten } = await fh.writev(buffers);
  while (bytesWritten < total) {
    // Rare: continue from where the short write stopped.
    const rest = Buffer.concat(buffers).subarray(bytesWritten);
    const r = await fh.write(rest, 0, rest.length, null);
    if (r.bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    bytesWritten += r.bytesWritten;
  }
}

