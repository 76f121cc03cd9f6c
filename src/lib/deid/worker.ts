import { parentPort } from 'node:worker_threads';
import { type AnonymizeResult, type Anonymizer, createAnonymizer } from './anonymizer.js';
import { lockedIo } from './worker-io.js';
import { type WorkerFile, type WorkerReply, type WorkerRequest, anonymizerOptions } from './pool.js';

/**
 * A pool worker (pool.ts): started before the configuration is known (its modules load
 * while the calling thread parses options), it gets {init} once and builds its anonymizer,
 * then takes {files} batches and runs each file's whole pipeline here, with the file calls
 * in this thread: no message per read or write. Answers go back a few at a time, as they
 * are done, so the calling thread writes their events and hands out more.
 */
let anonymizer: Anonymizer | undefined;
let initError: string | undefined;
let limit = 4;
let running = 0;
const queue: WorkerFile[] = [];
let replies: WorkerReply[] = [];
let replyScheduled = false;

/** Answers are sent when this many are waiting, the rest once the work in hand is done. */
const REPLY_AT = 8;

function sendReplies(): void {
  replyScheduled = false;
  if (replies.length === 0) return;
  const out = replies;
  replies = [];
  parentPort!.postMessage(out);
}

function answer(r: WorkerReply): void {
  replies.push(r);
  if (replies.length >= REPLY_AT) sendReplies();
  else if (!replyScheduled) {
    replyScheduled = true;
    setImmediate(sendReplies);
  }
}

function pump(): void {
  while (running < limit && queue.length > 0) {
    const f = queue.shift()!;
    running++;
    run(f).then(
      (result) => answer({ id: f.id, result }),
      (err: unknown) => answer({ id: f.id, error: err instanceof Error ? err.message : String(err) }),
    ).finally(() => {
      running--;
      pump();
    });
  }
}

async function run(f: WorkerFile): Promise<AnonymizeResult> {
  if (!anonymizer) throw new Error(initError ?? 'the anonymizer worker got a file before its configuration');
  return anonymizer.anonymizeFile(f.input, f.outDir);
}

let ready: Promise<void> = Promise.resolve();

parentPort!.on('message', (m: WorkerRequest) => {
  if ('init' in m) {
    limit = m.init.inFlight;
    ready = anonymizerOptions(m.init.config).then(
      (o) => {
        try {
          anonymizer = createAnonymizer(m.init.config.rules, { ...o, io: m.init.createLock ? lockedIo(m.init.createLock) : undefined });
        } catch (err) {
          initError = err instanceof Error ? err.message : String(err);
        }
      },
    );
    return;
  }
  queue.push(...m.files);
  void ready.then(pump);
});
