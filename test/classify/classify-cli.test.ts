import { existsSync } from 'node:fs';
import { readFile, readlink, realpath, rm, writeFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/lib/dicom/index.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { dcmodify } from '../peers/dcmtk.js';
import { intoArchive, listJson, startTool, synth } from './helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
/** Two patients (Siemens, GE), six series each, 4 instances per series. */
let files: string[];

beforeAll(async () => {
  tmp = await makeTempDir('fiona-classify-');
  files = await synth(join(tmp.dir, 'synth'), ['--patients', '2', '--instances', '4', '--rows', '32', '--seed', 'classify']);
});
afterAll(async () => tmp.cleanup());

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

describe('fiona-classify backfill', () => {
  it('links, writes series JSON with FIONA fields and classifies the synth series types', async () => {
    const site = join(tmp.dir, 'site-backfill');
    const r = await runTool('fiona-classify', ['--site', site, join(tmp.dir, 'synth')]);
    expect(r.stderr).toMatch(/classified 48, quarantined 0, failed 0/);
    expect(r.exitCode).toBe(0);
    const events = parseEvents(r.stdout);
    expect(events).toHaveLength(48);
    expect(events.every((e) => e.event === 'classified')).toBe(true);
    expect(new Set(events.map((e) => e.sop)).size).toBe(48);

    const studies = (await readdir(join(site, 'raw'))).sort();
    expect(studies).toHaveLength(2);
    const byDescription = new Map<string, Record<string, unknown>>();
    for (const study of studies) {
      for (const name of await listJson(join(site, 'raw', study))) {
        const json = await readJson(join(site, 'raw', study, name));
        byDescription.set(String(json.SeriesDescription), json);
        expect(json.NumFiles).toBe(4);
        expect(json.StudyInstanceUID).toBe(study);
        expect(json.IncomingConnection).toEqual({ AETitleCaller: 'unknown', AETitleCalled: 'unknown', CallerIP: 'unknown' });
        for (const k of ['Modality', 'Manufacturer', 'ManufacturerModelName', 'SoftwareVersions', 'PatientID', 'PatientName', 'StudyDate', 'StudyTime', 'StudyDescription', 'SeriesNumber', 'EchoTime', 'RepetitionTime', 'ImageType', 'AcquisitionMatrix', 'SliceLocation']) {
          expect(json, `${String(json.SeriesDescription)} lacks ${k}`).toHaveProperty(k);
        }
      }
    }
    const types = (d: string): unknown => byDescription.get(d)?.ClassifyType;
    expect(types('t1_mprage_sag_p2_iso')).toEqual(['MR', 'SIEMENS', 'original', 'sagittal', 'T1']);
    expect(types('t2_tse_tra')).toEqual(['MR', 'SIEMENS', 'original', 'axial', 'T2']);
    expect(types('t2_tirm_tra_dark-fluid')).toEqual(['MR', 'SIEMENS', 'original', 'axial', 'FLAIR']);
    expect(types('ep2d_diff_3scan')).toEqual(['MR', 'SIEMENS', 'original', 'axial', 'DWI']);
    expect(types('ep2d_bold_rest')).toEqual(['MR', 'SIEMENS', 'original', 'axial', 'mosaic', 'fMRI']);
    expect(types('localizer')).toEqual(['MR', 'SIEMENS', 'original', 'axial', 'coronal', 'sagittal', 'localizer']);
    expect(types('Sag 3D T1 BRAVO')).toEqual(['MR', 'GE', 'original', 'sagittal', 'T1']);
    expect(types('3Plane Loc FGRE')).toContain('localizer');

    // Every instance linked to its file (absolute: the files are outside the site).
    for (const f of files) {
      const [study, series, sop] = f.split('/').slice(-3) as [string, string, string];
      const link = join(site, 'raw', study, series, sop.replace(/\.dcm$/, ''));
      expect(await readlink(link)).toBe(f);
    }
    // participants/<PatientID>/<StudyDate>_<StudyTime> -> raw/<Study> (relative).
    for (const json of byDescription.values()) {
      const link = join(site, 'participants', String(json.PatientID), `${String(json.StudyDate)}_${String(json.StudyTime)}`);
      expect(await readlink(link)).toBe(`../../raw/${String(json.StudyInstanceUID)}`);
      expect(await realpath(link)).toBe(await realpath(join(site, 'raw', String(json.StudyInstanceUID))));
    }
  });

  it('is idempotent: classifying the same files again changes no count', async () => {
    const site = join(tmp.dir, 'site-twice');
    await runTool('fiona-classify', ['--site', site, join(tmp.dir, 'synth')]);
    const r = await runTool('fiona-classify', ['--site', site, join(tmp.dir, 'synth')]);
    expect(r.exitCode).toBe(0);
    // A path that is one of the site's own links is followed, never linked to itself.
    const [study0, series0, sop0] = files[0]!.split('/').slice(-3) as [string, string, string];
    const link = join(site, 'raw', study0, series0, sop0.replace(/\.dcm$/, ''));
    const again = await runTool('fiona-classify', ['--site', site], { input: `${link}\n` });
    expect(again.exitCode).toBe(0);
    expect(parseEvents(again.stdout)[0]?.path).toBe(files[0]);
    expect(await readlink(link)).toBe(files[0]);
    for (const study of await readdir(join(site, 'raw'))) {
      for (const name of await listJson(join(site, 'raw', study))) {
        expect((await readJson(join(site, 'raw', study, name))).NumFiles).toBe(4);
      }
    }
  });

  it('refuses a rule file with an error at start, naming the entry and field', async () => {
    const bad = join(tmp.dir, 'bad-rules.json');
    await writeFile(bad, JSON.stringify([{ type: 'A', rules: [] }, { type: 'T1', id: 'X', rules: [{ tag: ['Modality'], operator: 'like', value: 'MR' }] }]));
    const r = await runTool('fiona-classify', ['--site', join(tmp.dir, 'site-bad'), '--rules', bad, files[0]!]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/entry 1 type "T1" id "X" rules\[0\]: field "operator"/);
    expect(existsSync(join(tmp.dir, 'site-bad', 'raw'))).toBe(false);
  });
});

describe('fiona-classify on a stream', () => {
  it('takes stored events, FIONA pipe lines and paths; warns on bad lines; quarantines non-DICOM files', async () => {
    const site = join(tmp.dir, 'site-stream');
    const archived = await intoArchive(files.slice(0, 8), site);
    const junk = join(site, 'archive', 'junk.dcm');
    await writeFile(junk, 'this is not DICOM, just text that arrived by mistake\n');
    const lines = [
      JSON.stringify({ event: 'stored', time: new Date().toISOString(), path: archived[0], calling: 'SCANNER1', called: 'FIONA', peer: '127.0.0.1' }),
      `SCANNER2,FIONA,10.0.0.7,${dirname(archived[1]!)},${archived[1]!.split('/').pop()}`,
      archived[2]!,
      'this line is nonsense',
      JSON.stringify({ event: 'association', time: new Date().toISOString(), status: 'accepted' }),
      junk,
      join(site, 'archive', 'no-such-file.dcm'),
      ...archived.slice(3),
    ];
    const r = await runTool('fiona-classify', ['--site', site, '--pass'], { input: `${lines.join('\n')}\n` });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/line 4: neither an event, a FIONA pipe line nor an absolute path: "this line is nonsense"/);
    expect(r.stderr).toMatch(/line 7: .*no-such-file\.dcm: no such file/);
    const events = parseEvents(r.stdout);
    const classified = events.filter((e) => e.event === 'classified');
    expect(classified).toHaveLength(8);
    expect(classified.find((e) => e.path === archived[0])?.calling).toBe('SCANNER1');
    expect(events.filter((e) => e.event === 'association')).toHaveLength(1);
    const q = events.find((e) => e.event === 'quarantined')!;
    expect(q.original).toBe(junk);
    expect(existsSync(junk)).toBe(false);
    expect(existsSync(String(q.path))).toBe(true);
    const reason = await readJson(`${String(q.path)}.reason.json`);
    expect(String(reason.reason)).toMatch(/not readable as DICOM/);

    // Links inside the site are relative; the connection of the first instance of a series is kept.
    const [study, series, sop] = archived[0]!.split('/').slice(-3) as [string, string, string];
    const link = join(site, 'raw', study, series, sop.replace(/\.dcm$/, ''));
    expect(await readlink(link)).toBe(`../../../archive/${study}/${series}/${sop}`);
    const json = await readJson(join(site, 'raw', study, `${series}.json`));
    expect(json.IncomingConnection).toEqual({ AETitleCaller: 'SCANNER1', AETitleCalled: 'FIONA', CallerIP: '127.0.0.1' });
    const [, series2] = archived[1]!.split('/').slice(-3) as [string, string, string];
    if (series2 !== series) {
      expect((await readJson(join(site, 'raw', study, `${series2}.json`))).IncomingConnection).toEqual({ AETitleCaller: 'SCANNER2', AETitleCalled: 'FIONA', CallerIP: '10.0.0.7' });
    }
  });

  it('keeps header values with /, .., NUL or control characters inside the site folders', async () => {
    const site = join(tmp.dir, 'site-escape');
    const [a, b, c] = await intoArchive(files.slice(24, 27), site);
    await dcmodify(a!, ['-m', 'PatientID=../../../../tmp/escaped', '-m', 'StudyDate=../..', '-m', 'StudyTime=..']);
    await dcmodify(b!, ['-m', 'SOPInstanceUID=1.2.3/../../../evil']);
    // A control character and a NUL inside PatientID (dcmodify cannot write those: patch the bytes).
    const bytes = await readFile(c!);
    const h = await readHeader(c!);
    const el = h.element('PatientID')!;
    bytes[el.valueOffset] = 0x00;
    bytes[el.valueOffset + 1] = 0x1b;
    await writeFile(c!, bytes);
    const r = await runTool('fiona-classify', ['--site', site], { input: `${[a, b, c].join('\n')}\n` });
    const events = parseEvents(r.stdout);
    expect(events.filter((e) => e.event === 'classified')).toHaveLength(2);
    const q = events.find((e) => e.event === 'quarantined');
    expect(String(q?.reason)).toMatch(/SOPInstanceUID is not a valid UID/);
    // Everything written lies under the site; nothing at the escape target.
    expect(existsSync('/tmp/escaped')).toBe(false);
    const participants = join(site, 'participants');
    for (const patient of await readdir(participants)) {
      expect(patient).toMatch(/^[A-Za-z0-9._-]+$/);
      expect(patient).not.toMatch(/^\./);
      for (const when of await readdir(join(participants, patient))) {
        expect(when).toMatch(/^[A-Za-z0-9._-]+$/);
        const target = resolve(participants, patient, await readlink(join(participants, patient, when)));
        expect(target.startsWith(join(site, 'raw') + '/')).toBe(true);
      }
    }
  });
});

