/**
 * The archive stage as fiona-zip-export runs it (buildArchive): .part, read-back check,
 * MD5 file, publish by rename; checked with unzip, 7z and md5sum on the published files.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, statSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildArchive, listStage } from '../../src/lib/export/archive.js';
import { makeTempDir } from '../helpers/tmp.js';
import { requireProgram } from '../peers/process.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let stage: string;
const contents = new Map<string, Buffer>();

beforeAll(async () => {
  requireProgram('unzip', 'unzip');
  requireProgram('7z', 'p7zip-full');
  requireProgram('md5sum', 'coreutils');
  tmp = await makeTempDir('fiona-archive-');
  stage = join(tmp.dir, 'stage');
  const files: Array<[string, Buffer]> = [
    ['P/ID1/20240101_120000/0002_T2/IM000002.dcm', randomBytes(70_000)],
    ['P/ID1/20240101_120000/0002_T2/IM000001.dcm', randomBytes(130_000)],
    ['P/ID1/20240101_120000/0001_T1/IM000001.dcm', Buffer.alloc(200_000, 7)],
    ['P/ID1/20240101_120000/0001_T1/big.dcm', randomBytes(5 * 1024 * 1024 + 11)], // streamed, not read whole
    ['P/ID1/20240101_120000/0001_T1/empty.dcm', Buffer.alloc(0)],
    ['P/ID1/20240101_120000/ø-unicode.txt', Buffer.from('not ASCII\n')],
    ['fiona.txt', Buffer.from('manifest\n')],
  ];
  for (const [name, data] of files) {
    await mkdir(join(stage, name, '..'), { recursive: true });
    await writeFile(join(stage, name), data);
    contents.set(name, data);
  }
});

afterAll(async () => {
  await tmp?.cleanup();
});

describe('listStage', () => {
  it('lists every file once, sorted by name within each folder, as archive names', () => {
    const listed = [...listStage(stage)].map((e) => e.name);
    expect(listed).toEqual([
      'P/ID1/20240101_120000/0001_T1/IM000001.dcm',
      'P/ID1/20240101_120000/0001_T1/big.dcm',
      'P/ID1/20240101_120000/0001_T1/empty.dcm',
      'P/ID1/20240101_120000/0002_T2/IM000001.dcm',
      'P/ID1/20240101_120000/0002_T2/IM000002.dcm',
      'P/ID1/20240101_120000/ø-unicode.txt',
      'fiona.txt',
    ]);
  });
});

describe('buildArchive', () => {
  for (const level of [0, 1]) {
    it(`level ${level}: publishes <name>.zip and <name>.zip.md5 only; md5sum -c, unzip -t and 7z t pass; bytes equal the stage`, async () => {
      const out = join(tmp.dir, `out-${level}`);
      await mkdir(out);
      const seen: string[] = [];
      const r = await buildArchive({ stageDir: stage, outDir: out, name: `export-${level}`, level, onEntry: (e) => seen.push(e.name) });
      expect(r.entries).toBe(contents.size);
      expect(seen).toEqual([...listStage(stage)].map((e) => e.name));
      expect((await readdir(out)).sort()).toEqual([`export-${level}.zip`, `export-${level}.zip.md5`]);
      expect(statSync(r.path).size).toBe(r.bytes);
      expect(statSync(r.path).mode & 0o777).toBe(0o640);
      expect(await readFile(r.md5Path, 'utf8')).toBe(`${r.md5} *export-${level}.zip\n`);
      expect((await execa('md5sum', ['-c', r.md5Path], { cwd: out })).stdout).toContain(': OK');
      expect((await execa('unzip', ['-t', r.path])).stdout).toContain('No errors detected');
      expect((await execa('7z', ['t', r.path])).stdout).toContain('Everything is Ok');
      const x = join(tmp.dir, `x-${level}`);
      await execa('unzip', ['-q', r.path, '-d', x]);
      for (const [name, data] of contents) expect((await readFile(join(x, name))).equals(data), name).toBe(true);
    });
  }

  it('AES-256: 7z t with the password passes; without it the content is unreadable', async () => {
    const out = join(tmp.dir, 'out-aes');
    await mkdir(out);
    const r = await buildArchive({ stageDir: stage, outDir: out, name: 'export-aes', level: 0, password: Buffer.from('pw for the test') });
    expect((await execa('7z', ['t', '-ppw for the test', r.path])).stdout).toContain('Everything is Ok');
    expect((await execa('7z', ['t', '-pwrong', r.path], { reject: false })).exitCode).not.toBe(0);
    expect((await execa('md5sum', ['-c', r.md5Path], { cwd: out })).stdout).toContain(': OK');
  });

  it('a source that vanishes while the archive is written: the error names it, nothing is published or left', async () => {
    const copy = join(tmp.dir, 'stage-vanish');
    await execa('cp', ['-r', stage, copy]);
    const out = join(tmp.dir, 'out-vanish');
    await mkdir(out);
    const victim = join(copy, 'P/ID1/20240101_120000/0001_T1/empty.dcm');
    // A folder is listed before its files are read: removing a later file of it after the first
    // entry is written makes the writer meet a missing file mid-archive.
    const build = buildArchive({
      stageDir: copy,
      outDir: out,
      name: 'export-vanish',
      level: 0,
      onEntry: () => {
        if (existsSync(victim)) rmSync(victim);
      },
    });
    await expect(build).rejects.toThrow(/empty\.dcm/);
    expect(await readdir(out)).toEqual([]);
  });
});
