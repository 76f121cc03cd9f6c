import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rewriteDicom, rewriteFiles, type BatchStats, type RewriteJob, type RewriteOptions, type RewriteOutcome } from '../../src/lib/dicom/index.js';
import { PublishThread } from '../../src/lib/dicom/publish-thread.js';
import { publishPartsSync } from '../../src/lib/dicom/write.js';
import { useFixtures } from './fixtures.js';

const { fx, dir } = useFixtures('fiona-dicom-batch-');

const ALL = [
  'synth', 'synthImplicit', 'synthBig', 'synthDeflated', 'synthRle', 'synthJpeg', 'synthJpegLs',
  'odd', 'oddImplicit', 'oddBig', 'oddDeflated', 'oddUndefined', 'oddGroupLength', 'oddNoMeta', 'unDefined', 'unUndefined',
  'charset-japanese', 'charset-korean', 'charset-chinese',
];

/** The bench's edit: four values set, one element removed, PatientName replaced at top level. */
const EDIT: RewriteOptions = {
  set: [
    { tag: 0x00100020, value: 'PSEUDO-0001' },
    { tag: 0x00080050, value: 'ACC0001' },
  ],
  visit: (c) => (c.tag === 0x00101040 ? { op: 'remove' } : c.tag === 0x00100010 && c.depth === 0 ? { op: 'replace', value: 'Doe^Jane' } : undefined),
};

/**
 * The median cost (ms) of a small fsynced publish in `folder`, the same steps rewriteFiles'
 * start rule times (for a smaller file, so a lower bound of it): 0.03 ms on tmpfs, 0.4-2 ms on ext4.
 */
function fsyncedPublishMs(folder: string): number {
  const ms: number[] = [];
  for (let k = 0; k < 24; k++) {
    const t = performance.now();
    publishPartsSync(join(folder, `probe-${k}`), [Buffer.alloc(4096, k)], true);
    ms.push(performance.now() - t);
  }
  return ms.sort((a, b) => a - b)[ms.length >> 1]!;
}

async function collect(gen: AsyncGenerator<RewriteOutcome>): Promise<RewriteOutcome[]> {
  const out: RewriteOutcome[] = [];
  for await (const o of gen) out.push(o);
  return out;
}

/** Names in a folder that look like temp names (hidden, .tmp). */
async function temps(d: string): Promise<string[]> {
  return (await readdir(d)).filter((f) => f.startsWith('.') && f.endsWith('.tmp'));
}

