import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach } from 'vitest';
import { makeTempDir } from '../helpers/tmp.js';

interface Closable {
  close(): Promise<void>;
}

/**
 * For the file thread's tests (test/dicom/file-thread, test/deid/io-thread): a private temp
 * folder per test (`dir()`), and `own(t)` for the thread a test starts: closed after the
 * test, before its folder is removed.
 */
export function useThreadTest(prefix: string): { dir: () => string; own: <T extends Closable>(t: T) => T } {
  let dir = '';
  let cleanup: () => Promise<void>;
  let owned: Closable | undefined;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir(prefix));
  });
  afterEach(async () => {
    await owned?.close();
    owned = undefined;
    await cleanup();
  });
  return {
    dir: () => dir,
    own: <T extends Closable>(t: T): T => {
      owned = t;
      return t;
    },
  };
}

/** A stand-in worker script (written in `dir`) that says it is ready, then exits with `code` at the first request. */
export function dyingWorker(dir: string, code: number): URL {
  const script = join(dir, 'dies.mjs');
  writeFileSync(script, `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(${code}));\nparentPort.postMessage('ready');\n`);
  return pathToFileURL(script);
}
