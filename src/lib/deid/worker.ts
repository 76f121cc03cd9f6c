import { parentPort, workerData } from 'node:worker_threads';
import { createAnonymizer } from './anonymizer.js';
import { type WorkerInit, anonymizerOptions } from './pool.js';

/**
 * A pool worker: builds its anonymizer once, then answers {id, input, outDir} messages with
 * {id, result} (anonymized or quarantined) or {id, error} (an unexpected failure).
 */
const init = workerData as WorkerInit;
const anonymizer = createAnonymizer(init.rules, anonymizerOptions(init));

parentPort!.on('message', (m: { id: number; input: string; outDir: string }) => {
  anonymizer.anonymizeFile(m.input, m.outDir).then(
    (result) => parentPort!.postMessage({ id: m.id, result }),
    (err: unknown) => parentPort!.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
