import { parentPort } from 'node:worker_threads';
import { type IoReply, type IoRequest, readHeadSync } from './io-thread.js';
import { DirSyncer, writeAndPublish, writeAndPublishSync } from './output.js';

/**
 * The file I/O thread (see io-thread.ts): reads into the caller's shared buffers and
 * publishes outputs with writeAndPublish, exactly as the calling thread would; each request
 * answered as soon as it is done, so the calling thread can go on with that file.
 */
const dirs = new DirSyncer();

let replies: IoReply[] = [];

/** Answers go back in one message per batch of requests (each message costs both threads). */
function reply(r: IoReply): void {
  replies.push(r);
}

function sendReplies(): void {
  if (replies.length === 0) return;
  const out = replies;
  replies = [];
  parentPort!.postMessage(out);
}

function failed(id: number, err: unknown): IoReply {
  return { id, error: err instanceof Error ? err.message : String(err), code: (err as NodeJS.ErrnoException).code };
}

function read(q: Extract<IoRequest, { op: 'read' }>): void {
  try {
    const h = readHeadSync(q, q.buf, (n) => new Uint8Array(new SharedArrayBuffer(n)));
    reply({ id: q.id, size: h.size, read: h.read, want: h.want, grown: h.buffer === q.buf ? undefined : (h.buffer.buffer as SharedArrayBuffer) });
  } catch (err) {
    reply(failed(q.id, err));
  }
}

/** A write without fsync: synchronous calls only (writeAndPublish awaits nothing then). */
function writeNow(q: Extract<IoRequest, { op: 'write' }>): void {
  try {
    writeAndPublishSync(q.tmp, q.target, q.parts);
    reply({ id: q.id });
  } catch (err) {
    reply(failed(q.id, err));
  }
}

function write(q: Extract<IoRequest, { op: 'write' }>): Promise<void> {
  return writeAndPublish(q.tmp, q.target, q.parts, q.fsync, dirs).then(
    () => reply({ id: q.id }),
    (err: unknown) => reply(failed(q.id, err)),
  );
}

/** Writes waiting, done a few at a time so that reads asked for meanwhile are not held up. */
const queue: Extract<IoRequest, { op: 'write' }>[] = [];
let pumping = false;
const WRITES_PER_TURN = 4;

function pump(): void {
  for (let k = 0; k < WRITES_PER_TURN && queue.length > 0; k++) {
    const q = queue.shift()!;
    if (!q.fsync) writeNow(q);
    // With fsync the writes overlap (the fdatasyncs run on the thread pool and the
    // filesystem commits them together), as in the calling thread; each is answered when done.
    else void write(q).then(sendReplies);
  }
  // Answered as they are done: the calling thread starts its next files meanwhile.
  sendReplies();
  if (queue.length > 0) setImmediate(pump);
  else pumping = false;
}

parentPort!.on('message', (requests: IoRequest[]) => {
  // Reads first, answered at once: they are what the calling thread waits for.
  for (const q of requests) {
    if (q.op === 'read') read(q);
    else queue.push(q);
  }
  sendReplies();
  if (!pumping && queue.length > 0) {
    pumping = true;
    setImmediate(pump);
  }
});
parentPort!.postMessage('ready');
