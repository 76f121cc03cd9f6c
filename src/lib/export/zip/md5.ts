import { Worker } from 'node:worker_threads';
import { basename } from 'node:path';

/**
 * MD5 of an archive while it is being written, on another thread: the writer says how
 * far the file is final (a streamed entry's header is patched after its data, so the
 * hash must wait for it), and the worker reads those bytes back from the file and hashes
 * them. The digest so describes the bytes on disk, and costs no time on the writer's
 * thread. Memory: one 4 MiB buffer.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { crc32 } = require('node:zlib');
const fd = openSync(workerData, 'r');
const h = createHash('md5');
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
let pos = 0;
// Byte ranges (start, length, in file order) whose CRC-32 is taken from the same reads.
const ranges = [];
let next = 0;
let crc = 0;
const crcs = [];
function crcRanges(chunk, at) {
  const end = at + chunk.length;
  while (next < ranges.length) {
    const s = ranges[next], e = s + ranges[next + 1];
    if (e > end) {
      if (s < end) crc = crc32(chunk.subarray(Math.max(s, at) - at), crc);
      return;
    }
    if (e > at) crc = crc32(chunk.subarray(Math.max(s, at) - at, e - at), crc);
    crcs.push(crc >>> 0);
    crc = 0;
    next += 2;
  }
}
parentPort.on('message', (m) => {
  try {
    if (m.ranges) for (const x of m.ranges) ranges.push(x);
    while (pos < m.final) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, m.final - pos), pos);
      if (n === 0) throw new Error('file shorter than ' + m.final + ' bytes');
      h.update(buf.subarray(0, n));
      crcRanges(buf.subarray(0, n), pos);
      pos += n;
    }
    if (m.end) {
      closeSync(fd);
      if (next < ranges.length) throw new Error('ranges past the end of the file');
      const out = Uint32Array.from(crcs);
      parentPort.postMessage({ md5: h.digest('hex'), bytes: pos, crcs: out }, [out.buffer]);
      parentPort.close();
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
    parentPort.close();
  }
});
`;

/** How far the file must have grown past what the thread was last told before it is told again. */
const ADVANCE_STEP = 2 * 1024 * 1024;

export interface FollowerResult {
  md5: string;
  /** CRC-32 of each range given to range(), in order, as read back from the file. */
  crcs: Uint32Array;
}

export class Md5Follower {
  private readonly worker: Worker;
  private readonly result: Promise<FollowerResult>;
  private sent = 0;
  private ranges: number[] = [];

  constructor(path: string) {
    // execArgv: [] so that a parent started with --input-type=module does not make this CommonJS source an ES module.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: path, execArgv: [] });
    this.result = new Promise((resolve, reject) => {
      let settled = false;
      this.worker.on('message', (m: { md5?: string; crcs?: Uint32Array; error?: string }) => {
        settled = true;
        if (m.md5) resolve({ md5: m.md5, crcs: m.crcs ?? new Uint32Array(0) });
        else reject(new Error(`md5 of ${path}: ${m.error}`));
      });
      this.worker.once('error', (err) => {
        settled = true;
        reject(err);
      });
      this.worker.once('exit', (code) => {
        if (!settled) reject(new Error(`md5 of ${path}: worker exited with ${code}`));
      });
    });
    this.result.catch(() => undefined);
  }

  /**
   * Also take the CRC-32 of bytes [start, start + length) as they are read back for the hash
   * (ranges in file order, each given before advance() makes it final): the read-back check
   * of stored entries, done on this thread from the same reads.
   */
  range(start: number, length: number): void {
    this.ranges.push(start, length);
  }

  /**
   * Bytes [0, final) of the file will not change any more. Told to the thread in steps of
   * ADVANCE_STEP, not per entry: a message per entry (a thousand for a study) wakes the
   * thread and clones a message a thousand times for reads it can as well do in larger steps.
   */
  advance(final: number): void {
    if (final - this.sent >= ADVANCE_STEP) {
      this.sent = final;
      this.worker.postMessage({ final, ranges: this.takeRanges() });
    }
  }

  /** The whole file is written (its length is `final`); resolves with the hex digest and the ranges' CRCs. */
  finish(final: number): Promise<FollowerResult> {
    this.sent = final;
    this.worker.postMessage({ final, end: true, ranges: this.takeRanges() });
    return this.result;
  }

  private takeRanges(): number[] | undefined {
    if (this.ranges.length === 0) return undefined;
    const r = this.ranges;
    this.ranges = [];
    return r;
  }

  async abort(): Promise<void> {
    await this.worker.terminate();
  }
}

/** MD5 of a whole file (a file written elsewhere), on another thread. */
export async function md5File(path: string, size: number): Promise<string> {
  return (await new Md5Follower(path).finish(size)).md5;
}

/** One line as `md5sum -b` writes it: the hash, a space, '*' for binary mode, the name. */
export function md5sumLine(md5: string, file: string): string {
  return `${md5} *${basename(file)}\n`;
}
