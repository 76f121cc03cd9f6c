/**
 * fiona-anonymize as users run it: determinism across runs and projects, references that
 * still resolve, FIONA's mapping.json, byte-identical kept elements and pixel data, output
 * read by dcmdump and checked by dciodvfy, bad input, usage errors, burned-in annotation,
 * pseudonym tables, date shifts, stdin events.
 */
import { execa } from 'execa';
import { copyFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DicomElement, readHeaderFull } from '../../src/lib/dicom/index.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { dcmcjpls, dcmconv, dcmcrle, dcmdump, dump2dcm } from '../peers/dcmtk.js';
import { requireProgram } from '../peers/process.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let synth: string; // 2 patients x 2 studies x 3 series x 2 instances
let secret: string;
let secret2: string;

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  } catch {
    return [];
  }
  return out.sort();
}

async function anonymize(args: string[], opts: { input?: string } = {}) {
  const r = await runTool('fiona-anonymize', args, { timeout: 120_000, input: opts.input });
  return { code: r.exitCode, events: parseEvents(r.stdout), stderr: String(r.stderr) };
}

beforeAll(async () => {
  tmp = await makeTempDir('fiona-deid-cli-');
  synth = join(tmp.dir, 'synth');
  const r = await runTool('fiona-synth', ['--out', synth, '--patients', '2', '--studies-per-patient', '2', '--series', '3', '--instances', '2', '--rows', '32', '--seed', '21', '--no-fsync', '-q']);
  if (r.exitCode !== 0) throw new Error(String(r.stderr));
  secret = join(tmp.dir, 'a.key');
  secret2 = join(tmp.dir, 'b.key');
  await writeFile(secret, 'cli-test-secret-A-0123456789abcdef\n', { mode: 0o600 });
  await writeFile(secret2, 'cli-test-secret-B-0123456789abcdef\n', { mode: 0o600 });
}, 120_000);
afterAll(async () => tmp.cleanup());

/** SOP Instance UIDs of a folder's files, by file. */
async function sops(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of await listFiles(dir)) m.set(f, (await readHeaderFull(f)).string('SOPInstanceUID')!);
  return m;
}

