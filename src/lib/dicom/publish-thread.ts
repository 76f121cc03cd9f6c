import { Worker } from 'node:worker_threads';

/**
 * A second thread that publishes rendered outputs: open the temp name, writev, [fdatasync],
 * close, rename, [fsync the folder]. The same synchronous calls rewriteDicom makes, in
 * order, one file after the other (creates in one folder serialize on its lock anyway, so
 * more threads would only contend), while the calling thread renders the next files.
 *
 * Measured on the 1,000-file edit (docs/dicom-core.md): the libuv pool did worse than the
 * synchronous loop (four round trips per file, each waiting for the calling thread, and
 * four pool threads contending for the folder's lock); one thread doing the whole
 * publish per message did better.
 *
 * The worker's code is a string (plain JavaScript, node: modules only): no worker file to
 * find beside the module, whether it runs from dist/ or from the sources under a test runner.
 */

export interface PublishRequest {
  id: number;
  tmp: string;
  target: string;
  /** The output's bytes, in order: views of SharedArrayBuffers (shared, not copied), untouched until the reply. */
  parts: Uint8Array[];
  fsync: boolean;
}

interface PublishReply {
  id: number;
  written?: number;
  error?: { message: string; code?: string; syscall?: string; path?: string };
}

const WORKER_CODE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
// Replies go back a few at a time (fewer messages; each costs both threads), and at once
// when no request is waiting. With fsync, a reply waits for its folder's fsync, done once
// for all the renames in the group (one folder sync serves many renames).
let waiting = [];
let dirs = new Set();
let scheduled = false;
function flush() {
  scheduled = false;
  for (const d of dirs) {
    let fd;
    try { fd = fs.openSync(d, 'r'); fs.fsyncSync(fd); } catch { /* some filesystems refuse fsync on a folder */ }
    finally { if (fd !== undefined) fs.closeSync(fd); }
  }
  dirs = new Set();
  const w = waiting;
  waiting = [];
  if (w.length > 0) parentPort.postMessage(w);
}
function writeAll(fd, parts) {
  let written = 0;
  for (let k = 0; k < parts.length; k += 512) {
    let run = parts.slice(k, k + 512);
    while (run.length > 0) {
      let n = fs.writevSync(fd, run);
      written += n;
      while (run.length > 0 && n >= run[0].length) { n -= run[0].length; run = run.slice(1); }
      if (n > 0) run = [run[0].subarray(n), ...run.slice(1)];
    }
  }
  return written;
}
function publish(r) {
  const fd = fs.openSync(r.tmp, 'w', 0o644);
  let written;
  try {
    written = writeAll(fd, r.parts);
    if (r.fsync) fs.fdatasyncSync(fd);
  } catch (err) {
    try { fs.closeSync(fd); } catch {}
    fs.rmSync(r.tmp, { force: true });
    throw err;
  }
  try {
    fs.closeSync(fd);
    fs.renameSync(r.tmp, r.target);
  } catch (err) {
    fs.rmSync(r.tmp, { force: true });
    throw err;
  }
  return written;
}
parentPort.postMessage('ready');
parentPort.on('message', (requests) => {
  for (const r of requests) handle(r);
});
function handle(r) {
  let reply;
  try {
    reply = { id: r.id, written: publish(r) };
  } catch (err) {
    reply = { id: r.id, error: { message: String(err && err.message), code: err && err.code, syscall: err && err.syscall, path: err && err.path } };
  }
  waiting.push(reply);
  if (r.fsync && reply.error === undefined) dirs.add(path.dirname(r.target));
  if (waiting.length >= 4) flush();
  else if (!scheduled) { scheduled = true; setImmediate(flush); }
}
`;

function replyError(e: NonNullable<PublishReply['error']>): Error {
  const err = new Error(e.message) as NodeJS.ErrnoException;
  if (e.code !== undefined) err.code = e.code;
  if (e.syscall !== undefined) err.syscall = e.syscall;
  if (e.path !== undefined) err.path = e.path;
  return err;
}

export class PublishThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (n: number) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private outbox: PublishRequest[] = [];
  private sendScheduled = false;
  private dead: Error | undefined;

  private started = false;

  /** True once the thread takes requests (and has not stopped since). */
  get ready(): boolean {
    return this.started && this.dead === undefined;
  }

  /** True once the thread has died or was closed: publish() rejects from then on. */
  get stopped(): boolean {
    return this.dead !== undefined;
  }

  constructor() {
    this.worker = new Worker(WORKER_CODE, { eval: true });
    this.worker.unref();
    this.worker.on('message', (replies: PublishReply[] | 'ready') => {
      if (replies === 'ready') {
        this.started = true;
        return;
      }
      for (const r of replies) {
        const p = this.pending.get(r.id);
        if (!p) continue;
        this.pending.delete(r.id);
        if (r.error) p.reject(replyError(r.error));
        else p.resolve(r.written ?? 0);
      }
      if (this.pending.size === 0) this.worker.unref();
    });
    const fail = (err: Error): void => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(new Error(`the publishing thread failed: ${err.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`the publishing thread stopped (exit code ${code})`)));
  }

  /** Publish; resolves with the bytes written once the file is under its final name (and durable with fsync). */
  publish(req: Omit<PublishRequest, 'id'>): Promise<number> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.outbox.push({ ...req, id });
      // A few requests a message (each message costs both threads some 10 us), and the rest
      // when this thread next waits, so the other thread is never left without work.
      if (this.outbox.length >= 4) this.send();
      else if (!this.sendScheduled) {
        this.sendScheduled = true;
        setImmediate(() => this.send());
      }
    });
  }

  private send(): void {
    this.sendScheduled = false;
    if (this.outbox.length === 0 || this.dead) return;
    const batch = this.outbox;
    this.outbox = [];
    this.worker.postMessage(batch);
  }

  async close(): Promise<void> {
    this.dead ??= new Error('the publishing thread was closed');
    await this.worker.terminate();
  }
}
