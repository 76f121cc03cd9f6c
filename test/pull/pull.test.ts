/**
 * fiona-pull against a real Orthanc on loopback: C-FIND (accession, patient ID), C-GET and
 * C-MOVE, with the stored data set bytes compared with what DCMTK's getscu / movescu
 * (+B, bit-preserving) store from the same PACS, compressed transfer syntaxes kept as
 * they are, and the failures: unknown study, refused association, unknown move destination.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile, readdir, mkdir, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../../src/lib/dicom/index.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startOrthanc, type Orthanc } from '../peers/orthanc.js';
import { freePort } from '../peers/ports.js';
import { DCMTK_ENV, requireProgram } from '../peers/process.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let pacs: Orthanc;
let fionaPort: number;
let dcmtkPort: number;
let summary: { patients: Array<{ patient: { PatientID: string }; studies: Array<{ StudyInstanceUID: string; AccessionNumber: string }> }> };
let studyA: string;
let studyB: string;
const compressed = new Map<string, string>(); // SOP -> transfer syntax of the compressed copies

function dataset(bytes: Buffer): Buffer {
  return bytes.subarray(parseDicom(bytes).datasetOffset);
}

function sopOf(bytes: Buffer): string {
  return parseDicom(bytes).string('SOPInstanceUID')!;
}

/** The data sets of the files under dir, by SOP Instance UID. */
async function datasetsBySop(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const f of await filesUnder(dir)) {
    const b = await readFile(f);
    m.set(sopOf(b), dataset(b));
  }
  return m;
}

beforeAll(async () => {
  for (const [bin, pkg] of [['getscu', 'dcmtk'], ['movescu', 'dcmtk'], ['dcmcrle', 'dcmtk'], ['dcmcjpeg', 'dcmtk'], ['dcmcjpls', 'dcmtk']] as const) requireProgram(bin, pkg);
  tmp = await makeTempDir('fiona-pull-');
  const syn = join(tmp.dir, 'syn');
  const r = await runTool('fiona-synth', ['--out', syn, '--patients', '2', '--series', '2', '--instances', '3', '--rows', '32', '--json', '--quiet']);
  expect(r.exitCode).toBe(0);
  const events = parseEvents(r.stdout);
  summary = events.find((e) => e.event === 'synth-summary') as unknown as typeof summary;
  studyA = summary.patients[0]!.studies[0]!.StudyInstanceUID;
  studyB = summary.patients[1]!.studies[0]!.StudyInstanceUID;
  const files = events.filter((e) => e.event === 'synthesized').map((e) => String(e.path));
  // Three instances of study A in compressed transfer syntaxes (made by DCMTK).
  const a = files.filter((f) => f.includes(studyA));
  const conv: Array<[string, string[], string]> = [
    ['dcmcrle', [], '1.2.840.10008.1.2.5'],
    ['dcmcjpeg', ['+e1'], '1.2.840.10008.1.2.4.70'],
    ['dcmcjpls', [], '1.2.840.10008.1.2.4.80'],
  ];
  for (let i = 0; i < conv.length; i++) {
    const [bin, args, ts] = conv[i]!;
    const src = a[i]!;
    const out = `${src}.c`;
    await execa(bin, [...args, src, out]);
    await cp(out, src);
    compressed.set(sopOf(await readFile(src)), ts);
  }
  fionaPort = await freePort();
  dcmtkPort = await freePort();
  pacs = await startOrthanc({
    modalities: { FIONA: { aet: 'FIONA', port: fionaPort }, DCMTK: { aet: 'DCMTK', port: dcmtkPort } },
  });
  await pacs.uploadAll(files);
});

afterAll(async () => {
  await pacs?.stop();
  await tmp?.cleanup();
});

const from = (): string => `${pacs.aet}@127.0.0.1:${pacs.dicomPort}`;