describe('repeatable, keyed pseudonyms', () => {
  it('the same input, project and secret give byte-identical output; another project or secret other UIDs', async () => {
    const a = join(tmp.dir, 'det-a');
    const b = join(tmp.dir, 'det-b');
    const c = join(tmp.dir, 'det-c');
    const d = join(tmp.dir, 'det-d');
    // Worker threads (each running the whole pipeline) and one thread agree byte for byte,
    // and report the files in the same order (the input order, whichever worker finished first).
    const ra = await anonymize(['--out', a, '--secret-file', secret, '--threads', '2', synth]);
    const rb = await anonymize(['--out', b, '--secret-file', secret, '--threads', '1', synth]);
    expect([ra.code, rb.code]).toEqual([0, 0]);
    const sources = (r: typeof ra): unknown[] => r.events.filter((e) => e.event === 'anonymized').map((e) => e.source);
    expect(sources(ra).length).toBe(24);
    expect(sources(ra)).toEqual(sources(rb));
    expect(sources(ra)).toEqual([...sources(ra)].sort());
    const fa = await listFiles(a);
    const fb = await listFiles(b);
    expect(fa.length).toBe(24);
    expect(fa.map((f) => f.slice(a.length))).toEqual(fb.map((f) => f.slice(b.length)));
    for (let k = 0; k < fa.length; k++) expect((await readFile(fa[k]!)).equals(await readFile(fb[k]!))).toBe(true);
    // One file with threads to spare: done (by the calling thread), the same bytes.
    const one = join(tmp.dir, 'det-one');
    const firstInput = (await listFiles(synth)).filter((f) => f.endsWith('.dcm')).sort()[0]!;
    const r1 = await anonymize(['--out', one, '--secret-file', secret, '--threads', '4', firstInput]);
    expect(r1.code).toBe(0);
    const oneOut = String(r1.events[0]!.path);
    expect((await readFile(oneOut)).equals(await readFile(join(b, oneOut.slice(one.length))))).toBe(true);
    // Another project (its name is keyed in) and another secret give other UIDs everywhere.
    const project = join(tmp.dir, 'other.json');
    await writeFile(project, JSON.stringify({ name: 'other-project', secretFile: secret }));
    expect((await anonymize(['--out', c, '--project', project, synth])).code).toBe(0);
    expect((await anonymize(['--out', d, '--secret-file', secret2, synth])).code).toBe(0);
    const uidsA = new Set((await sops(a)).values());
    for (const other of [c, d]) {
      const u = [...(await sops(other)).values()];
      expect(u.length).toBe(24);
      expect(u.filter((x) => uidsA.has(x))).toEqual([]);
    }
  });

  it('references between instances still resolve (ReferencedImageSequence, SourceImageSequence, study links)', async () => {
    const out = join(tmp.dir, 'refs');
    expect((await anonymize(['--out', out, '--secret-file', secret, synth])).code).toBe(0);
    const inputs = await listFiles(synth);
    const inSops = new Set<string>();
    const inStudies = new Set<string>();
    for (const f of inputs.filter((x) => x.endsWith('.dcm'))) {
      const h = await readHeaderFull(f);
      inSops.add(h.string('SOPInstanceUID')!);
      inStudies.add(h.string('StudyInstanceUID')!);
    }
    const outSops = new Set<string>();
    const outStudies = new Set<string>();
    const refs: Array<[string, string]> = [];
    for (const f of await listFiles(out)) {
      const h = await readHeaderFull(f);
      outSops.add(h.string('SOPInstanceUID')!);
      outStudies.add(h.string('StudyInstanceUID')!);
      const walk = (list: DicomElement[], seq: number): void => {
        for (const el of list) {
          if (el.tag === 0x00081155) for (const v of h.valuesOf(el)) refs.push([seq.toString(16), v]);
          for (const item of el.items ?? []) walk(item, el.tag);
        }
      };
      walk(h.elements, 0);
    }
    const image = refs.filter(([s]) => s === '81140' || s === '82112');
    const study = refs.filter(([s]) => s === '81110');
    expect(image.length).toBeGreaterThan(10);
    expect(study.length).toBeGreaterThan(10);
    // Every image reference points to an instance of the output (synth refers within the set).
    expect(image.filter(([, v]) => !outSops.has(v))).toEqual([]);
    // Study references to studies of the set point to their new UIDs; none is an original.
    expect(study.filter(([, v]) => inStudies.has(v) || inSops.has(v))).toEqual([]);
    expect(study.filter(([, v]) => outStudies.has(v)).length).toBeGreaterThan(0);
  });
});