describe('rewriteFiles', () => {
  it('writes the same bytes as rewriteDicom one by one, for every fixture, edited and unedited, in job order', async () => {
    const one = join(dir(), 'one');
    const many = join(dir(), 'many');
    await mkdir(one);
    await mkdir(many);
    // Each fixture 12 times (228 files): more than the thread's start-up covers, so both the
    // calling thread's publishes and the second thread's are compared.
    const jobs: RewriteJob[] = [];
    for (let k = 0; k < 12; k++) {
      for (const name of ALL) jobs.push({ input: fx[name]!, output: join(many, `${k}-${name}.dcm`), opts: k % 4 === 3 ? {} : EDIT });
    }
    for (const j of jobs.slice(0, ALL.length * 4)) {
      const k = j.output.slice(many.length + 1);
      await rewriteDicom(j.input, join(one, k), { ...j.opts, fsync: false });
    }
    const stats: BatchStats = { onThread: 0, here: 0 };
    const outcomes = await collect(rewriteFiles(jobs, { fsync: false, inFlight: 3, stats, thread: 'always' }));
    expect(stats.here + stats.onThread).toBe(jobs.length);
    expect(stats.onThread).toBeGreaterThan(0);
    expect(stats.here).toBeGreaterThan(0);
    expect(outcomes.map((o) => o.job.output)).toEqual(jobs.map((j) => j.output));
    for (const o of outcomes) {
      if (!o.ok) throw o.error;
      const name = o.job.output.slice(many.length + 1);
      const k = Number(name.split('-')[0]);
      const got = await readFile(o.job.output);
      const ref = await readFile(join(one, `${k % 4}${name.slice(name.indexOf('-'))}`));
      expect(got.equals(ref), name).toBe(true);
      expect(o.result.bytesOut).toBe(got.length);
      if (k % 4 === 3) {
        expect(got.equals(await readFile(o.job.input)), `${name} unedited`).toBe(true);
        expect(o.result.changed).toBe(0);
      } else {
        expect(o.result.changed).toBeGreaterThan(0);
      }
    }
    expect(await temps(many)).toEqual([]);
  }, 60_000);

  it('publishes on the second thread once it has started, with fsync on (the default)', async () => {
    const out = join(dir(), 'thread');
    await mkdir(out);
    // Let the thread start: a first batch long enough to hear its "ready", then one file per job.
    const jobs: RewriteJob[] = Array.from({ length: 400 }, (_, k) => ({ input: fx.synth!, output: join(out, `${k}.dcm`), opts: EDIT }));
    const ref = join(dir(), 'thread-ref.dcm');
    await rewriteDicom(fx.synth!, ref, EDIT);
    const stats: BatchStats = { onThread: 0, here: 0 };
    const probe = join(dir(), 'probe');
    await mkdir(probe);
    const publishMs = fsyncedPublishMs(probe);
    const outcomes = await collect(rewriteFiles(jobs, { stats }));
    // The thread is started once fsync'ed publishes here are measured slow (the median of files
    // 17-48 above 0.25 ms) and takes every file from the moment it is ready (it starts in some
    // 40 ms). Where fsync costs nothing (a temp folder on tmpfs) it is never started. The probe
    // is cheaper than what the rule times (a smaller file): above the bar here, above it there.
    expect(stats.onThread + stats.here).toBe(400);
    if (publishMs > 0.3) {
      expect(stats.here).toBeGreaterThanOrEqual(48);
      expect(stats.onThread).toBeGreaterThanOrEqual(200);
    } else if (publishMs < 0.1) {
      expect(stats.onThread).toBe(0);
    }
    const want = await readFile(ref);
    for (const o of outcomes) {
      expect(o.ok).toBe(true);
      expect((await readFile(o.job.output)).equals(want)).toBe(true);
    }
    expect(await temps(out)).toEqual([]);
  }, 60_000);

  it('without fsync publishes every file on the calling thread (the thread costs more CPU than it saves there)', async () => {
    const out = join(dir(), 'nofsync');
    await mkdir(out);
    const jobs: RewriteJob[] = Array.from({ length: 200 }, (_, k) => ({ input: fx.synth!, output: join(out, `${k}.dcm`), opts: EDIT }));
    const stats: BatchStats = { onThread: 0, here: 0 };
    const outcomes = await collect(rewriteFiles(jobs, { stats, fsync: false }));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(stats).toMatchObject({ onThread: 0, here: 200 });
  });

  it('gives each failing file its own error naming it; the others are written; nothing under a failed name', async () => {
    const out = join(dir(), 'errors');
    await mkdir(out);
    const notDicom = join(dir(), 'not-dicom.dcm');
    await writeFile(notDicom, Buffer.from('this is not a DICOM file at all, just text '.repeat(20)));
    const truncated = join(dir(), 'truncated.dcm');
    const whole = await readFile(fx.synth!);
    await writeFile(truncated, whole.subarray(0, 2000));
    const missing = join(dir(), 'no-such-file.dcm');
    const jobs: RewriteJob[] = [];
    for (let k = 0; k < 30; k++) {
      const bad = k % 6;
      const input = bad === 1 ? notDicom : bad === 2 ? truncated : bad === 3 ? missing : fx.odd!;
      // bad 4: the output's folder does not exist (the write fails, not the read).
      const output = bad === 4 ? join(out, 'gone', `${k}.dcm`) : join(out, `${k}.dcm`);
      jobs.push({ input, output, opts: EDIT });
    }
    const outcomes = await collect(rewriteFiles(jobs, { fsync: false, inFlight: 2 }));
    const ref = join(dir(), 'errors-ref.dcm');
    await rewriteDicom(fx.odd!, ref, { ...EDIT, fsync: false });
    const want = await readFile(ref);
    const names = new Set(await readdir(out));
    outcomes.forEach((o, k) => {
      const bad = k % 6;
      if (bad >= 1 && bad <= 4) {
        expect(o.ok, `${k}`).toBe(false);
        if (o.ok) return;
        expect(o.error.message).toContain(o.job.input);
        if (bad === 4) {
          expect((o.error as NodeJS.ErrnoException).code).toBe('ENOENT');
          expect(o.error.message).toContain(o.job.output);
        }
        expect(names.has(`${k}.dcm`)).toBe(false);
      } else {
        expect(o.ok, `${k}: ${o.ok ? '' : o.error.message}`).toBe(true);
      }
    });
    for (const o of outcomes) if (o.ok) expect((await readFile(o.job.output)).equals(want)).toBe(true);
    expect(await temps(out)).toEqual([]);
    expect(names.has('gone')).toBe(false);
  }, 60_000);

  it('rewrites an input larger than memoryLimit with rewriteDicom itself (streaming), same bytes', async () => {
    const out = join(dir(), 'large');
    await mkdir(out);
    const jobs: RewriteJob[] = ['synth', 'synthDeflated', 'oddBig'].map((n) => ({ input: fx[n]!, output: join(out, `${n}.dcm`), opts: EDIT }));
    const outcomes = await collect(rewriteFiles(jobs, { fsync: false, memoryLimit: 100 }));
    for (const o of outcomes) {
      if (!o.ok) throw o.error;
      const ref = join(dir(), 'large-ref.dcm');
      await rewriteDicom(o.job.input, ref, { ...EDIT, fsync: false });
      expect((await readFile(o.job.output)).equals(await readFile(ref))).toBe(true);
    }
  });

  it('edits files in place (output = input) like rewriteDicom', async () => {
    const d = join(dir(), 'inplace');
    await mkdir(d);
    const files = await Promise.all(Array.from({ length: 20 }, async (_, k) => {
      const f = join(d, `${k}.dcm`);
      await writeFile(f, await readFile(fx.synth!));
      return f;
    }));
    const ref = join(dir(), 'inplace-ref.dcm');
    await rewriteDicom(fx.synth!, ref, { ...EDIT, fsync: false });
    const outcomes = await collect(rewriteFiles(files.map((f) => ({ input: f, output: f, opts: EDIT })), { fsync: false }));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    const want = await readFile(ref);
    for (const f of files) expect((await readFile(f)).equals(want)).toBe(true);
    expect(await temps(d)).toEqual([]);
  });

  it('stops cleanly when the consumer breaks early: what was started is finished, no temp names left', async () => {
    const out = join(dir(), 'break');
    await mkdir(out);
    const jobs: RewriteJob[] = Array.from({ length: 50 }, (_, k) => ({ input: fx.synth!, output: join(out, `${k}.dcm`), opts: EDIT }));
    let seen = 0;
    for await (const o of rewriteFiles(jobs, { fsync: false, inFlight: 4 })) {
      expect(o.ok).toBe(true);
      if (++seen === 5) break;
    }
    const names = await readdir(out);
    expect(await temps(out)).toEqual([]);
    expect(names.length).toBeGreaterThanOrEqual(5);
    expect(names.length).toBeLessThan(50);
  });
});

