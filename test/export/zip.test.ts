import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, truncate, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZipReader, Uint8ArrayReader, Uint8ArrayWriter, configure } from '@zip.js/zip.js';
import { md5sumLine, verifyZip, writeZip, ZipVerifyError, ZipWriteError, type ZipSource } from '../../src/lib/export/zip/index.js';
import { localHeaderLength } from '../../src/lib/export/zip/format.js';
import { makeTempDir } from '../helpers/tmp.js';
import { requireProgram } from '../peers/process.js';

configure({ useWebWorkers: false });

let tmp: { dir: string; cleanup: () => Promise<void> };
let sources: ZipSource[];
const contents = new Map<string, Buffer>();

/** Compressible but not trivial data, like pixel data with noise. */
function pixels(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    b[i] = i % 7 === 0 ? s & 0xff : (i >> 6) & 0x3f;
  }
  return b;
}

beforeAll(async () => {
  requireProgram('unzip', 'unzip');
  requireProgram('7z', 'p7zip-full');
  requireProgram('md5sum', 'coreutils');
  tmp = await makeTempDir('fiona-zip-');
  const src = join(tmp.dir, 'src');
  await mkdir(join(src, 'a', 'b'), { recursive: true });
  const files: Array<[string, Buffer]> = [
    ['a/one.dcm', pixels(130_000, 1)],
    ['a/b/two.dcm', pixels(70_000, 2)],
    ['a/empty.txt', Buffer.alloc(0)],
    ['a/random.bin', randomBytes(50_000)], // incompressible: stored even at level 1
    ['a/b/big.dcm', pixels(9 * 1024 * 1024 + 3, 3)], // over the in-memory limit: streamed
  ];
  sources = [];
  for (const [name, data] of files) {
    await writeFile(join(src, name), data);
    contents.set(name, data);
    sources.push({ name, path: join(src, name) });
  }
  const manifest = Buffer.from('fiona manifest\n');
  contents.set('fiona.txt', manifest);
  sources.push({ name: 'fiona.txt', data: manifest });
});

afterAll(async () => {
  await tmp?.cleanup();
});

async function extractAll(zip: string, password?: string): Promise<Map<string, Buffer>> {
  const out = join(tmp.dir, `x-${randomBytes(4).toString('hex')}`);
  await mkdir(out);
  if (password) {
    await execa('7z', ['x', `-p${password}`, `-o${out}`, zip], { stdout: 'ignore' });
  } else {
    await execa('unzip', ['-q', zip, '-d', out]);
  }
  const found = new Map<string, Buffer>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(dir, e.name), `${prefix}${e.name}/`);
      else found.set(`${prefix}${e.name}`, await readFile(join(dir, e.name)));
    }
  };
  await walk(out, '');
  return found;
}

function expectSameContents(found: Map<string, Buffer>): void {
  expect([...found.keys()].sort()).toEqual([...contents.keys()].sort());
  for (const [name, data] of contents) expect(found.get(name)!.equals(data), name).toBe(true);
}

