import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// The built module: the core's worker script (dist/lib/dicom/file-worker.js) is found
// beside the file thread it imports.
import { publishingThreadIo, threadIo } from '../../dist/lib/deid/io-thread.js';
import { BufferPool } from '../../dist/lib/deid/output.js';
import { dyingWorker, useThreadTest } from '../dicom/thread-test.js';

/** Distinct bytes per file, so a mix-up between files would show. */
function content(k: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + k * 7) & 0xff;
  return b;
}

describe('file I/O thread', () => {
  const s = useThreadTest('fiona-io-');

  it('reads heads and publishes outputs in the thread, byte for byte, leaving no temp file', async () => {
    const dir = s.dir();
    const warnings: string[] = [];
    const io = s.own(threadIo({ eager: true, onWarning: (m) => warnings.push(m) }));
    await io.ready();
    const pool = new BufferPool(1024, 32, true);
    const inputs = [100, 5000, 70_000, 200_000, 3_000_000].map((size, k) => {
      const f = join(dir, `in-${k}`);
      writeFileSync(f, content(k, size));
      return { f, size, k };
    });
    const heads = await Promise.all(inputs.map((i) => io.readHead({ file: i.f, wholeLimit: 1024 * 1024, headBytes: 32 * 1024 }, pool)));
    heads.forEach((h, n) => {
      const { size, k } = inputs[n]!;
      expect(h.size).toBe(size);
      // Up to the limit the whole file, else its first 32 KiB.
      expect(Buffer.compare(h.bytes!, content(k, size).subarray(0, size <= 1024 * 1024 ? size : 32 * 1024))).toBe(0);
    });
    mkdirSync(join(dir, 'out'));
    await Promise.all(
      heads.map((h, n) => io.write({ tmp: join(dir, 'out', `.t${n}.tmp`), target: join(dir, 'out', `o${n}.dcm`), parts: [h.bytes!], fsync: n % 2 === 0 })),
    );
    heads.forEach((h, n) => expect(Buffer.compare(readFileSync(join(dir, 'out', `o${n}.dcm`)), h.bytes!)).toBe(0));
    expect(readdirSync(join(dir, 'out')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('gives the caller the error with its code: a missing input, an output folder that is a file', async () => {
    const dir = s.dir();
    const io = s.own(threadIo({ eager: true }));
    await io.ready();
    const pool = new BufferPool(1024, 32, true);
    await expect(io.readHead({ file: join(dir, 'missing'), wholeLimit: 1 << 20, headBytes: 1 << 15 }, pool)).rejects.toMatchObject({ code: 'ENOENT' });
    writeFileSync(join(dir, 'file'), 'x');
    const bytes = Buffer.from(new SharedArrayBuffer(4));
    await expect(io.write({ tmp: join(dir, 'file', '.t.tmp'), target: join(dir, 'file', 'o.dcm'), parts: [bytes], fsync: false })).rejects.toMatchObject({ code: 'ENOTDIR' });
    // The thread goes on after an error.
    mkdirSync(join(dir, 'ok'));
    await io.write({ tmp: join(dir, 'ok', '.t.tmp'), target: join(dir, 'ok', 'o.dcm'), parts: [bytes], fsync: false });
    expect(existsSync(join(dir, 'ok', 'o.dcm'))).toBe(true);
  });

  it('loses nothing when the thread dies: what it had in hand is done by the calling thread', async () => {
    const dir = s.dir();
    const warnings: string[] = [];
    // A stand-in worker that says it is ready, then dies at the first request.
    const io = s.own(threadIo({ eager: true, workerUrl: dyingWorker(dir, 7), onWarning: (m) => warnings.push(m) }));
    await io.ready();
    const pool = new BufferPool(1024, 32, true);
    const f = join(dir, 'in');
    writeFileSync(f, content(1, 10_000));
    mkdirSync(join(dir, 'out'));
    const bytes = Buffer.from(new SharedArrayBuffer(3000));
    bytes.set(content(2, 3000));
    const [head] = await Promise.all([
      io.readHead({ file: f, wholeLimit: 1 << 20, headBytes: 1 << 15 }, pool),
      io.write({ tmp: join(dir, 'out', '.a.tmp'), target: join(dir, 'out', 'a.dcm'), parts: [bytes.subarray(0, 1000), bytes.subarray(1000)], fsync: true }),
    ]);
    expect(Buffer.compare(head.bytes!, content(1, 10_000))).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'out', 'a.dcm')), bytes)).toBe(0);
    expect(warnings.join('\n')).toMatch(/file I\/O thread stopped \(exit code 7\)/);
    // Later requests are done in the calling thread.
    await io.write({ tmp: join(dir, 'out', '.b.tmp'), target: join(dir, 'out', 'b.dcm'), parts: [bytes], fsync: false });
    expect(Buffer.compare(readFileSync(join(dir, 'out', 'b.dcm')), bytes)).toBe(0);
  });

  it("the anonymizer's I/O reads and publishes in the thread, byte for byte, with many outputs queued", async () => {
    const dir = s.dir();
    const warnings: string[] = [];
    const io = s.own(publishingThreadIo({ onWarning: (m) => warnings.push(m) }));
    await io.ready();
    const pool = new BufferPool(1024, 64, true);
    mkdirSync(join(dir, 'out'));
    const files = Array.from({ length: 24 }, (_, k) => {
      const f = join(dir, `in-${k}`);
      writeFileSync(f, content(k, 20_000 + k));
      return f;
    });
    // Each file read, then its output queued without waiting for the earlier ones.
    const writes: Array<Promise<number>> = [];
    for (const [k, f] of files.entries()) {
      const head = await io.readHead({ file: f, wholeLimit: 1 << 20, headBytes: 1 << 15 }, pool);
      expect(Buffer.compare(head.bytes!, content(k, 20_000 + k))).toBe(0);
      writes.push(io.write({ tmp: join(dir, 'out', `.t${k}.tmp`), target: join(dir, 'out', `o${k}.dcm`), parts: [head.bytes!], fsync: false }));
    }
    expect(await Promise.all(writes)).toEqual(files.map((_, k) => 20_000 + k));
    files.forEach((_, k) => expect(Buffer.compare(readFileSync(join(dir, 'out', `o${k}.dcm`)), content(k, 20_000 + k))).toBe(0));
    expect(readdirSync(join(dir, 'out')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(warnings).toEqual([]);
  });
});
