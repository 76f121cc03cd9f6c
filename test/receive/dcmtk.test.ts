/**
 * fiona-receive against DCMTK: echoscu, storescu with every transfer syntax DCMTK can write
 * (and JPEG 2000 / MPEG / HEVC data sets it sends without decoding), a whole study, four
 * associations at once. Every received file is checked byte for byte: its data set against
 * the source (and against what DCMTK's own storescp received from the same storescu), its
 * File Meta against the request, and the whole file with the DICOM core and dcmdump.
 */
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDicomFile } from '../../src/lib/dicom/index.js';
import { makeTempDir } from '../helpers/tmp.js';
import { dcmconv, dcmdump, echoscu, p10Parts, startStorescp, storescu } from '../peers/dcmtk.js';
import type { Peer } from '../peers/process.js';
import { synth, transferSyntaxFixtures, writeEncapsulated, type TsFixture } from './fixtures.js';
import { arrivedWithBytes, startReceive, type RunningReceiver } from './harness.js';

let dir: string;
let cleanup: () => Promise<void>;
let rx: RunningReceiver;
let scp: Peer & { port: number };
let scpDir: string;
let site: string;
let fixtures: TsFixture[];

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('fiona-receive-dcmtk-'));
  site = join(dir, 'site');
  scpDir = join(dir, 'storescp');
  await mkdir(scpDir);
  const [source] = await synth(join(dir, 'synth'), ['--series', '1', '--instances', '1', '--rows', '64', '--types', 't1', '--seed', 'ts']);
  fixtures = await transferSyntaxFixtures(join(dir), source as string);
  rx = await startReceive(site, ['--aet', 'FIONA']);
  // +B: storescp writes the received bytes as they are (bit-preserving), the oracle for what was sent.
  scp = await startStorescp(scpDir, { aet: 'FIONA', args: ['+xa', '+B'] });
}, 120_000);

afterAll(async () => {
  let code: number | undefined;
  try {
    code = await rx?.stop();
    await scp?.stop();
  } finally {
    await cleanup();
  }
  expect(code).toBe(0);
});

/** The stored event for a SOP Instance UID (waits for it). */
function storedFor(sop: string): Promise<Record<string, unknown>> {
  return rx.waitFor((e) => e.event === 'stored' && e.sop === sop, 20_000, `stored event for ${sop}`);
}

/** What storescp wrote for a SOP Instance UID (it names files <modality>.<sop>). */
async function storescpFile(sop: string): Promise<string> {
  const names = await readdir(scpDir);
  const name = names.find((n) => n.endsWith(`.${sop}`));
  if (!name) throw new Error(`storescp has no file for ${sop}: ${names.join(' ')}`);
  return join(scpDir, name);
}

/** Check one received file against its source and the request. */
async function checkReceived(ev: Record<string, unknown>, source: string, ts: string): Promise<void> {
  const path = String(ev.path);
  const src = await p10Parts(source);
  const got = await p10Parts(path);
  expect(path).toBe(join(site, 'archive', String(ev.study), String(ev.series), `${String(ev.sop)}.dcm`));
  expect(got.transferSyntax).toBe(ts);
  expect(ev.transferSyntax).toBe(ts);
  // A deflated data set of odd length is padded to even length by storescu (PS3.5 A.5):
  // the file written by dcmconv lacks that one NUL byte, the bytes on the wire have it.
  const expected = ts === '1.2.840.10008.1.2.1.99' && src.dataset.length % 2 === 1 ? Buffer.concat([src.dataset, Buffer.from([0])]) : src.dataset;
  expect(Buffer.compare(got.dataset, expected), 'data set bytes equal the source').toBe(0);
  expect((await stat(path)).size).toBe(ev.bytes);
  const header = await verifyDicomFile(path);
  expect(header.transferSyntaxUid).toBe(ts);
  expect(header.meta.length).toBeGreaterThanOrEqual(6);
  const metaDump = await dcmdump(path, ['-M', '+P', '0002,0002', '+P', '0002,0003', '+P', '0002,0010', '+P', '0002,0016']);
  expect(metaDump).toContain(`[${String(ev.sop)}]`);
  expect(metaDump).toContain(`[${String(ev.calling)}]`);
  expect(metaDump).toMatch(new RegExp(`\\(0002,0002\\) UI .*${String(ev.sopClass).replace(/\./g, '\\.')}|\\(0002,0002\\) UI =`));
}