describe('writeZip + verifyZip', () => {
  for (const level of [0, 1, 6]) {
    it(`level ${level}: unzip -t passes, extracted bytes equal the sources, md5sum -c agrees`, async () => {
      const zip = join(tmp.dir, `plain-${level}.zip`);
      const r = await writeZip(zip, sources, { level, keepEntries: true });
      expect(r.entries).toHaveLength(contents.size);
      const t = await execa('unzip', ['-t', zip]);
      expect(t.stdout).toContain('No errors detected');
      expectSameContents(await extractAll(zip));
      const v = await verifyZip(zip, { md5: true, expected: r.entries.map((e) => ({ name: e.name, crc: e.crc, size: e.uncompressedSize })) });
      expect(v.entries).toBe(contents.size);
      expect((await verifyZip(zip, { digest: r.digest })).entries).toBe(contents.size);
      // the MD5 the writer computed while writing is the MD5 of the file on disk
      const disk = createHash('md5').update(await readFile(zip)).digest('hex');
      expect(r.md5).toBe(disk);
      expect(v.md5).toBe(disk);
      await writeFile(`${zip}.md5`, md5sumLine(r.md5, zip));
      const c = await execa('md5sum', ['-c', `${zip}.md5`], { cwd: tmp.dir });
      expect(c.stdout).toContain(': OK');
      if (level > 0) {
        const stored = r.entries.find((e) => e.name === 'a/random.bin')!;
        expect(stored.innerMethod).toBe(0);
        const big = r.entries.find((e) => e.name === 'a/b/big.dcm')!;
        expect(big.innerMethod).toBe(8);
        expect(big.compressedSize).toBeLessThan(big.uncompressedSize);
      }
    });
  }

  for (const level of [0, 1]) {
    it(`AES-256 level ${level}: 7z t with the password passes, 7z extracts the same bytes, zip.js reads it`, async () => {
      const zip = join(tmp.dir, `aes-${level}.zip`);
      const password = 'correct horse battery staple';
      const r = await writeZip(zip, sources, { level, password: Buffer.from(password), keepEntries: true });
      const t = await execa('7z', ['t', `-p${password}`, zip]);
      expect(t.stdout).toContain('Everything is Ok');
      const bad = await execa('7z', ['t', '-pwrong', zip], { reject: false });
      expect(bad.exitCode).not.toBe(0);
      expectSameContents(await extractAll(zip, password));
      const reader = new ZipReader(new Uint8ArrayReader(await readFile(zip)), { password });
      const entries = await reader.getEntries();
      for (const e of entries) {
        if (e.directory) continue;
        const data = await e.getData!(new Uint8ArrayWriter());
        expect(Buffer.from(data).equals(contents.get(e.filename)!), e.filename).toBe(true);
        expect(e.encrypted).toBe(true);
      }
      await reader.close();
      // 7z describes the method it found
      const l = await execa('7z', ['l', '-slt', `-p${password}`, zip]);
      expect(l.stdout).toContain('AES-256');
      await verifyZip(zip, { password: Buffer.from(password), expected: r.entries.map((e) => ({ name: e.name, crc: e.crc, size: e.uncompressedSize })) });
      await expect(verifyZip(zip, { password: Buffer.from('nope') })).rejects.toThrow(/wrong password/);
      // nothing of the plaintext is visible in the file
      const raw = await readFile(zip);
      expect(raw.includes(contents.get('fiona.txt')!)).toBe(false);
    });
  }

  it('ZIP64 structures (forced) are read by unzip and 7z', async () => {
    const zip = join(tmp.dir, 'z64.zip');
    await writeZip(zip, sources, { level: 1, forceZip64: true });
    expect((await execa('unzip', ['-t', zip])).stdout).toContain('No errors detected');
    expect((await execa('7z', ['t', zip])).stdout).toContain('Everything is Ok');
    expectSameContents(await extractAll(zip));
    await verifyZip(zip);
  });

  it('more than 65,535 entries get a ZIP64 end record that unzip reads', async () => {
    const many: ZipSource[] = [];
    for (let i = 0; i < 66_000; i++) many.push({ name: `d${i % 100}/f${i}.txt`, data: Buffer.from(`entry ${i}\n`) });
    const zip = join(tmp.dir, 'many.zip');
    const r = await writeZip(zip, many, { level: 0 });
    expect(r.count).toBe(66_000);
    const t = await execa('unzip', ['-tq', zip]);
    expect(t.stdout).toContain('No errors detected');
    const v = await verifyZip(zip);
    expect(v.entries).toBe(66_000);
  }, 120_000);

  it('an entry over 4 GiB (sparse source, deflated) gets ZIP64 sizes and is checked in full', async () => {
    const huge = join(tmp.dir, 'huge.raw');
    const size = 2 ** 32 + 4096 + 7;
    await writeFile(huge, '');
    await truncate(huge, size); // sparse: zeros, no disk
    const fh = await open(huge, 'r+');
    await fh.write(Buffer.from('tail marker'), 0, 11, size - 11);
    await fh.close();
    const zip = join(tmp.dir, 'huge.zip');
    const r = await writeZip(zip, [{ name: 'huge.raw', path: huge }], { level: 1, keepEntries: true });
    expect(r.entries[0]!.zip64).toBe(true);
    expect(r.entries[0]!.uncompressedSize).toBe(size);
    // 7z rather than unzip here: both read it, 7z in a quarter of the time
    const t = await execa('7z', ['t', zip]);
    expect(t.stdout).toContain('Everything is Ok');
    await verifyZip(zip, { expected: [{ name: 'huge.raw', crc: r.entries[0]!.crc, size }] });
  }, 120_000);

  it('refuses unsafe and duplicate names, and leaves no partial file', async () => {
    for (const name of ['../evil', '/abs', 'a//b', 'a/./b', 'a\\b']) {
      const zip = join(tmp.dir, 'bad.zip');
      await expect(writeZip(zip, [{ name, data: Buffer.from('x') }], { level: 0 })).rejects.toBeInstanceOf(ZipWriteError);
      expect(existsSync(zip)).toBe(false);
    }
    const zip = join(tmp.dir, 'dup.zip');
    await expect(
      writeZip(zip, [{ name: 'x', data: Buffer.from('1') }, { name: 'x', data: Buffer.from('2') }], { level: 0 }),
    ).rejects.toThrow(/duplicate/);
    expect(existsSync(zip)).toBe(false);
  });

  it('a source that vanishes fails the archive with its name, and removes the partial file', async () => {
    const zip = join(tmp.dir, 'missing.zip');
    const list: ZipSource[] = [...sources, { name: 'gone.dcm', path: join(tmp.dir, 'does-not-exist.dcm') }];
    await expect(writeZip(zip, list, { level: 1 })).rejects.toThrow(/does-not-exist/);
    expect(existsSync(zip)).toBe(false);
  });

  it('the verifier finds a flipped byte, a truncated file and a wrong expected list', async () => {
    const zip = join(tmp.dir, 'flip.zip');
    const r = await writeZip(zip, sources, { level: 0, keepEntries: true });
    const one = r.entries.find((e) => e.name === 'a/one.dcm')!;
    const bytes = await readFile(zip);
    const flipped = Buffer.from(bytes);
    flipped[one.offset + 30 + one.nameBytes.length + 1000]! ^= 0xff;
    await writeFile(join(tmp.dir, 'flipped.zip'), flipped);
    await expect(verifyZip(join(tmp.dir, 'flipped.zip'))).rejects.toThrow(/a\/one.dcm: CRC-32 mismatch/);
    await writeFile(join(tmp.dir, 'short.zip'), bytes.subarray(0, bytes.length - 100));
    await expect(verifyZip(join(tmp.dir, 'short.zip'))).rejects.toBeInstanceOf(ZipVerifyError);
    await expect(verifyZip(zip, { expected: [{ name: 'a/one.dcm', crc: one.crc, size: one.uncompressedSize }] })).rejects.toThrow(
      /not an entry that was written/,
    );
    // the digest of another archive (other names or contents) does not pass
    const other = await writeZip(join(tmp.dir, 'other.zip'), [...sources].reverse(), { level: 0 });
    await expect(verifyZip(zip, { digest: other.digest })).rejects.toThrow(/differs|names differ/);
    await expect(verifyZip(join(tmp.dir, 'flipped.zip'), { digest: r.digest })).rejects.toThrow(/CRC-32 mismatch/);

    const azip = join(tmp.dir, 'aflip.zip');
    const pw = Buffer.from('pw');
    const ar = await writeZip(azip, sources, { level: 0, password: pw, keepEntries: true });
    const a1 = ar.entries.find((e) => e.name === 'a/one.dcm')!;
    const abytes = Buffer.from(await readFile(azip));
    abytes[a1.offset + 30 + a1.nameBytes.length + 11 + 18 + 500]! ^= 0x01;
    await writeFile(azip, abytes);
    await expect(verifyZip(azip, { password: pw })).rejects.toThrow(/authentication code does not match/);
  });

  it('stored entries are checked with the CRC-32s the MD5 thread read back; the rest are still read and inflated', async () => {
    const zip = join(tmp.dir, 'disk.zip');
    const r = await writeZip(zip, sources, { level: 0, keepEntries: true });
    const crcs = await r.diskCrcs;
    expect(crcs.length).toBe(r.entries.length);
    // every entry is stored at level 0 (the 9 MiB one streamed): the bytes read back have the sources' CRCs
    r.entries.forEach((e, i) => expect(crcs[i], e.name).toBe(e.crc >>> 0));
    expect((await verifyZip(zip, { digest: r.digest, diskCrcs: crcs })).entries).toBe(r.entries.length);
    // a read-back CRC that differs (the disk returned other bytes) fails the check
    const bad = Uint32Array.from(crcs);
    bad[r.entries.findIndex((e) => e.name === 'a/b/big.dcm')]! ^= 1;
    await expect(verifyZip(zip, { digest: r.digest, diskCrcs: bad })).rejects.toThrow(/a\/b\/big.dcm: CRC-32 mismatch/);
    await expect(verifyZip(zip, { digest: r.digest, diskCrcs: crcs.subarray(1) })).rejects.toThrow(/read-back checksums/);

    // level 1: deflated entries get no read-back CRC and are inflated as before, so damage there is found
    const z1 = join(tmp.dir, 'disk1.zip');
    const r1 = await writeZip(z1, sources, { level: 1, keepEntries: true });
    const c1 = await r1.diskCrcs;
    r1.entries.forEach((e, i) => expect(c1[i], e.name).toBe(e.innerMethod === 0 ? e.crc >>> 0 : 0));
    expect((await verifyZip(z1, { digest: r1.digest, diskCrcs: c1 })).entries).toBe(r1.entries.length);
    const two = r1.entries.find((e) => e.name === 'a/b/two.dcm')!;
    expect(two.innerMethod).toBe(8);
    const bytes = Buffer.from(await readFile(z1));
    bytes[two.offset + 30 + two.nameBytes.length + 100]! ^= 0x55;
    await writeFile(z1, bytes);
    await expect(verifyZip(z1, { digest: r1.digest, diskCrcs: c1 })).rejects.toThrow(/a\/b\/two.dcm/);
  });
});