describe('output', () => {
  let out: string;
  let events: Array<Record<string, unknown>>;
  beforeAll(async () => {
    out = join(tmp.dir, 'main');
    const r = await anonymize(['--out', out, '--secret-file', secret, '--mapping', join(tmp.dir, 'mapping.json'), '--option', 'retain-longitudinal-modified-dates', synth]);
    expect(r.code).toBe(0);
    events = r.events;
  }, 120_000);

  it('writes an anonymized event per instance and a summary', () => {
    const done = events.filter((e) => e.event === 'anonymized');
    expect(done.length).toBe(24);
    for (const e of done) {
      expect(String(e.path)).toBe(join(out, String(e.study), String(e.series), `MR.${String(e.sop)}.dcm`));
      expect(String(e.source).startsWith(synth)).toBe(true);
    }
    const summary = events.at(-1)!;
    expect(summary).toMatchObject({ event: 'anonymize-summary', anonymized: 24, quarantined: 0, failed: 0 });
  });

  it('writes FIONA\'s mapping.json and merges later runs into it', async () => {
    const mapping = JSON.parse(await readFile(join(tmp.dir, 'mapping.json'), 'utf8')) as Record<string, Record<string, string>>;
    expect(Object.keys(mapping).sort()).toEqual(['SeriesInstanceUID', 'StudyInstanceUID']);
    expect(Object.keys(mapping.StudyInstanceUID!).length).toBe(4);
    expect(Object.keys(mapping.SeriesInstanceUID!).length).toBe(12);
    const newStudies = new Set(events.filter((e) => e.event === 'anonymized').map((e) => e.study));
    expect(new Set(Object.values(mapping.StudyInstanceUID!))).toEqual(newStudies);
    const extra = join(tmp.dir, 'extra.dump');
    await writeFile(extra, '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]\n(0008,0018) UI [1.2.3.4.1]\n(0008,0060) CS [OT]\n(0020,000d) UI [1.2.3.4.2]\n(0020,000e) UI [1.2.3.4.3]\n');
    await dump2dcm(extra, join(tmp.dir, 'extra.dcm'));
    expect((await anonymize(['--out', join(tmp.dir, 'extra-out'), '--secret-file', secret, '--mapping', join(tmp.dir, 'mapping.json'), join(tmp.dir, 'extra.dcm')])).code).toBe(0);
    const merged = JSON.parse(await readFile(join(tmp.dir, 'mapping.json'), 'utf8')) as Record<string, Record<string, string>>;
    expect(Object.keys(merged.StudyInstanceUID!).length).toBe(5);
    expect(merged.StudyInstanceUID!['1.2.3.4.2']).toMatch(/^2\.25\.\d+$/);
  });

  it('keeps pixel data and every element the profile keeps byte for byte', async () => {
    const bySource = new Map(events.filter((e) => e.event === 'anonymized').map((e) => [String(e.source), String(e.path)]));
    const unchanged = [0x00280010, 0x00280011, 0x00280100, 0x00200032, 0x00200037, 0x00180050, 0x00180080, 0x00080060, 0x00080070, 0x7fe00010];
    let compared = 0;
    for (const [src, dst] of bySource) {
      const a = await readHeaderFull(src, { stopBeforePixels: false });
      const b = await readHeaderFull(dst, { stopBeforePixels: false });
      const ra = await readFile(src);
      const rb = await readFile(dst);
      for (const tag of unchanged) {
        const ea = a.element(tag);
        const eb = b.element(tag);
        if (!ea) continue;
        expect(eb, `${tag.toString(16)} in ${dst}`).toBeDefined();
        expect(rb.subarray(eb!.headerOffset, eb!.end).equals(ra.subarray(ea.headerOffset, ea.end))).toBe(true);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(200);
  });

  it('is read by dcmdump, and dciodvfy finds no error the input did not have', async () => {
    const dciodvfy = requireProgram('dciodvfy', 'dicom3tools');
    const errors = async (f: string): Promise<Set<string>> => {
      const r = await execa(dciodvfy, [f], { reject: false });
      return new Set(String(r.stderr).split('\n').filter((l) => /^Error/.test(l)).map((l) => l.replace(/Element=<[^>]*>/, '').trim()));
    };
    const pairs = events.filter((e) => e.event === 'anonymized').map((e) => [String(e.source), String(e.path)] as const);
    for (const [src, dst] of pairs.slice(0, 8)) {
      const text = await dcmdump(dst);
      expect(text).toContain('(0012,0062) CS [YES]');
      expect(text).toContain('DeidentificationMethodCodeSequence');
      const before = await errors(src);
      const after = await errors(dst);
      expect([...after].filter((e) => !before.has(e))).toEqual([]);
    }
  });

  it('shifts dates by one offset per patient: intervals between a patient\'s studies stay exact', async () => {
    const byPatient = new Map<string, Array<{ before: string; after: string }>>();
    for (const e of events.filter((x) => x.event === 'anonymized')) {
      const a = await readHeaderFull(String(e.source));
      const b = await readHeaderFull(String(e.path));
      const list = byPatient.get(a.string('PatientID')!) ?? [];
      list.push({ before: a.string('StudyDate')!, after: b.string('StudyDate')! });
      byPatient.set(a.string('PatientID')!, list);
      expect(b.string('LongitudinalTemporalInformationModified')).toBe('MODIFIED');
    }
    const day = (d: string): number => Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8)) / 86_400_000;
    const offsets = new Set<number>();
    for (const list of byPatient.values()) {
      const o = new Set(list.map((x) => day(x.after) - day(x.before)));
      expect(o.size).toBe(1);
      const [v] = [...o];
      expect(v).toBeLessThan(0);
      expect(v).toBeGreaterThanOrEqual(-365);
      offsets.add(v!);
    }
    expect(byPatient.size).toBe(2);
  });
});

