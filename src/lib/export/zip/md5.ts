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
const fd = openSync(workerData, 'r');
const h = createHash('md5');
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
let pos = 0;
parentPort.on('message', (m) => {
  try {
    while (pos < m.final) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, m.final - pos), pos);
      if (n === 0) throw new Error('file shorter than ' + m.final + ' bytes');
      h.update(buf.subarray(0, n));
      pos += n;
    }
    if (m.end) {
      closeSync(fd);
      parentPort.postMessage({ md5: h.digest('hex'), bytes: pos });
      parentPort.close();
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
    parentPort.close();
  }
});
`;

export class Md5Follower {
  private readonly worker: Worker;
  private readonly result: Promise<string>;
  private sent = 0;

  constructor(path: string) {
    // execArgv: [] so that a parent started with --input-type=module does not make this CommonJS source an ES module.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: path, execArgv: [] });
    this.result = new Promise((resolve, reject) => {
      let settled = false;
      this.worker.on('message', (m: { md5?: string; error?: string }) => {
        settled = true;
        if (m.md5) resolve(m.md5);
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

  /** Bytes [0, final) of the file will not change any more. */
  advance(final: number): void {
    if (final > this.sent) {
      this.sent = final;
      this.worker.postMessage({ final });
    }
  }

  /** The whole file is written (its length is `final`); resolves with the hex digest. */
  finish(final: number): Promise<string> {
    this.sent = final;
    this.worker.postMessage({ final, end: true });
    return this.result;
  }

  async abort(): Promise<void> {
    await this.worker.terminate();
  }
}

/** MD5 of a whole file (a file written elsewhere), on another thread. */
export function md5File(path: string, size: number): Promise<string> {
  return new Md5Follower(path).finish(size);
}

/** One line as `md5sum -b` writes it: the hash, a space, '*' for binary mode, the name. */
export function md5sumLine(md5: string, file: string): string {
  return `${md5} *${basename(file)}\n`;
}