describe('fiona-pull', () => {
  it('C-GET leaves nothing behind in <out>/.arrived/ (the store\'s temp files made ahead are removed)', async () => {
    const out = join(tmp.dir, 'get-clean');
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'FIONA', '--method', 'get', '--study', studyA, '--out', out]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(parseEvents(r.stdout).filter((e) => e.event === 'stored')).toHaveLength(6);
    const left = existsSync(join(out, '.arrived')) ? await readdir(join(out, '.arrived')) : [];
    expect(left).toEqual([]);
  });

  it('C-FIND by accession number finds the study, C-GET stores it byte for byte as getscu +B does', async () => {
    const out = join(tmp.dir, 'get');
    const acc = summary.patients[0]!.studies[0]!.AccessionNumber;
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'FIONA', '--method', 'get', '--accession', acc, '--out', out]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.exitCode).toBe(0);
    const ev = parseEvents(r.stdout);
    const found = ev.find((e) => e.event === 'found') as { studies: Array<{ study: string; instances: number }> };
    expect(found.studies.map((s) => s.study)).toEqual([studyA]);
    const pulled = ev.find((e) => e.event === 'pulled')!;
    expect(pulled).toMatchObject({ study: studyA, completed: 6, failed: 0, stored: 6, expected: 6 });
    expect(ev.filter((e) => e.event === 'stored')).toHaveLength(6);

    // The reference: DCMTK getscu, bit-preserving, from the same PACS (uncompressed proposals).
    const ref = join(tmp.dir, 'getscu');
    await mkdir(ref);
    await execa('getscu', ['-S', '-aet', 'FIONA', '-aec', pacs.aet, '+B', '-od', ref, '127.0.0.1', String(pacs.dicomPort), '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyA}`], { env: DCMTK_ENV });
    const mine = await datasetsBySop(join(out, 'archive', studyA));
    const theirs = await datasetsBySop(ref);
    expect(mine.size).toBe(6);
    const placed = await filesUnder(join(out, 'archive', studyA));
    let compared = 0;
    for (const [sop, bytes] of mine) {
      const h = parseDicom(await readFile(placed.find((f) => f.endsWith(`${sop}.dcm`))!));
      if (compressed.has(sop)) {
        // Kept in the syntax the PACS holds it in: no transcoding anywhere.
        expect(h.transferSyntaxUid).toBe(compressed.get(sop));
        continue;
      }
      expect(bytes.equals(theirs.get(sop)!), sop).toBe(true);
      compared++;
    }
    expect(compared).toBe(3);
  });

  it('C-GET of compressed instances keeps their pixel data bytes exactly as uploaded', async () => {
    const out = join(tmp.dir, 'get');
    const placed = await filesUnder(join(out, 'archive', studyA));
    for (const [sop, ts] of compressed) {
      const id = await pacs.lookup(sop);
      const original = await pacs.fileOf(id!);
      const path = placed.find((f) => f.endsWith(`${sop}.dcm`))!;
      const mine = await readFile(path);
      const po = parseDicom(original).element('PixelData')!;
      const pm = parseDicom(mine).element('PixelData')!;
      expect(parseDicom(mine).transferSyntaxUid).toBe(ts);
      expect(mine.subarray(pm.headerOffset).equals(original.subarray(po.headerOffset)), sop).toBe(true);
    }
  });

  it('C-MOVE: fiona listens on --port, stores byte for byte as movescu +B does', async () => {
    const out = join(tmp.dir, 'move');
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'FIONA', '--port', String(fionaPort), '--study', studyA, '--out', out, '--json']);
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(String(r.stdout)) as { completed: number; failed: number; stored: number; method: string };
    expect(report).toMatchObject({ completed: 6, failed: 0, stored: 6, method: 'move' });
    const ref = join(tmp.dir, 'movescu');
    await mkdir(ref);
    await execa(
      'movescu',
      ['-S', '-aet', 'DCMTK', '-aem', 'DCMTK', '-aec', pacs.aet, '+P', String(dcmtkPort), '+xa', '+B', '-od', ref, '127.0.0.1', String(pacs.dicomPort), '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyA}`],
      // movescu +B writes into its working folder whatever -od says
      { env: DCMTK_ENV, cwd: ref },
    );
    const mine = await datasetsBySop(join(out, 'archive', studyA));
    const theirs = await datasetsBySop(ref);
    expect(theirs.size).toBe(6);
    for (const [sop, bytes] of theirs) expect(mine.get(sop)?.equals(bytes), sop).toBe(true);
  });

  it('C-FIND by patient ID, C-MOVE of every study found', async () => {
    const out = join(tmp.dir, 'by-patient');
    const pid = summary.patients[1]!.patient.PatientID;
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'FIONA', '--port', String(fionaPort), '--patient-id', pid, '--out', out]);
    expect(r.exitCode).toBe(0);
    const pulled = parseEvents(r.stdout).filter((e) => e.event === 'pulled');
    expect(pulled.map((e) => e.study)).toEqual([studyB]);
    expect((await filesUnder(join(out, 'archive', studyB))).length).toBe(6);
  });

  it('a study the PACS does not have: exit 2, the reason in the event and on stderr, nothing stored', async () => {
    const out = join(tmp.dir, 'none');
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'FIONA', '--method', 'get', '--study', '1.2.3.4.5.6.7', '--out', out]);
    expect(r.exitCode).toBe(2);
    const failed = parseEvents(r.stdout).find((e) => e.event === 'pull-failed')!;
    expect(String(failed.reason)).toMatch(/has no study 1\.2\.3\.4\.5\.6\.7/);
    expect(r.stderr).toMatch(/has no study/);
  });

  it('C-MOVE to a destination the PACS does not know: refused, with the reason', async () => {
    const out = join(tmp.dir, 'unknown-dest');
    const port = await freePort();
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'FIONA', '--dest-aet', 'STRANGER', '--port', String(port), '--study', studyA, '--out', out]);
    // Orthanc answers 0xC000 rather than 0xA801: either way the PACS's status and a hint.
    expect([2, 3]).toContain(r.exitCode);
    expect(r.stderr).toMatch(/C-MOVE of study .*(move destination unknown|does the PACS know the destination STRANGER)/);
    expect(await filesUnder(join(out, 'archive')).catch(() => [])).toEqual([]);
  });

  it('a calling AE title the PACS does not know: the query is refused, exit 3 with a hint', async () => {
    const r = await runTool('fiona-pull', ['--from', from(), '--aet', 'STRANGER', '--method', 'get', '--study', studyA, '--out', join(tmp.dir, 'stranger')]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/does the PACS know our AE title/);
  });

  it('a PACS that is not there: exit 3 with the reason', async () => {
    const port = await freePort();
    const r = await runTool('fiona-pull', ['--from', `NOBODY@127.0.0.1:${port}`, '--method', 'get', '--study', studyA, '--out', join(tmp.dir, 'x')]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/connection refused/);
  });

  it('bad options: exit 2', async () => {
    for (const args of [
      ['--study', studyA, '--out', 'x'],
      ['--from', 'not-an-address', '--study', studyA, '--out', 'x'],
      ['--from', from(), '--study', '1.2.a', '--out', 'x'],
      ['--from', from(), '--study', studyA, '--accession', 'A', '--out', 'x'],
      ['--from', from(), '--study', studyA, '--out', 'x', '--method', 'fetch'],
    ]) {
      const r = await runTool('fiona-pull', args);
      expect(r.exitCode, args.join(' ')).toBe(2);
    }
  });
});