describe('bad input: reported, quarantined with a reason, the rest of the batch done', () => {
  it('unreadable, truncated, no SOP Instance UID, non-DICOM: exit 1, nothing half-written', async () => {
    const dir = join(tmp.dir, 'bad-in');
    await mkdir(dir, { recursive: true });
    const good = (await listFiles(synth)).filter((f) => f.endsWith('.dcm')).slice(0, 3);
    for (const [k, f] of good.entries()) await copyFile(f, join(dir, `good-${k}.dcm`));
    await writeFile(join(dir, 'garbage.dcm'), Buffer.alloc(300, 0x41));
    const whole = await readFile(good[0]!);
    await writeFile(join(dir, 'truncated.dcm'), whole.subarray(0, whole.length - 500));
    await writeFile(join(dir, 'nosop.dump'), '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]\n(0010,0010) PN [Secret^Person]\n(0020,000d) UI [1.2.3.9.1]\n(0020,000e) UI [1.2.3.9.2]\n');
    await dump2dcm(join(dir, 'nosop.dump'), join(dir, 'nosop.dcm'));
    const out = join(tmp.dir, 'bad-out');
    const q = join(tmp.dir, 'bad-q');
    const r = await anonymize(['--out', out, '--secret-file', secret, '--quarantine', q, dir]);
    expect(r.code).toBe(1);
    const quarantined = r.events.filter((e) => e.event === 'quarantined');
    const reasons = Object.fromEntries(quarantined.map((e) => [String(e.source).split('/').pop(), String(e.reason)]));
    expect(reasons['garbage.dcm']).toMatch(/not readable as DICOM/);
    expect(reasons['truncated.dcm']).toMatch(/not readable as DICOM|truncated/);
    expect(reasons['nosop.dcm']).toMatch(/SOP Instance UID \(0008,0018\) is missing/);
    expect(reasons['nosop.dump']).toMatch(/not readable as DICOM/);
    expect(r.events.filter((e) => e.event === 'anonymized').length).toBe(3);
    expect(r.stderr).toMatch(/not released: .*garbage\.dcm/);
    // Copies with reason files in quarantine; the inputs stay where they were.
    const qFiles = await listFiles(q);
    expect(qFiles.filter((f) => f.endsWith('.reason.json')).length).toBe(4);
    expect((await stat(join(dir, 'garbage.dcm'))).size).toBe(300);
    // The output holds exactly the three good instances: no temp files, no partial files.
    const outFiles = await listFiles(out);
    expect(outFiles.length).toBe(3);
    expect(outFiles.filter((f) => f.split('/').pop()!.startsWith('.'))).toEqual([]);
  });

  it('refuses bad usage with exit 2 and a message naming the problem', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--out', join(tmp.dir, 'u1'), '--secret-file', secret, '--option', 'retain-everything', synth], /unknown option "retain-everything"/],
      [['--out', join(tmp.dir, 'u2'), '--secret-file', secret, '--project', 'no-such-project', synth], /unknown project "no-such-project"/],
      [['--out', join(tmp.dir, 'u3'), synth], /a secret is required \(UIDs are replaced/],
      [['--out', join(tmp.dir, 'u4'), '--secret-file', join(tmp.dir, 'missing.key'), synth], /secret file .*missing\.key: no such file/],
      [['--out', join(tmp.dir, 'u5'), '--secret-file', secret, '--set', 'NoSuchTag=1', synth], /not a DICOM tag or keyword/],
      [['--out', join(tmp.dir, 'u6'), '--secret-file', secret, '--date-shift', 'soon', synth], /--date-shift/],
      [['--secret-file', secret, synth], /--out DIR is required/],
    ];
    for (const [args, message] of cases) {
      const r = await anonymize(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.events).toEqual([]);
    }
    // An output folder that cannot be made: a resource problem, exit 3.
    await writeFile(join(tmp.dir, 'a-file'), 'x');
    const r = await anonymize(['--out', join(tmp.dir, 'a-file', 'sub'), '--secret-file', secret, synth]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/output folder .* is not writable/);
  });
});