describe('read-back details', () => {
  it('every local header is checked while the read-back CRC-32s are still pending; they are compared when they arrive', async () => {
    const zip = join(tmp.dir, 'pending.zip');
    const r = await writeZip(zip, sources, { level: 0, keepEntries: true });
    const crcs = await r.diskCrcs;
    // a damaged local header fails without waiting for checksums that never come
    const one = r.entries.find((e) => e.name === 'a/one.dcm')!;
    const bytes = Buffer.from(await readFile(zip));
    bytes[one.offset + 30]! ^= 0x20; // first byte of the local name: 'a' -> 'A'
    await writeFile(join(tmp.dir, 'pending-bad.zip'), bytes);
    await expect(verifyZip(join(tmp.dir, 'pending-bad.zip'), { digest: r.digest, diskCrcs: new Promise(() => undefined) })).rejects.toThrow(
      /a\/one.dcm: local header names A\/one.dcm/,
    );
    // an intact archive finishes only once the checksums have come, and uses them
    let release!: (c: Uint32Array) => void;
    const late = new Promise<Uint32Array>((resolve) => (release = resolve));
    let done = false;
    const v = verifyZip(zip, { digest: r.digest, diskCrcs: late }).then((x) => ((done = true), x));
    await new Promise((res) => setTimeout(res, 50));
    expect(done).toBe(false);
    const wrong = Uint32Array.from(crcs);
    wrong[0]! ^= 0x10;
    release(wrong);
    await expect(v).rejects.toThrow(new RegExp(`${r.entries[0]!.name.replace(/[.]/g, '\\.')}: CRC-32 mismatch`));
  });

  it('a long stored run gives the event loop a turn now and then (queued work is not held up to the end)', async () => {
    const list: ZipSource[] = [];
    for (let i = 0; i < 300; i++) list.push({ name: `f${i}.bin`, data: Buffer.alloc(1000, i) });
    let turned = -1;
    let n = 0;
    setImmediate(() => (turned = n));
    const r = await writeZip(join(tmp.dir, 'turns.zip'), list, { level: 0, onEntry: () => void n++ });
    expect(r.count).toBe(300);
    expect(turned).toBeGreaterThan(0);
    expect(turned).toBeLessThan(300);
  });

  it('AES: every entry has its own salt (keys are derived ahead; a salt used twice would repeat the keystream)', async () => {
    const list: ZipSource[] = [];
    for (let i = 0; i < 60; i++) list.push({ name: `e${i}.bin`, data: Buffer.alloc(100, i) });
    const zip = join(tmp.dir, 'salts.zip');
    const r = await writeZip(zip, list, { level: 0, password: Buffer.from('pw'), keepEntries: true });
    const raw = await readFile(zip);
    const salts = new Set(r.entries.map((e) => raw.subarray(e.offset + localHeaderLength(e), e.offset + localHeaderLength(e) + 16).toString('hex')));
    expect(salts.size).toBe(60);
    expect((await execa('7z', ['t', '-ppw', zip])).stdout).toContain('Everything is Ok');
  });

  it('duplicate names are refused by their hash, also non-ASCII; 20,000 distinct names are not mistaken for duplicates', async () => {
    const many: ZipSource[] = [];
    for (let i = 0; i < 20_000; i++) many.push({ name: `séries ${i % 37}/ø${i}.dcm`, data: Buffer.alloc(0) });
    const zip = join(tmp.dir, 'names.zip');
    expect((await writeZip(zip, many, { level: 0 })).count).toBe(20_000);
    await expect(
      writeZip(join(tmp.dir, 'dup-u.zip'), [{ name: 'ø/å.dcm', data: Buffer.from('1') }, { name: 'x', data: Buffer.from('2') }, { name: 'ø/å.dcm', data: Buffer.from('3') }], {
        level: 0,
      }),
    ).rejects.toThrow(/duplicate entry name "ø\/å.dcm"/);
    expect(existsSync(join(tmp.dir, 'dup-u.zip'))).toBe(false);
  });
});
