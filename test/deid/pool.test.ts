import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The built modules: the pool's worker script (dist/lib/deid/worker.js) is found beside pool.js.
import { type BatchOutcome, runBatch } from '../../dist/lib/deid/batch.js';
import { filesOf } from '../../dist/lib/deid/inputs.js';
import { createAnonymizerPool, startWorkers } from '../../dist/lib/deid/pool.js';
import { defaultProjectRules } from '../../dist/lib/deid/project.js';
import { lockedIo } from '../../dist/lib/deid/worker-io.js';
import { runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let synth: string; // 2 patients x 2 studies x 3 series x 2 instances

beforeAll(async () => {
  tmp = await makeTempDir('fiona-deid-pool-');
  synth = join(tmp.dir, 'synth');
  const r = await runTool('fiona-synth', ['--out', synth, '--patients', '2', '--studies-per-patient', '2', '--series', '3', '--instances', '2', '--rows', '32', '--seed', '23', '--no-fsync', '-q']);
  if (r.exitCode !== 0) throw new Error(String(r.stderr));
}, 120_000);
afterAll(async () => tmp.cleanup());

/**
 * Every published file under `dir`, by path relative to it, with its bytes. Temp files
 * (`.<name>.<pid>.<thread>.<n>.tmp`) are left out: a worker ended by terminate() runs no
 * cleanup, so one it was writing stays, as it would after a kill -9 of the process.
 */
async function tree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && !/^\..*\.tmp$/.test(e.name)) out.set(relative(dir, join(e.parentPath, e.name)), await readFile(join(e.parentPath, e.name)));
  }
  return out;
}

async function batch(threads: number, outDir: string, onWarning: (m: string) => void, kill?: 'at-first-files') {
  const config = { rules: defaultProjectRules('pool-test'), secret: new TextEncoder().encode('pool-test-secret-0123456789abcdef'), fsync: true };
  const started = threads >= 2 ? startWorkers(threads) : undefined;
  if (kill) {
    // A real worker that dies mid-batch, with files in hand: the first worker is ended as
    // soon as it has been handed its first files (it may have begun them, or not).
    const victim = started!.workers[0]!;
    const post = victim.postMessage.bind(victim);
    victim.postMessage = (m: unknown) => {
      post(m);
      if (typeof m === 'object' && m !== null && 'files' in m) void victim.terminate();
    };
  }
  const pool = await createAnonymizerPool(config, threads, onWarning, started);
  const outcomes: BatchOutcome[] = [];
  try {
    const summary = await runBatch(filesOf(synth), { anonymizer: pool, outDir, inFlight: 4, onOutcome: (o) => outcomes.push(o) });
    return { summary, outcomes };
  } finally {
    await pool.close();
  }
}

describe('anonymizer pool (--threads N >= 2)', () => {
  it('a worker that dies mid-batch loses no file: its files are done in the calling thread, each reported once, in input order', async () => {
    const one = await batch(1, join(tmp.dir, 'one'), () => {});
    const warnings: string[] = [];
    const two = await batch(2, join(tmp.dir, 'two'), (m) => warnings.push(m), 'at-first-files');
    expect(one.outcomes.length).toBe(24);
    expect(two.summary).toMatchObject({ anonymized: 24, quarantined: 0, failed: 0 });
    expect(two.outcomes.map((o) => [o.status, o.source])).toEqual(one.outcomes.map((o) => [o.status, o.source]));
    expect(warnings.some((w) => /anonymizer worker stopped.*done in the main thread/.test(w))).toBe(true);
    // The same outputs, byte for byte, and nothing else.
    const a = await tree(join(tmp.dir, 'one'));
    const b = await tree(join(tmp.dir, 'two'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(Buffer.compare(b.get(k)!, v)).toBe(0);
  }, 120_000);
});

describe('the workers\' publish lock (worker-io.ts)', () => {
  it('a lock left taken (its holder ended inside it) is taken after a timeout, not waited on for good', async () => {
    const lock = new Int32Array(new SharedArrayBuffer(4));
    lock[0] = 1;
    const dir = join(tmp.dir, 'lock');
    await mkdir(dir);
    const target = join(dir, 'out.dcm');
    const bytes = new Uint8Array([1, 2, 3, 4]);
    await expect(lockedIo(lock).write({ tmp: join(dir, '.out.tmp'), target, parts: [bytes], fsync: false })).resolves.toBe(4);
    expect(Buffer.compare(await readFile(target), bytes)).toBe(0);
    expect(lock[0]).toBe(0);
  }, 10_000);
});