describe('burned-in annotation', () => {
  let burned: string[];
  beforeAll(async () => {
    const dir = join(tmp.dir, 'burned-synth');
    const r = await runTool('fiona-synth', ['--out', dir, '--patients', '1', '--series', '2', '--instances', '1', '--rows', '64', '--burned-in', '--seed', '5', '--no-fsync', '-q']);
    expect(r.exitCode).toBe(0);
    burned = [];
    for (const f of await listFiles(dir)) if ((await readHeaderFull(f)).string('BurnedInAnnotation') === 'YES') burned.push(f);
    expect(burned.length).toBe(1);
  }, 60_000);

  it('is quarantined by default, with the reason', async () => {
    const r = await anonymize(['--out', join(tmp.dir, 'b1'), '--secret-file', secret, burned[0]!]);
    expect(r.code).toBe(1);
    expect(String(r.events[0]!.reason)).toMatch(/burned-in identity: BurnedInAnnotation is YES/);
    expect(await listFiles(join(tmp.dir, 'b1'))).toEqual([]);
  });

  it('is released with the project\'s rectangles blanked (uncompressed), marked Clean Pixel Data', async () => {
    const project = join(tmp.dir, 'mask.json');
    await writeFile(project, JSON.stringify({ name: 'mask', secretFile: secret, burnedIn: { mask: [{ x: 0, y: 0, width: 64, height: 10 }] } }));
    const r = await anonymize(['--out', join(tmp.dir, 'b2'), '--project', project, burned[0]!]);
    expect(r.code).toBe(0);
    const a = await readHeaderFull(burned[0]!, { stopBeforePixels: false });
    const b = await readHeaderFull(String(r.events[0]!.path), { stopBeforePixels: false });
    const pa = a.bytesOf(a.element(0x7fe00010)!)!;
    const pb = b.bytesOf(b.element(0x7fe00010)!)!;
    expect(pb.length).toBe(pa.length);
    const rowBytes = 64 * 2;
    expect(pb.subarray(0, 10 * rowBytes).every((x) => x === 0)).toBe(true);
    expect(pa.subarray(0, 10 * rowBytes).some((x) => x !== 0)).toBe(true);
    expect(Buffer.from(pb.subarray(10 * rowBytes)).equals(Buffer.from(pa.subarray(10 * rowBytes)))).toBe(true);
    expect(b.string('BurnedInAnnotation')).toBe('NO');
    expect(await dcmdump(String(r.events[0]!.path))).toContain('[113101]');
  });

  it('refuses a mask on compressed pixel data with a clear message; "allow" releases it', async () => {
    const rle = join(tmp.dir, 'burned-rle.dcm');
    await dcmcrle(burned[0]!, rle);
    const project = join(tmp.dir, 'mask2.json');
    await writeFile(project, JSON.stringify({ name: 'mask', secretFile: secret, burnedIn: { mask: [{ x: 0, y: 0, width: 64, height: 10 }] } }));
    const r = await anonymize(['--out', join(tmp.dir, 'b3'), '--project', project, rle]);
    expect(r.code).toBe(1);
    expect(String(r.events[0]!.reason)).toMatch(/pixel data is compressed \(transfer syntax 1\.2\.840\.10008\.1\.2\.5\).*decompress/);
    const allow = join(tmp.dir, 'allow.json');
    await writeFile(allow, JSON.stringify({ name: 'mask', secretFile: secret, burnedIn: { action: 'allow' } }));
    const r2 = await anonymize(['--out', join(tmp.dir, 'b4'), '--project', allow, rle]);
    expect(r2.code).toBe(0);
  });

  it('is quarantined when fiona-classify put the series in CHECKBURNEDINFO (--site)', async () => {
    const site = join(tmp.dir, 'site');
    const file = (await listFiles(synth)).find((f) => f.endsWith('.dcm'))!;
    const h = await readHeaderFull(file);
    await mkdir(join(site, 'raw', h.string('StudyInstanceUID')!), { recursive: true });
    await writeFile(join(site, 'raw', h.string('StudyInstanceUID')!, `${h.string('SeriesInstanceUID')}.json`), JSON.stringify({ ClassifyType: ['MR', 'CHECKBURNEDINFO'] }));
    const r = await anonymize(['--out', join(tmp.dir, 'b5'), '--secret-file', secret, '--site', site, file]);
    expect(r.code).toBe(1);
    expect(String(r.events[0]!.reason)).toMatch(/classified CHECKBURNEDINFO/);
    expect((await listFiles(join(site, 'quarantine', 'anonymize'))).length).toBe(2);
  });
});

