/**
 * fiona-send to dicom:// against real peers on loopback: DCMTK storescp (bit-preserving)
 * and Orthanc. The stored data sets are compared byte for byte with the sent ones, in every
 * transfer syntax DCMTK makes, private tags included.
 */
import { execa } from 'execa';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTempDir } from '../helpers/tmp.js';
import { dcmodify, p10Parts, startStorescp, storescu } from '../peers/dcmtk.js';
import { startOrthanc, type Orthanc } from '../peers/orthanc.js';
import { freePort, waitForPort } from '../peers/ports.js';
import { requireProgram } from '../peers/process.js';
import { binPath, datasetOf, encodings, filesUnder, parseEvents, send, sopOf, startScriptScp, stopProc, synthStudy } from './helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let study: string[];
let variants: string[];

beforeAll(async () => {
  tmp = await makeTempDir('fiona-send-dicom-');
  study = await synthStudy(join(tmp.dir, 'study'));
  variants = await encodings(study[0]!, join(tmp.dir, 'enc'));
});
afterAll(async () => {
  await tmp?.cleanup();
});

/** storescp's output files by SOP Instance UID. */
async function storedBySop(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await filesUnder(dir)) out.set(await sopOf(f), f);
  return out;
}

describe('storescp (bit-preserving)', () => {
  test('every instance arrives with its data set byte for byte, in its own transfer syntax', async () => {
    const outDir = join(tmp.dir, 'scp1');
    await mkdir(outDir);
    const scp = await startStorescp(outDir, { aet: 'PACS', args: ['+xa', '+B'] });
    try {
      const files = [...study, ...variants];
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${scp.port}?calling=FIONA`, join(tmp.dir, 'study'), ...variants]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const events = parseEvents(r.stdout);
      const sent = events.filter((e) => e.event === 'sent');
      expect(sent).toHaveLength(files.length);
      expect(sent.every((e) => e.status === 'ok' && e.dimseStatus === 0)).toBe(true);
      // The transfer syntaxes went out unchanged (no re-encoding): deflate, RLE, JPEG ... are all there.
      const tss = new Set(sent.map((e) => e.transferSyntax));
      for (const ts of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80']) {
        expect(tss.has(ts), ts).toBe(true);
      }
      const summary = events.at(-1)!;
      expect(summary).toMatchObject({ event: 'send-summary', sent: files.length, failed: 0 });
      const stored = await storedBySop(outDir);
      for (const f of files) {
        const got = stored.get(await sopOf(f));
        expect(got, `${f} was not stored`).toBeDefined();
        const sentSet = await datasetOf(f);
        // A deflated data set of odd length goes out with its NUL pad (PS3.5 A.5).
        const expected = sentSet.length % 2 === 1 ? Buffer.concat([sentSet, Buffer.from([0])]) : sentSet;
        expect((await datasetOf(got!)).equals(expected), `data set of ${f}`).toBe(true);
      }
    } finally {
      await stopProc(scp.proc);
    }
  });

  test('instances larger than one write block (2 MiB, many PDUs) arrive byte for byte, one after another', async () => {
    // The first block of each instance is read ahead while the previous one waits for its
    // response; the rest is streamed. Both paths, and the hand-over between instances, are here.
    const big = await synthStudy(join(tmp.dir, 'big'), { series: 1, instances: 3, rows: 1024, seed: 'big' });
    const outDir = join(tmp.dir, 'scp-big');
    await mkdir(outDir);
    const scp = await startStorescp(outDir, { aet: 'PACS', args: ['+xa', '+B'] });
    try {
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${scp.port}?calling=FIONA`, join(tmp.dir, 'big')]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const stored = await storedBySop(outDir);
      for (const f of big) {
        const sentSet = await datasetOf(f);
        expect(sentSet.length).toBeGreaterThan(2 * 1024 * 1024);
        const got = stored.get(await sopOf(f));
        expect(got, `${f} was not stored`).toBeDefined();
        expect((await datasetOf(got!)).equals(sentSet), `data set of ${f}`).toBe(true);
      }
    } finally {
      await stopProc(scp.proc);
    }
  });

  test('a header longer than the first read (30 KB of text before the Study UID): described right, sent byte for byte', async () => {
    // The sender reads 16 KiB of each file's head first and grows the read for a longer header.
    const long = join(tmp.dir, 'long-header.dcm');
    await copyFile(study[0]!, long);
    const text = (c: string): string => c.repeat(10_000);
    await dcmodify(long, ['-nrc', '-i', `(0008,4000)=${text('a')}`, '-i', `(0010,4000)=${text('b')}`, '-i', `(0010,21B0)=${text('c')}`, '-m', '(0008,0018)=2.25.5151515151']);
    const head = await execa('dcmdump', ['+P', '0020,000d', '-s', long]);
    const studyUid = /\[([0-9.]+)\]/.exec(head.stdout)![1]!;
    const outDir = join(tmp.dir, 'scp-long');
    await mkdir(outDir);
    const scp = await startStorescp(outDir, { aet: 'PACS', args: ['+xa', '+B'] });
    try {
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${scp.port}?calling=FIONA`, long]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({ sop: '2.25.5151515151', study: studyUid, status: 'ok' });
      const sentSet = await datasetOf(long);
      expect(sentSet.indexOf(studyUid)).toBeGreaterThan(30_000);
      const stored = await filesUnder(outDir);
      expect(stored).toHaveLength(1);
      expect((await datasetOf(stored[0]!)).equals(sentSet)).toBe(true);
    } finally {
      await stopProc(scp.proc);
    }
  });

  test('a SOP class the peer does not accept fails with the reason; the rest arrive; exit 1', async () => {
    const outDir = join(tmp.dir, 'scp2');
    await mkdir(outDir);
    const odd = join(tmp.dir, 'odd.dcm');
    await copyFile(study[1]!, odd);
    await dcmodify(odd, ['-m', '(0008,0016)=1.2.826.0.1.3680043.9.7433.99.1', '-m', '(0008,0018)=2.25.4242424242']);
    const scp = await startStorescp(outDir, { aet: 'PACS', args: ['+xa', '+B'] });
    try {
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${scp.port}`, '--retries', '1', '--retry-delay', '100ms', study[0]!, odd, study[2]!]);
      expect(r.exitCode).toBe(1);
      const events = parseEvents(r.stdout);
      const failed = events.filter((e) => e.event === 'send-failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]!.path).toBe(odd);
      expect(String(failed[0]!.reason)).toMatch(/did not accept SOP class 1\.2\.826\.0\.1\.3680043\.9\.7433\.99\.1/);
      expect(failed[0]!.attempts).toBe(2);
      expect(events.filter((e) => e.event === 'sent')).toHaveLength(2);
      expect(events.some((e) => e.event === 'send-retry')).toBe(true);
      expect((await filesUnder(outDir)).length).toBe(2);
    } finally {
      await stopProc(scp.proc);
    }
  });

  test('a refused association is retried, then every file fails with the reason', async () => {
    const scp = await startStorescp(join(tmp.dir), { aet: 'PACS', args: ['--refuse'] });
    try {
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${scp.port}`, '--retries', '2', '--retry-delay', '100ms', study[0]!]);
      expect(r.exitCode).toBe(1);
      const events = parseEvents(r.stdout);
      const failed = events.find((e) => e.event === 'send-failed')!;
      expect(String(failed.reason)).toMatch(/association rejected/);
      expect(failed.attempts).toBe(3);
      expect(events.filter((e) => e.event === 'send-retry')).toHaveLength(2);
    } finally {
      await stopProc(scp.proc);
    }
  });

  test('a peer that is down, then comes up during the retries, gets everything', async () => {
    const outDir = join(tmp.dir, 'scp3');
    await mkdir(outDir);
    const port = await freePort();
    const run = execa(binPath('fiona-send'), ['--to', `dicom://PACS@127.0.0.1:${port}`, '--retries', '8', '--retry-delay', '300ms', '--max-delay', '600ms', join(tmp.dir, 'study')], { reject: false, env: { NO_COLOR: '1' } });
    // Bring the peer up once fiona-send has found it down and started retrying.
    await new Promise<void>((resolve) => {
      run.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('"send-retry"')) resolve();
      });
    });
    const scp = execa(requireProgram('storescp', 'dcmtk'), ['-aet', 'PACS', '-od', outDir, '+xa', '+B', String(port)], { reject: false, env: { TCP_NODELAY: '1' } });
    try {
      await waitForPort(port);
      const r = await run;
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const events = parseEvents(r.stdout);
      expect(events.some((e) => e.event === 'send-retry' && /connection refused/.test(String(e.reason)))).toBe(true);
      expect(events.filter((e) => e.event === 'sent')).toHaveLength(study.length);
      expect((await filesUnder(outDir)).length).toBe(study.length);
    } finally {
      await stopProc(scp);
    }
  });

  test('a peer that accepts the association but never answers: no response is a failure', async () => {
    const port = await freePort();
    const scp = await startScriptScp(tmp.dir, port, { silent: true });
    try {
      const r = await send(['--to', `dicom://SILENT@127.0.0.1:${port}`, '--retries', '0', '--timeout', '2s', study[0]!]);
      expect(r.exitCode).toBe(1);
      const failed = parseEvents(r.stdout).find((e) => e.event === 'send-failed')!;
      expect(String(failed.reason)).toMatch(/no response|no progress/);
    } finally {
      await scp.stop();
    }
  });

  test('a rejected instance (status A700) is retried, then fails with the status; the others are sent', async () => {
    const port = await freePort();
    const rejected = await sopOf(study[1]!);
    const scp = await startScriptScp(tmp.dir, port, { rejectSop: rejected, status: 0xa700 });
    try {
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${port}`, '--retries', '1', '--retry-delay', '100ms', ...study]);
      expect(r.exitCode).toBe(1);
      const events = parseEvents(r.stdout);
      const failed = events.filter((e) => e.event === 'send-failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ path: study[1], dimseStatus: 0xa700, attempts: 2 });
      expect(String(failed[0]!.reason)).toMatch(/out of resources/);
      expect(events.filter((e) => e.event === 'sent')).toHaveLength(study.length - 1);
    } finally {
      await scp.stop();
    }
  });
});

describe('Orthanc', () => {
  let pacs: Orthanc;
  beforeAll(async () => {
    pacs = await startOrthanc({ aet: 'RESEARCH' });
  });
  afterAll(async () => {
    await pacs?.stop();
  });

  test('Orthanc stores exactly what it stores from storescu, private tags included; several associations', async () => {
    // Orthanc re-encodes what it receives (explicit lengths, its own File Meta), so the
    // reference is the same file sent by DCMTK storescu into the same Orthanc.
    const files = [...study, ...variants];
    const r = await send(['--to', `dicom://RESEARCH@127.0.0.1:${pacs.dicomPort}?calling=FIONA`, '--associations', '3', ...files]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const viaFiona = new Map<string, Buffer>();
    for (const f of files) {
      const id = await pacs.lookup(await sopOf(f));
      expect(id, `${f} not in Orthanc`).toBeDefined();
      viaFiona.set(f, await pacs.fileOf(id!));
      await pacs.rest('DELETE', `/instances/${id}`);
    }
    // storescu lets Orthanc choose explicit little endian and converts (big endian) or cannot
    // convert (compressed, no codecs): the reference is made for the little endian files; for
    // every file, Orthanc's copy keeps the transfer syntax fiona sent.
    const viaDcmtk = files.filter((f) => !/(rle|jpeg|jpegls|deflated|big)\.dcm$/.test(f));
    const ref = await storescu(viaDcmtk, { port: pacs.dicomPort, calledAet: 'RESEARCH' });
    expect(ref.exitCode, String(ref.stderr)).toBe(0);
    for (const f of files) {
      const a = join(tmp.dir, 'a.dcm');
      await writeFile(a, viaFiona.get(f)!);
      expect((await p10Parts(a)).transferSyntax, `transfer syntax in Orthanc of ${f}`).toBe((await p10Parts(f)).transferSyntax);
      if (!viaDcmtk.includes(f)) continue;
      const b = join(tmp.dir, 'b.dcm');
      await writeFile(b, await pacs.fileOf((await pacs.lookup(await sopOf(f)))!));
      expect((await datasetOf(a)).equals(await datasetOf(b)), `Orthanc's copy of ${f}`).toBe(true);
    }
    const tags = await pacs.rest<Record<string, { Name: string }>>('GET', `/instances/${await pacs.lookup(await sopOf(study[0]!))}/tags`);
    expect(Object.keys(tags).some((t) => t.startsWith('0029,'))).toBe(true);
  });

  test('a wrong called AE title is refused by the PACS', async () => {
    const r = await send(['--to', `dicom://NOTTHEPACS@127.0.0.1:${pacs.dicomPort}`, '--retries', '0', study[0]!]);
    expect(r.exitCode).toBe(1);
    expect(String(parseEvents(r.stdout).find((e) => e.event === 'send-failed')!.reason)).toMatch(/rejected.*called AE title/);
  });
});

test('bad destinations are usage errors (exit 2)', async () => {
  for (const url of ['dicom://127.0.0.1:104', 'http://x/', 'dicom://A@h:99999', 'dicom://WAY_TOO_LONG_AE_TITLE_X@h:104', 'sftp://u:pw@h/x']) {
    const r = await execa(binPath('fiona-send'), ['--to', url, '/nonexistent'], { reject: false, env: { NO_COLOR: '1' } });
    expect(r.exitCode, url).toBe(2);
    expect(r.stderr).toMatch(/--to/);
  }
});
