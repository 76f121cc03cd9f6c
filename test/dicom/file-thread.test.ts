import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// The built module: its worker script (file-worker.js) is beside it.
import { bufferSizeFor, fileThread, readShared, workerExecArgv } from '../../dist/lib/dicom/file-thread.js';
import { dyingWorker, useThreadTest } from './thread-test.js';

function shared(text: string): Buffer {
  const b = Buffer.from(new SharedArrayBuffer(Buffer.byteLength(text)));
  b.write(text);
  return b;
}

describe('the core file thread, in both publish styles', () => {
  const s = useThreadTest('fiona-file-thread-');

  it("rewriteFiles' style: a missing output folder is ENOENT; fsynced writes answered with their byte counts", async () => {
    const dir = s.dir();
    const t = s.own(fileThread({ eager: true, sendAt: 4, style: { makeDir: false } }));
    await t.ready();
    mkdirSync(join(dir, 'out'));
    const ns = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((k) => t.write({ tmp: join(dir, 'out', `.t${k}.tmp`), target: join(dir, 'out', `o${k}`), parts: [shared('abc'), shared('x'.repeat(k))], fsync: true })),
    );
    expect(ns).toEqual([3, 4, 5, 6, 7, 8]);
    expect(readFileSync(join(dir, 'out', 'o5'), 'utf8')).toBe('abcxxxxx');
    // Without and with fsync (the fdatasyncs in flight together take another path): the folder is not made.
    await expect(t.write({ tmp: join(dir, 'gone', '.t.tmp'), target: join(dir, 'gone', 'o'), parts: [shared('a')], fsync: false })).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    await expect(t.write({ tmp: join(dir, 'gone', '.t.tmp'), target: join(dir, 'gone', 'o'), parts: [shared('a')], fsync: true })).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    expect(existsSync(join(dir, 'gone'))).toBe(false);
    expect(readdirSync(join(dir, 'out')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(t.isReady()).toBe(true);
  });

  it("the anonymizer's style makes a vanished output folder again", async () => {
    const dir = s.dir();
    const t = s.own(fileThread({ eager: true }));
    await t.ready();
    const n = await t.write({ tmp: join(dir, 'a', 'b', '.t.tmp'), target: join(dir, 'a', 'b', 'o'), parts: [shared('hello')], fsync: true });
    expect(n).toBe(5);
    expect(readFileSync(join(dir, 'a', 'b', 'o'), 'utf8')).toBe('hello');
  });

  it('a dying thread: the file it had in hand is published by the calling thread, same bytes and count', async () => {
    const dir = s.dir();
    const warnings: string[] = [];
    const t = s.own(fileThread({ eager: true, sendAt: 4, style: { makeDir: false }, workerUrl: dyingWorker(dir, 9), onWarning: (m) => warnings.push(m) }));
    await t.ready();
    mkdirSync(join(dir, 'out'));
    const n = await t.write({ tmp: join(dir, 'out', '.t.tmp'), target: join(dir, 'out', 'o'), parts: [shared('ab'), shared('cd')], fsync: true });
    expect(n).toBe(4);
    expect(readFileSync(join(dir, 'out', 'o'), 'utf8')).toBe('abcd');
    expect(t.isStopped()).toBe(true);
    expect(warnings.join('\n')).toMatch(/exit code 9/);
  });

  it('starts from a script run by `node --input-type=module -e` (a Worker inherits those options and died at once with them)', () => {
    const dir = s.dir();
    const dist = fileURLToPath(new URL('../../dist/lib/dicom/file-thread.js', import.meta.url));
    const script = `
      import { fileThread } from ${JSON.stringify(dist)};
      const t = fileThread({ eager: true, style: { makeDir: false } });
      await t.ready();
      const n = await t.write({ tmp: process.argv[1] + '/.t.tmp', target: process.argv[1] + '/o', parts: [Buffer.from(new SharedArrayBuffer(2)).fill(0x61)], fsync: false });
      console.log(JSON.stringify({ ready: t.isReady(), stopped: t.isStopped(), n }));
      await t.close();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ready: true, stopped: false, n: 2 });
    expect(readFileSync(join(dir, 'o'), 'utf8')).toBe('aa');
  });

  it('starts under options Node refuses to pass to a worker explicitly (--no-opt): the worker inherits them', () => {
    const dir = s.dir();
    const dist = fileURLToPath(new URL('../../dist/lib/dicom/file-thread.js', import.meta.url));
    const script = `
      import { fileThread } from ${JSON.stringify(dist)};
      const warnings = [];
      const t = fileThread({ eager: true, style: { makeDir: false }, onWarning: (m) => warnings.push(m) });
      await t.ready();
      const n = await t.write({ tmp: process.argv[2] + '/.t.tmp', target: process.argv[2] + '/o', parts: [Buffer.from(new SharedArrayBuffer(2)).fill(0x62)], fsync: false });
      console.log(JSON.stringify({ stopped: t.isStopped(), n, warnings }));
      await t.close();`;
    const file = join(dir, 'run.mjs');
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, ['--no-opt', file, dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { stopped: boolean; n: number; warnings: string[] };
    expect(out).toEqual({ stopped: false, n: 2, warnings: [] });
    expect(readFileSync(join(dir, 'o'), 'utf8')).toBe('bb');
  });

  it("passes the calling thread's other options on, without the entry-point ones and their code", () => {
    expect(workerExecArgv(['--input-type=module', '-e', 'x()', '--max-old-space-size=512'])).toEqual(['--max-old-space-size=512']);
    expect(workerExecArgv(['--input-type', 'module', '--eval', 'x()', '--stack-size=900'])).toEqual(['--stack-size=900']);
    expect(workerExecArgv(['-pe', 'x()', '--eval=y()', '--print=z()', '--cpu-prof'])).toEqual(['--cpu-prof']);
  });
});

describe('the file thread, started while the calling thread is busy', () => {
  const s = useThreadTest('fiona-file-up-');

  it('is taken as up without its ready message (a batch runs long turns without reading messages)', () => {
    const t = s.own(fileThread({ eager: true }));
    const end = Date.now() + 5000;
    // Busy: no turn of the event loop, so no message is read here.
    while (!t.isReady() && Date.now() < end);
    expect(t.isReady()).toBe(true);
  });
});

describe('reads into shared buffers', () => {
  const s = useThreadTest('fiona-file-read-');

  it('a head larger than the buffer given comes in a new buffer with room for the next files, a few bytes larger', () => {
    const file = join(s.dir(), 'in');
    writeFileSync(file, Buffer.alloc(983_296, 7));
    const reply = readShared(1, { file, wholeLimit: 1 << 20, headBytes: 1 << 15 }, new Uint8Array(new SharedArrayBuffer(32 * 1024)));
    expect(reply).toMatchObject({ size: 983_296, read: 983_296, want: 983_296 });
    expect(reply.grown!.byteLength).toBe(bufferSizeFor(983_296));
    expect(reply.grown!.byteLength).toBeGreaterThanOrEqual(983_296 + 983_296 / 32);
    expect(bufferSizeFor(983_296) % (16 * 1024)).toBe(0);
    // The file read whole, in the new buffer.
    expect(new Uint8Array(reply.grown!, 0, 983_296).every((b) => b === 7)).toBe(true);
  });
});