describe('pseudonyms and overrides', () => {
  it('takes fixed pseudonyms and --set by keyword and tag', async () => {
    const file = (await listFiles(synth)).find((f) => f.endsWith('.dcm'))!;
    const r = await anonymize(['--out', join(tmp.dir, 'p1'), '--secret-file', secret, '--patient-id', 'ABCD_001', '--patient-name', 'ABCD^001', '--set', 'InstitutionName=PROJECT ABCD', '--set', '0008,1030=Baseline', file]);
    expect(r.code).toBe(0);
    const h = await readHeaderFull(String(r.events[0]!.path));
    expect([h.string('PatientID'), h.string('PatientName'), h.string('InstitutionName'), h.string('StudyDescription')]).toEqual(['ABCD_001', 'ABCD^001', 'PROJECT ABCD', 'Baseline']);
  });

  it('maps patients through a table and quarantines those not in it', async () => {
    const files = (await listFiles(synth)).filter((f) => f.endsWith('.dcm'));
    const ids = new Set<string>();
    for (const f of files) ids.add((await readHeaderFull(f)).string('PatientID')!);
    const [first] = [...ids];
    const table = join(tmp.dir, 'ids.csv');
    await writeFile(table, `original,pseudonym\n${first},STUDY_P01\n`);
    const r = await anonymize(['--out', join(tmp.dir, 'p2'), '--secret-file', secret, '--pseudonym-table', table, synth]);
    expect(r.code).toBe(1);
    const done = r.events.filter((e) => e.event === 'anonymized');
    expect(done.length).toBe(12);
    for (const e of done) expect((await readHeaderFull(String(e.path))).string('PatientID')).toBe('STUDY_P01');
    const q = r.events.filter((e) => e.event === 'quarantined');
    expect(q.length).toBe(12);
    expect(String(q[0]!.reason)).toMatch(/not in the pseudonym table/);
    expect(String(q[0]!.reason)).not.toContain([...ids][1]!);
  });

  it('applies a fixed --date-shift exactly and a project\'s regex rewrites and keep list', async () => {
    const file = (await listFiles(synth)).find((f) => f.endsWith('.dcm'))!;
    const project = join(tmp.dir, 'rw.json');
    await writeFile(project, JSON.stringify({
      name: 'rw', secretFile: secret, options: ['clean-descriptors'],
      keep: ['SeriesDescription'], rewrite: [{ tag: 'SeriesDescription', pattern: '_', replacement: ' ' }],
    }));
    const r = await anonymize(['--out', join(tmp.dir, 'p3'), '--project', project, '--date-shift', '-42', file]);
    expect(r.code).toBe(0);
    const a = await readHeaderFull(file);
    const b = await readHeaderFull(String(r.events[0]!.path));
    const day = (d: string): number => Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8)) / 86_400_000;
    expect(day(b.string('StudyDate')!) - day(a.string('StudyDate')!)).toBe(-42);
    expect(b.string('SeriesDescription')).toBe(a.string('SeriesDescription')!.replace(/_/g, ' '));
  });
});

