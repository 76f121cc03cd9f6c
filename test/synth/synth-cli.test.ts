import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { isValidUid } from '../../src/lib/dicom/uid.js';
import { synthPatient, uidFor } from '../../src/lib/synth/index.js';
import { listDicom, snapshot } from './files.js';

const SMALL = ['--patients', '2', '--series', '6', '--instances', '3', '--rows', '32'];

describe('fiona-synth command line', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    tmp = await makeTempDir('fiona-synth-cli-');
  });
  afterAll(async () => tmp.cleanup());

  it('writes byte-identical files for the same options, and other patients for another seed', async () => {
    const a = join(tmp.dir, 'a');
    const b = join(tmp.dir, 'b');
    const c = join(tmp.dir, 'c');
    for (const [out, seed] of [[a, '42'], [b, '42'], [c, '43']] as const) {
      const r = await runTool('fiona-synth', ['--out', out, '--seed', seed, ...SMALL, '--charset', 'latin1']);
      expect(r.exitCode, String(r.stderr)).toBe(0);
    }
    const sa = await snapshot(a);
    const sb = await snapshot(b);
    expect(sa.size).toBe(2 * 6 * 3);
    expect([...sb.keys()]).toEqual([...sa.keys()]);
    for (const [k, v] of sa) expect(Buffer.compare(v, sb.get(k)!), k).toBe(0);

    const sc = await snapshot(c);
    expect(sc.size).toBe(sa.size);
    const namesA = [0, 1].map((i) => synthPatient('42', i, 'latin1'));
    const namesC = [0, 1].map((i) => synthPatient('43', i, 'latin1'));
    expect(namesC.map((p) => p.PatientID)).not.toEqual(namesA.map((p) => p.PatientID));
    // No file name (SOP UID) in common, and seed 42's patient IDs appear nowhere in seed 43's files.
    const sopsA = new Set([...sa.keys()].map((k) => k.split('/').pop()));
    for (const k of sc.keys()) expect(sopsA.has(k.split('/').pop())).toBe(false);
    for (const buf of sc.values()) {
      for (const p of namesA) expect(buf.includes(Buffer.from(p.PatientID, 'latin1'))).toBe(false);
    }
  });

  it('lays files out as OUT/<PatientID>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm with valid UIDs', async () => {
    const out = join(tmp.dir, 'layout');
    const r = await runTool('fiona-synth', ['--out', out, '--seed', 'layout', '--studies-per-patient', '2', ...SMALL]);
    expect(r.exitCode).toBe(0);
    const files = await listDicom(out);
    expect(files).toHaveLength(2 * 2 * 6 * 3);
    const ids = new Set([0, 1].map((i) => synthPatient('layout', i).PatientID));
    for (const f of files) {
      const [pid, study, series, sop, ...rest] = f.split('/');
      expect(rest).toEqual([]);
      expect(ids.has(pid!)).toBe(true);
      for (const uid of [study!, series!, sop!.replace(/\.dcm$/, '')]) expect(isValidUid(uid), uid).toBe(true);
    }
    expect(new Set(files.map((f) => f.split('/')[1])).size).toBe(4); // 2 patients x 2 studies
    expect(new Set(files.map((f) => f.split('/')[2])).size).toBe(24);
  });

  it('--json prints one synthesized event per file and a summary; --manifest writes the same summary', async () => {
    const out = join(tmp.dir, 'json');
    const manifest = join(tmp.dir, 'manifest.json');
    const r = await runTool('fiona-synth', ['--out', out, '--seed', '9', ...SMALL, '--json', '--manifest', manifest]);
    expect(r.exitCode).toBe(0);
    const events = parseEvents(r.stdout);
    const files = events.filter((e) => e.event === 'synthesized');
    expect(files).toHaveLength(36);
    const onDisk = (await listDicom(out)).map((f) => join(out, f)).sort();
    expect(files.map((e) => e.path).sort()).toEqual(onDisk);
    for (const e of files) {
      const bytes = (await readFile(e.path as string)).length;
      expect(e.bytes).toBe(bytes);
      expect(e.sopClass).toBe('1.2.840.10008.5.1.4.1.1.4');
      expect(e.transferSyntax).toBe('1.2.840.10008.1.2.1');
      expect(String(e.path).endsWith(`${e.sop}.dcm`)).toBe(true);
    }
    const summary = events.at(-1)!;
    expect(summary.event).toBe('synth-summary');
    expect(summary.files).toBe(36);
    const fromFile = JSON.parse(await readFile(manifest, 'utf8')) as Record<string, unknown>;
    const { event: _e, time: _t, ...rest } = summary;
    expect(fromFile).toEqual(rest);
    const patients = summary.patients as Array<{ patient: { PatientID: string }; identifying: Record<string, string[]> }>;
    expect(patients.map((p) => p.patient.PatientID)).toEqual([0, 1].map((i) => synthPatient('9', i).PatientID));
    expect(patients[0]!.identifying.PatientName).toEqual([synthPatient('9', 0).PatientName]);
  });

  it('--paths prints one absolute path per line', async () => {
    const out = join(tmp.dir, 'paths');
    const r = await runTool('fiona-synth', ['--out', out, '--series', '2', '--instances', '2', '--rows', '16', '--paths']);
    expect(r.exitCode).toBe(0);
    const lines = String(r.stdout).trim().split('\n');
    expect(lines.sort()).toEqual((await listDicom(out)).map((f) => join(out, f)).sort());
  });

  it.each([
    [['--patients', '0'], /--patients: 0 is outside 1\.\./],
    [['--rows', 'abc'], /--rows: not an integer: abc/],
    [['--rows', '8'], /--rows: 8 is outside 16\.\./],
    [['--charset', 'ebcdic'], /--charset.*ebcdic.*Allowed choices/s],
    [['--transfer-syntax', 'jpeg'], /Allowed choices are explicit, implicit, big/],
    [['--types', 't1,pet'], /--types: unknown series type "pet"/],
    [['--bogus'], /unknown option '--bogus'/],
    [['--json', '--paths'], /--json and --paths cannot be combined/],
  ])('bad option %j exits 2 with a clear message', async (args, message) => {
    const r = await runTool('fiona-synth', ['--out', join(tmp.dir, 'bad'), ...args]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(message);
    expect(String(r.stdout)).toBe('');
  });

  it('missing --out exits 2', async () => {
    const r = await runTool('fiona-synth', ['--patients', '1']);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/--out DIR is required/);
  });

  it('a --config that cannot be read exits 2', async () => {
    const r = await runTool('fiona-synth', ['--out', join(tmp.dir, 'cfg'), '--config', join(tmp.dir, 'missing.json')]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/missing\.json.*cannot read/);
  });

  it('patient 0 is the same whatever --patients or --series says', async () => {
    const one = join(tmp.dir, 'one');
    const three = join(tmp.dir, 'three');
    await runTool('fiona-synth', ['--out', one, '--seed', 's', '--patients', '1', '--series', '2', '--instances', '2', '--rows', '16']);
    await runTool('fiona-synth', ['--out', three, '--seed', 's', '--patients', '3', '--series', '4', '--instances', '2', '--rows', '16']);
    const a = await snapshot(one);
    const b = await snapshot(three);
    expect(a.size).toBe(4);
    expect(b.size).toBe(24);
    for (const [k, v] of a) expect(Buffer.compare(v, b.get(k) ?? Buffer.alloc(0)), k).toBe(0);
  });

  it('--help explains the options and exit codes; --version prints the version', async () => {
    const h = await runTool('fiona-synth', ['--help']);
    expect(h.exitCode).toBe(0);
    for (const word of ['--out', '--seed', '--charset', '--transfer-syntax', '--manifest', 'Exit codes', 'localizer, t1, t2, flair, dwi, fmri']) {
      expect(String(h.stdout)).toContain(word);
    }
    const v = await runTool('fiona-synth', ['--version']);
    expect(v.exitCode).toBe(0);
    expect(String(v.stdout).trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('derives valid, stable 2.25 UIDs', () => {
    const u = uidFor('x', 1, 2);
    expect(u).toBe(uidFor('x', 1, 2));
    expect(u).not.toBe(uidFor('x', 1, 3));
    expect(u.startsWith('2.25.')).toBe(true);
    expect(isValidUid(u)).toBe(true);
    for (let i = 0; i < 200; i++) expect(isValidUid(uidFor('seed', i))).toBe(true);
  });
});