describe('PublishThread', () => {
  it('writes the parts under the target, reports the byte count, and an error with its code; no temp left', async () => {
    const t = new PublishThread();
    const d = join(dir(), 'pt');
    try {
      await mkdir(d);
      const a = Buffer.from(new SharedArrayBuffer(5));
      a.write('hello');
      const b = Buffer.from(new SharedArrayBuffer(6));
      b.write(' world');
      const n = await t.publish({ tmp: join(d, '.x.tmp'), target: join(d, 'x'), parts: [a, b.subarray(0, 6)], fsync: true });
      expect(n).toBe(11);
      expect(await readFile(join(d, 'x'), 'utf8')).toBe('hello world');
      const err = await t.publish({ tmp: join(d, 'missing', '.y.tmp'), target: join(d, 'missing', 'y'), parts: [a], fsync: false }).catch((e: NodeJS.ErrnoException) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
      // With fsync (fdatasyncs in flight together) a missing folder is not made either.
      await expect(t.publish({ tmp: join(d, 'missing', '.z.tmp'), target: join(d, 'missing', 'z'), parts: [a], fsync: true })).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await readdir(d)).toEqual(['x']);
      expect(t.ready).toBe(true);
    } finally {
      await t.close();
    }
    expect(t.stopped).toBe(true);
    // Once stopped, the calling thread publishes (the thread can die between rewriteFiles' choice and publish()).
    const c = Buffer.from(new SharedArrayBuffer(3));
    c.write('end');
    expect(await t.publish({ tmp: join(d, '.w.tmp'), target: join(d, 'w'), parts: [c], fsync: true })).toBe(3);
    expect(await readFile(join(d, 'w'), 'utf8')).toBe('end');
    expect((await readdir(d)).sort()).toEqual(['w', 'x']);
  });
});