describe('input from stdin', () => {
  it('takes stored events, paths and study-complete events, and passes other events with --pass', async () => {
    const files = (await listFiles(synth)).filter((f) => f.endsWith('.dcm'));
    // A site whose archive holds one study, announced by a study-complete event.
    const site = join(tmp.dir, 'stdin-site');
    const h = await readHeaderFull(files[0]!);
    const study = h.string('StudyInstanceUID')!;
    const studyFiles = [];
    for (const f of files) {
      const x = await readHeaderFull(f);
      if (x.string('StudyInstanceUID') !== study) continue;
      const dst = join(site, 'archive', study, x.string('SeriesInstanceUID')!, `${x.string('SOPInstanceUID')}.dcm`);
      await mkdir(join(dst, '..'), { recursive: true });
      await copyFile(f, dst);
      studyFiles.push(dst);
    }
    const other = files.find((f) => !studyFiles.some((s) => s.endsWith(f.split('/').pop()!)))!;
    const input = [
      JSON.stringify({ event: 'study-complete', time: 't', study, series: 3, instances: studyFiles.length, manifest: join(site, 'studies', `${study}.json`) }),
      JSON.stringify({ event: 'stored', time: 't', path: other }),
      JSON.stringify({ event: 'listening', time: 't', port: 1 }),
      other,
      '',
    ].join('\n');
    const r = await anonymize(['--out', join(tmp.dir, 's1'), '--secret-file', secret, '--pass'], { input });
    expect(r.code).toBe(0);
    expect(r.events.filter((e) => e.event === 'anonymized').length).toBe(studyFiles.length + 2);
    expect(r.events.filter((e) => e.event === 'listening').length).toBe(1);
  });
});

describe('other transfer syntaxes', () => {
  it('deflated, RLE and JPEG-LS instances are de-identified with their pixel data byte for byte', async () => {
    const src = (await listFiles(synth)).find((f) => f.endsWith('.dcm'))!;
    const dir = join(tmp.dir, 'ts-in');
    await mkdir(dir, { recursive: true });
    await dcmconv(src, join(dir, 'deflated.dcm'), ['+td']);
    await dcmcrle(src, join(dir, 'rle.dcm'));
    await dcmcjpls(src, join(dir, 'jpls.dcm'));
    for (const name of ['deflated', 'rle', 'jpls']) {
      const r = await anonymize(['--out', join(tmp.dir, `ts-out-${name}`), '--secret-file', secret, join(dir, `${name}.dcm`)]);
      expect(r.code, name).toBe(0);
      const out = String(r.events[0]!.path);
      const a = await readHeaderFull(join(dir, `${name}.dcm`), { stopBeforePixels: false });
      const b = await readHeaderFull(out, { stopBeforePixels: false });
      expect(b.transferSyntaxUid).toBe(a.transferSyntaxUid);
      expect(b.string('PatientIdentityRemoved')).toBe('YES');
      expect(b.string('PatientName')).not.toBe(a.string('PatientName'));
      // The coded method too, in every encoding (deflated included: the core sets the sequence).
      const codes = b.element(0x00120064);
      expect(codes?.vr, name).toBe('SQ');
      expect(codes?.items?.length, name).toBeGreaterThan(0);
      const pa = a.element(0x7fe00010)!;
      const pb = b.element(0x7fe00010)!;
      if (a.inflated) {
        expect(Buffer.from(b.bytesOf(pb)!).equals(Buffer.from(a.bytesOf(pa)!))).toBe(true);
      } else {
        const ra = await readFile(join(dir, `${name}.dcm`));
        const rb = await readFile(out);
        expect(rb.subarray(pb.headerOffset, pb.end).equals(ra.subarray(pa.headerOffset, pa.end))).toBe(true);
        expect(pb.fragments?.length).toBe(pa.fragments?.length);
      }
      // An independent reader agrees.
      const py = await execa('/usr/bin/python3', ['-c', 'import sys, pydicom; ds = pydicom.dcmread(sys.argv[1]); print(ds.PatientIdentityRemoved, ds.SOPInstanceUID)', out], { reject: false });
      expect(py.exitCode, String(py.stderr)).toBe(0);
      expect(String(py.stdout).trim()).toBe(`YES ${String(r.events[0]!.sop)}`);
    }
  });
});

