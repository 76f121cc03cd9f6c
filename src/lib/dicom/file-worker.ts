import { parentPort, workerData } from 'node:worker_threads';
import { type FileWorkerData, type IoReply, type IoRequest, publishJob, readShared } from './file-thread.js';
import { DirSyncer, openTempMakingDir, publishTempPartsSync } from './publish.js';

/**
 * The file thread (see file-thread.ts): reads into the caller's shared buffers and
 * publishes outputs with the publish steps of publish.ts, exactly as the calling thread
 * would; answers go back a few at a time (each message costs both threads some 10 us), as
 * soon as they are done, so the calling thread can go on with those files.
 */
const dirs = new DirSyncer();

type WriteRequest = Extract<IoRequest, { op: 'write' }>;

let replies: IoReply[] = [];

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
  const e = err as NodeJS.ErrnoException;
  return { id, error: err instanceof Error ? err.message : String(err), code: e?.code, syscall: e?.syscall, path: e?.path };
}

function read(q: Extract<IoRequest, { op: 'read' }>): void {
  try {
    reply(readShared(q.id, q, q.buf));
  } catch (err) {
    reply(failed(q.id, err));
  }
}

/** A write without fsync: synchronous calls only, answered with the others of this turn. */
function writeNow(q: WriteRequest): void {
  try {
    reply({ id: q.id, written: publishTempPartsSync(q.tmp, q.target, q.parts, false, q.makeDir ? openTempMakingDir : undefined) });
  } catch (err) {
    reply(failed(q.id, err));
  }
}

/** Writes waiting, done a few at a time so that reads asked for meanwhile are not held up. */
const queue: WriteRequest[] = [];
let pumping = false;
const WRITES_PER_TURN = 4;

function pump(): void {
  for (let k = 0; k < WRITES_PER_TURN && queue.length > 0; k++) {
    const q = queue.shift()!;
    if (q.fsync) {
      // The fdatasyncs overlap (on the thread pool; the filesystem commits them together),
      // as in the calling thread; each is answered once it and its folder's sync are done.
      void publishJob(q, q, dirs).then(
        (written) => reply({ id: q.id, written }),
        (err: unknown) => reply(failed(q.id, err)),
      ).then(sendReplies);
    } else writeNow(q);
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
// Told through shared memory too: the calling thread may not read its messages for a while.
const up = (workerData as FileWorkerData | undefined)?.up;
if (up) Atomics.store(up, 0, 1);
parentPort!.postMessage('ready');