describe('fiona-receive with DCMTK peers', () => {
  it('answers echoscu and reports the association', async () => {
    const r = await echoscu({ port: rx.port, calledAet: 'FIONA', callingAet: 'PINGER' });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const echo = await rx.waitFor((e) => e.event === 'echo' && e.calling === 'PINGER');
    expect(echo.peer).toBe('127.0.0.1');
    await rx.waitFor((e) => e.event === 'association' && e.state === 'released' && e.calling === 'PINGER');
  });

  const names = [
    'explicit-le',
    'implicit-le',
    'explicit-be',
    'deflated',
    'rle',
    'jpeg-baseline',
    'jpeg-extended',
    'jpeg-lossless-sv1',
    'jpeg-ls-lossless',
    'jpeg-ls-near-lossless',
  ];
  it.each(names)('stores %s from storescu byte for byte, as storescp does', async (name) => {
    const fx = fixtures.find((f) => f.name === name) as TsFixture;
    const sop = (await verifyDicomFile(fx.file)).string('SOPInstanceUID') as string;
    const calling = `TS${names.indexOf(name)}`;
    const r = await storescu([fx.file], { port: rx.port, calledAet: 'FIONA', callingAet: calling, args: fx.propose });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const ev = await rx.waitFor((e) => e.event === 'stored' && e.sop === sop && e.calling === calling);
    await checkReceived(ev, fx.file, fx.ts);
    // DCMTK's own receiver got the same data set bytes from the same sender.
    const r2 = await storescu([fx.file], { port: scp.port, calledAet: 'FIONA', args: fx.propose });
    expect(r2.exitCode, String(r2.stderr)).toBe(0);
    const theirs = await p10Parts(await storescpFile(sop));
    const ours = await p10Parts(String(ev.path));
    expect(Buffer.compare(ours.dataset, theirs.dataset), 'same data set bytes as storescp').toBe(0);
    expect(ours.transferSyntax).toBe(theirs.transferSyntax);
  });

  it.each([
    ['-xe (explicit little endian first)', ['-xe']],
    ['+C (all transfer syntaxes in one context)', ['+C']],
    ['-R (only the contexts needed)', ['-R']],
  ])('takes what storescu %s proposes, unchanged', async (_what, flags) => {
    const fx = fixtures.find((f) => f.name === 'explicit-le') as TsFixture;
    const sop = (await verifyDicomFile(fx.file)).string('SOPInstanceUID') as string;
    const calling = `P${flags.join('').replace(/[^A-Za-z]/g, '')}`;
    const r = await storescu([fx.file], { port: rx.port, calledAet: 'FIONA', callingAet: calling, args: flags });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    await checkReceived(await rx.waitFor((e) => e.event === 'stored' && e.sop === sop && e.calling === calling), fx.file, fx.ts);
  });

  it.each([
    ['JPEG 2000 lossless', '1.2.840.10008.1.2.4.90', '-xv'],
    ['JPEG 2000', '1.2.840.10008.1.2.4.91', '-xw'],
    ['MPEG2 MP@ML', '1.2.840.10008.1.2.4.100', '-xm'],
    ['MPEG-4 AVC/H.264', '1.2.840.10008.1.2.4.102', '-xn'],
    ['HEVC/H.265', '1.2.840.10008.1.2.4.107', '-x4'],
  ])('stores %s data sets as they are', async (_name, ts, flag) => {
    const sop = `1.2.826.0.1.3680043.9.7433.5.${ts.split('.').pop() as string}`;
    const file = join(dir, `enc-${ts}.dcm`);
    const frag = Buffer.from(Array.from({ length: 3001 }, (_, i) => (i * 31) & 0xff));
    await writeEncapsulated(file, ts, { study: '1.2.826.0.1.3680043.9.7433.3', series: '1.2.826.0.1.3680043.9.7433.4', sop }, [frag, frag.subarray(0, 100)]);
    const r = await storescu([file], { port: rx.port, calledAet: 'FIONA', args: [flag] });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    await checkReceived(await storedFor(sop), file, ts);
  });

  it('stores a whole study (storescu +sd) exactly as storescp does', async () => {
    const study = join(dir, 'study');
    const files = await synth(study, ['--series', '3', '--instances', '8', '--rows', '32', '--seed', 'study', '--types', 'localizer,t2,fmri']);
    const r = await storescu([study], { port: rx.port, calledAet: 'FIONA', callingAet: 'SCANNER', args: ['+sd', '+r'] });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const r2 = await storescu([study], { port: scp.port, calledAet: 'FIONA', args: ['+sd', '+r'] });
    expect(r2.exitCode, String(r2.stderr)).toBe(0);
    await rx.waitFor((e) => e.event === 'association' && e.calling === 'SCANNER' && e.state === 'released');
    const stored = rx.of('stored').filter((e) => e.calling === 'SCANNER');
    expect(stored).toHaveLength(files.length);
    expect(new Set(stored.map((e) => e.series)).size).toBe(3);
    for (const ev of stored) {
      const ours = await p10Parts(String(ev.path));
      const theirs = await p10Parts(await storescpFile(String(ev.sop)));
      expect(Buffer.compare(ours.dataset, theirs.dataset)).toBe(0);
    }
    // Nothing left behind in .arrived/, nothing in quarantine.
    expect(await arrivedWithBytes(site)).toEqual([]);
    expect(rx.of('quarantined')).toEqual([]);
  });

  it('takes four associations at once, each file whole', async () => {
    const src = join(dir, 'parallel');
    const files = await synth(src, ['--patients', '4', '--series', '2', '--instances', '10', '--rows', '64', '--seed', 'par']);
    // DCMTK-normalised copies, so the data set bytes sent are the file's own bytes.
    const byPatient = new Map<string, string[]>();
    for (const f of files) {
      const norm = `${f}.norm`;
      await dcmconv(f, norm, ['+te']);
      const patient = f.slice(src.length + 1).split('/')[0] as string;
      byPatient.set(patient, [...(byPatient.get(patient) ?? []), norm]);
    }
    expect(byPatient.size).toBe(4);
    const runs = [...byPatient.values()].map((list, i) => storescu(list, { port: rx.port, calledAet: 'FIONA', callingAet: `PAR${i}` }));
    const results = await Promise.all(runs);
    for (const r of results) expect(r.exitCode, String(r.stderr)).toBe(0);
    const accepted = rx.of('association').filter((e) => String(e.calling).startsWith('PAR') && e.state === 'accepted');
    expect(accepted).toHaveLength(4);
    for (const [i, list] of [...byPatient.values()].entries()) {
      await rx.waitFor((e) => e.event === 'association' && e.calling === `PAR${i}` && e.state === 'released');
      const stored = rx.of('stored').filter((e) => e.calling === `PAR${i}`);
      expect(stored).toHaveLength(list.length);
      for (const ev of stored) {
        const source = list.find((f) => f.includes(String(ev.sop))) as string;
        const a = await p10Parts(source);
        const b = await p10Parts(String(ev.path));
        expect(Buffer.compare(a.dataset, b.dataset)).toBe(0);
      }
    }
  });

  it('says so in the File Meta: fiona wrote it, who sent it', async () => {
    const ev = rx.of('stored')[0] as Record<string, unknown>;
    const bytes = await readFile(String(ev.path));
    expect(bytes.toString('latin1', 128, 132)).toBe('DICM');
    const header = await verifyDicomFile(String(ev.path));
    const meta = new Map(header.meta.map((m) => [m.tag, m]));
    expect(meta.has(0x00020012)).toBe(true); // ImplementationClassUID
    expect(meta.has(0x00020013)).toBe(true); // ImplementationVersionName
    const dump = await dcmdump(String(ev.path), ['-M']);
    expect(dump).toMatch(/\(0002,0013\) SH \[FIONA_/);
    expect(dump).toMatch(/\(0002,0001\) OB 00\\01/);
  });
});