describe('large instances (streamed, not held in memory)', () => {
  it('a 2 MB instance goes the streaming way with the same result: marked, leak-checked, pixels byte for byte', async () => {
    const dir = join(tmp.dir, 'large');
    const r0 = await runTool('fiona-synth', ['--out', dir, '--patients', '1', '--series', '1', '--instances', '1', '--rows', '1024', '--seed', '9', '--no-fsync', '-q']);
    expect(r0.exitCode).toBe(0);
    const src = (await listFiles(dir))[0]!;
    expect((await stat(src)).size).toBeGreaterThan(2 * 1024 * 1024);
    const r = await anonymize(['--out', join(tmp.dir, 'large-out'), '--secret-file', secret, src]);
    expect(r.code).toBe(0);
    const out = String(r.events[0]!.path);
    const text = await dcmdump(out);
    expect(text).toMatch(/\(0012,0064\) SQ .*DeidentificationMethodCodeSequence/);
    expect(text).toContain('(0008,0100) SH [113100]');
    const a = await readHeaderFull(src);
    const b = await readHeaderFull(out);
    expect(b.string('PatientName')).not.toBe(a.string('PatientName'));
    const ra = await readFile(src);
    const rb = await readFile(out);
    const pa = a.element(0x7fe00010)!;
    const pb = b.element(0x7fe00010)!;
    expect(rb.subarray(pb.headerOffset, pb.end).equals(ra.subarray(pa.headerOffset, pa.end))).toBe(true);
    expect(rb.subarray(0, 128).every((x) => x === 0)).toBe(true);
    expect(rb.indexOf(Buffer.from(a.string('PatientID')!))).toBe(-1);
  });
});

describe('stopping', () => {
  it('SIGTERM while reading stdin: the instances in flight are finished, the mapping and summary written, exit 1', async () => {
    const files = (await listFiles(synth)).filter((f) => f.endsWith('.dcm')).slice(0, 4);
    const out = join(tmp.dir, 'stop-out');
    const mapping = join(tmp.dir, 'stop-mapping.json');
    const proc = execa(join(process.cwd(), 'bin/fiona-anonymize'), ['--out', out, '--secret-file', secret, '--mapping', mapping], { reject: false, env: { NO_COLOR: '1' } });
    for (const f of files) proc.stdin!.write(`${f}\n`);
    // Wait until all four are out (stdin stays open: the tool would wait for more).
    const until = Date.now() + 60_000;
    while ((await listFiles(out)).filter((f) => f.endsWith('.dcm')).length < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    proc.kill('SIGTERM');
    const r = await proc;
    expect(r.exitCode).toBe(1);
    const events = parseEvents(r.stdout);
    expect(events.filter((e) => e.event === 'anonymized').length).toBe(4);
    expect(events.at(-1)).toMatchObject({ event: 'anonymize-summary', anonymized: 4, interrupted: true });
    expect(String(r.stderr)).toMatch(/SIGTERM: finishing the instances in flight/);
    const m = JSON.parse(await readFile(mapping, 'utf8')) as Record<string, Record<string, string>>;
    expect(Object.keys(m.SeriesInstanceUID!).length).toBeGreaterThan(0);
    expect((await listFiles(out)).filter((f) => f.split('/').pop()!.startsWith('.'))).toEqual([]);
  });
});

describe('the I/O thread', () => {
  it('a batch long enough to hand its reads and writes to the I/O thread gives the same bytes as without it', async () => {
    const many = join(tmp.dir, 'io-many');
    const r = await runTool('fiona-synth', ['--out', many, '--patients', '1', '--series', '4', '--instances', '100', '--rows', '64', '--seed', '5', '--no-fsync', '-q']);
    expect(r.exitCode).toBe(0);
    const a = join(tmp.dir, 'io-a');
    const b = join(tmp.dir, 'io-b');
    const ra = await anonymize(['--out', a, '--secret-file', secret, many]);
    const rb = await anonymize(['--out', b, '--secret-file', secret, '--no-io-thread', '--no-fsync', many]);
    expect([ra.code, rb.code]).toEqual([0, 0]);
    expect(ra.stderr).not.toMatch(/thread stopped/);
    const fa = await listFiles(a);
    const fb = await listFiles(b);
    expect(fa.length).toBe(400);
    expect(fa.map((f) => f.slice(a.length))).toEqual(fb.map((f) => f.slice(b.length)));
    for (let k = 0; k < fa.length; k++) expect((await readFile(fa[k]!)).equals(await readFile(fb[k]!))).toBe(true);
    // Every event names a published file; no temp file is left.
    expect(ra.events.filter((e) => e.event === 'anonymized').length).toBe(400);
    expect(fa.some((f) => f.endsWith('.tmp'))).toBe(false);
  }, 120_000);
});