describe('fiona-classify with two processes on one series', () => {
  it('loses no update: SliceLocation minimum, NumFiles and SeriesLevel failures from both survive', async () => {
    const src = join(tmp.dir, 'synth-concurrent');
    const series = await synth(src, ['--patients', '1', '--types', 't2', '--series', '1', '--instances', '40', '--rows', '16', '--seed', 'conc']);
    const site = join(tmp.dir, 'site-concurrent');
    const archived = await intoArchive(series, site);
    const withSlice = await Promise.all(archived.map(async (f) => ({ f, s: Number((await readHeader(f)).string('SliceLocation')) })));
    withSlice.sort((x, y) => x.s - y.s);
    const low = withSlice.slice(0, 20).map((x) => x.f);
    const high = withSlice.slice(20).map((x) => x.f);
    expect(withSlice[0]!.s).toBeLessThan(withSlice[20]!.s);
    const rules = join(tmp.dir, 'rules-concurrent.json');
    const threshold = (withSlice[19]!.s + withSlice[20]!.s) / 2;
    await writeFile(
      rules,
      JSON.stringify([
        { type: 'MR', rules: [{ tag: ['Modality'], value: '^MR$' }] },
        { type: 'upper', check: 'SeriesLevel', rules: [{ tag: ['0x0020', '0x1041'], operator: '>', value: threshold }] },
        { type: 'lower', check: 'SeriesLevel', rules: [{ tag: ['0x0020', '0x1041'], operator: '<', value: threshold }] },
      ]),
    );
    // Two writers at once, each feeding its half a few lines at a time so their flushes interleave.
    const feed = async (list: string[]): Promise<string> => {
      const p = startTool('fiona-classify', ['--site', site, '--rules', rules]);
      for (let i = 0; i < list.length; i++) {
        p.write(list[i]!);
        if (i % 3 === 2) await new Promise((r) => setTimeout(r, 60));
      }
      await p.end();
      expect(p.proc.exitCode).toBe(0);
      return p.stderr();
    };
    await Promise.all([feed(low), feed(high)]);
    const [study, seriesUid] = archived[0]!.split('/').slice(-3) as [string, string];
    const json = await readJson(join(site, 'raw', study, `${seriesUid}.json`));
    expect(json.NumFiles).toBe(40);
    expect(Number(json.SliceLocation)).toBe(withSlice[0]!.s);
    expect(json.ClassifyType).toEqual(['MR']);
    expect((json.ClassifyEntries as { failedSeriesLevel: string[] }).failedSeriesLevel).toEqual(['lower#0', 'upper#0']);
    expect(await readdir(join(site, 'raw', study, seriesUid))).toHaveLength(40);
    // No lock or temp file left behind.
    expect((await readdir(join(site, 'raw', study))).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('fiona-classify as a daemon', () => {
  it('reads FIONA lines from a FIFO and reloads its rules on SIGHUP', async () => {
    const site = join(tmp.dir, 'site-fifo');
    const archived = await intoArchive(files.slice(0, 8), site);
    const rules = join(tmp.dir, 'rules-hup.json');
    await writeFile(rules, JSON.stringify([{ type: 'BEFORE', rules: [{ tag: ['Modality'], value: 'MR' }] }]));
    const fifo = join(tmp.dir, 'classify.fifo');
    const p = startTool('fiona-classify', ['--site', site, '--rules', rules, '--pipe', fifo]);
    const line = (f: string): string => `SCANNER,FIONA,127.0.0.1,${dirname(f)},${f.split('/').pop()}\n`;
    const until = Date.now() + 10_000;
    while (!existsSync(fifo) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    // Writers come and go (as storescp's --exec-on-reception did): each opens, writes, closes.
    await writeFile(fifo, line(archived[0]!));
    await p.waitFor((ev) => ev.some((e) => e.event === 'classified'));
    expect(p.events[0]!.types).toEqual(['BEFORE']);

    await writeFile(rules, JSON.stringify([{ type: 'AFTER', rules: [{ tag: ['Modality'], value: 'MR' }] }]));
    p.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    const other = archived.find((f) => f.split('/').slice(-2)[0] !== archived[0]!.split('/').slice(-2)[0])!;
    await writeFile(fifo, line(other));
    await p.waitFor((ev) => ev.filter((e) => e.event === 'classified').length === 2);
    expect(p.events[1]!.types).toEqual(['AFTER']);

    // A broken rule file on SIGHUP is refused; the old rules stay.
    await writeFile(rules, '[{"type": "BROKEN", "rules": [{"tag": ["Modality"], "value": "(unclosed"}]}]');
    p.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    const third = archived.find((f) => f !== other && f.split('/').slice(-2)[0] === other.split('/').slice(-2)[0])!;
    await writeFile(fifo, line(third));
    await p.waitFor((ev) => ev.filter((e) => e.event === 'classified').length === 3);
    expect(p.events[2]!.types).toEqual(['AFTER']);
    expect(p.stderr()).toMatch(/rules not reloaded, keeping the old ones: .*entry 0 type "BROKEN"/);

    p.proc.kill('SIGTERM');
    await p.proc;
    expect(p.proc.exitCode).toBe(0);
    await rm(fifo, { force: true });
  });
});

describe('fiona-classify --check', () => {
  it("loads FIONA's own rule file and lists its types", async () => {
    const fixture = new URL('../fixtures/classify/fiona-abcd-classifyRules.json', import.meta.url).pathname;
    const r = await runTool('fiona-classify', ['--check', '--rules', fixture]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/68 entries, 31 types: GE, SIEMENS, PHILIPS, mosaic, original, localizer, ABCD-T1/);
  });
});

/** A Siemens CSA2 ("SV10") blob with one item per named value (an encoder independent of fiona's reader). */
function csa2(values: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(16);
  head.write('SV10', 0, 'latin1');
  head.set([4, 3, 2, 1], 4);
  head.writeUInt32LE(Object.keys(values).length, 8);
  head.writeUInt32LE(77, 12);
  parts.push(head);
  for (const [name, value] of Object.entries(values)) {
    const tag = Buffer.alloc(84);
    tag.write(name, 0, 'latin1');
    tag.writeInt32LE(1, 64); // vm
    tag.write('IS', 68, 'latin1');
    tag.writeInt32LE(6, 72); // syngodt
    tag.writeInt32LE(1, 76); // items
    tag.writeInt32LE(77, 80);
    const text = Buffer.from(`${value}\0`, 'latin1');
    const item = Buffer.alloc(16);
    [text.length, text.length, 77, text.length].forEach((x, i) => item.writeInt32LE(x, i * 4));
    parts.push(tag, item, text, Buffer.alloc((4 - (text.length % 4)) % 4));
  }
  return Buffer.concat(parts);
}

describe('fiona-classify and Siemens CSA headers', () => {
  it('gives rules FIONA\'s NumSlices and PhaseEncodingDirectionPositive, only from a SIEMENS CSA HEADER block', async () => {
    const src = join(tmp.dir, 'synth-csa');
    const list = await synth(src, ['--patients', '1', '--vendor', 'siemens', '--types', 'dwi,fmri', '--series', '2', '--instances', '1', '--rows', '16', '--seed', 'csa']);
    const [withCsa, without] = list as [string, string];
    const imageBlob = join(tmp.dir, 'csa-image.bin');
    const seriesBlob = join(tmp.dir, 'csa-series.bin');
    await writeFile(imageBlob, csa2({ PhaseEncodingDirectionPositive: '1', NumberOfImagesInMosaic: '60' }));
    await writeFile(seriesBlob, csa2({ MrPhoenixProtocol: '### ASCCONV BEGIN ###\nsGroupArray.asGroup[0].nSize\t = \t60\nsGroupArray.asGroup[0].dDistFact\t = \t0.2\n### ASCCONV END ###' }));
    await dcmodify(withCsa, ['-i', '(0029,0011)=SIEMENS CSA HEADER', '-if', `(0029,1110)=${imageBlob}`, '-if', `(0029,1120)=${seriesBlob}`]);
    const rules = join(tmp.dir, 'rules-csa.json');
    await writeFile(
      rules,
      JSON.stringify([
        { type: 'NS60', rules: [{ tag: ['NumSlices'], operator: '==', value: '60' }] },
        { type: 'PEPOS', rules: [{ tag: ['PhaseEncodingDirectionPositive'], operator: '==', value: '1' }] },
        { type: 'NOPE', rules: [{ tag: ['PhaseEncodingDirectionPositive'], operator: 'notexist' }] },
      ]),
    );
    const site = join(tmp.dir, 'site-csa');
    const r = await runTool('fiona-classify', ['--site', site, '--rules', rules, withCsa, without]);
    expect(r.exitCode).toBe(0);
    const types = new Map(parseEvents(r.stdout).map((e) => [e.path, e.types]));
    expect(types.get(withCsa)).toEqual(['NS60', 'PEPOS']);
    // fiona-synth's own private block (0029,10xx) is not a CSA header and is not read as one.
    expect(types.get(without)).toEqual(['NOPE']);
    const [study, series] = withCsa.split('/').slice(-3) as [string, string];
    const json = await readJson(join(site, 'raw', study, `${series}.json`));
    expect(json).toMatchObject({ NumSlices: '60', PhaseEncodingDirectionPositive: '1' });
  });
});
