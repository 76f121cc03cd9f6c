import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTool as run } from '../helpers/cli.js';
import { requireProgram } from '../peers/process.js';
import { dcmdumpText, diffFlat, parseDcmdump } from './compare.js';
import { useFixtures } from './fixtures.js';

/** fiona-dump's stdout exactly as written (execa strips the final newline by default). */
const runTool = (tool: string, args: string[]) => run(tool, args, { stripFinalNewline: false });

const { fx, dir } = useFixtures('fiona-dump-');

type Json = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }>;

describe('fiona-dump text', () => {
  for (const name of ['synth', 'odd', 'oddBig', 'synthRle']) {
    it(`${name}: the same elements and values as dcmdump`, async () => {
      const r = await runTool('fiona-dump', [fx[name]!]);
      expect(r.exitCode).toBe(0);
      const ours = parseDcmdump(String(r.stdout));
      const theirs = parseDcmdump(await dcmdumpText(fx[name]!, ['+U8']));
      // Without --all, reading stops at the pixel data: compare what comes before it.
      const head = theirs.filter((t) => !t.path.startsWith('7fe0') && !t.path.startsWith('fffc'));
      expect(diffFlat(ours.filter((t) => !t.path.startsWith('7fe0')), head, { ignore: ['0008,0005'] })).toEqual([]);
      expect(String(r.stdout)).toMatch(/^\(0010,0010\) PN \[[^\]]+\]\s+#\s+\d+, 1 PatientName$/m);
    });
  }

  it('--all lists the fragments of encapsulated pixel data', async () => {
    const r = await runTool('fiona-dump', ['--all', fx.synthRle!]);
    expect(r.exitCode).toBe(0);
    expect(String(r.stdout)).toMatch(/\(7fe0,0010\) OB \(PixelSequence #=2\)/);
    expect(String(r.stdout)).toMatch(/\(fffe,e000\) pi \(\d+ bytes at offset \d+\)/);
  });
});

describe('fiona-dump --json (DICOM JSON model, PS3.18 F.2)', () => {
  it('gives one object per file that jq can read', async () => {
    const r = await runTool('fiona-dump', ['--json', fx.odd!]);
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(String(r.stdout)) as Json;
    expect(j['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Müller^Jürgen' }] });
    expect(j['00180050']).toEqual({ vr: 'DS' }); // empty: no Value, never 0
    expect(j['00180088']!.Value).toEqual([1.5, 2.25, -0.03]);
    expect(j['00200013']!.Value).toEqual([7]);
    expect(j['00209165']!.Value).toEqual(['00200032', '00280030']);
    expect(j['00280010']!.Value).toEqual([4]);
    const seq = j['00081140']!;
    expect(seq.vr).toBe('SQ');
    expect((seq.Value as Json[])[1]!['00081155']!.Value).toEqual(['1.2.3.4.5.6.8']);
    expect(j['00020010']).toBeUndefined(); // File Meta only with --meta
    const jq = await execa(requireProgram('jq', 'jq'), ['-r', '."00081140".Value[0]."00081155".Value[0]'], { input: String(r.stdout) });
    expect(jq.stdout).toBe('1.2.3.4.5.6.7');
  });

  it('an array for several files, NDJSON with --ndjson, File Meta with --meta', async () => {
    const many = await runTool('fiona-dump', ['--json', fx.odd!, fx.oddBig!]);
    const arr = JSON.parse(String(many.stdout)) as Json[];
    expect(arr).toHaveLength(2);
    // The same dataset in two byte orders reads the same (pixel data is a link to each file).
    const noPixels = (j: Json): Json => Object.fromEntries(Object.entries(j).filter(([k]) => k !== '7FE00010'));
    expect(noPixels(arr[0]!)).toEqual(noPixels(arr[1]!));
    expect(arr[0]!['7FE00010']!.BulkDataURI).toMatch(/^file:.*odd\.dcm\?offset=\d+&length=32$/);
    const nd = await runTool('fiona-dump', ['--ndjson', '--meta', fx.odd!, fx.synth!]);
    const lines = String(nd.stdout).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect((JSON.parse(lines[0]!) as Json)['00020010']!.Value).toEqual(['1.2.840.10008.1.2.1']);
  });

  it('shows ISO 2022 names decoded, split into the three PN groups', async () => {
    const r = await runTool('fiona-dump', ['--json', fx['charset-japanese']!]);
    const j = JSON.parse(String(r.stdout)) as Json;
    expect(j['00100010']!.Value).toEqual([{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }]);
  });
});

describe('fiona-dump --tag', () => {
  it('prints chosen values, one line per file, tab-separated, file name first for several files', async () => {
    const r = await runTool('fiona-dump', ['--tag', 'PatientID', '--tag', '0020,0032', '--tag', 'ReferencedImageSequence[1].ReferencedSOPInstanceUID', '--tag', 'PatientBirthDate', fx.odd!, fx.oddBig!]);
    expect(r.exitCode).toBe(0);
    expect(String(r.stdout)).toBe(
      `${fx.odd}\tPAT-001\t-125.5\\-130\\42.75\t1.2.3.4.5.6.8\t\n${fx.oddBig}\tPAT-001\t-125.5\\-130\\42.75\t1.2.3.4.5.6.8\t\n`,
    );
    const one = await runTool('fiona-dump', ['--tag', 'Rows', fx.odd!]);
    expect(String(one.stdout)).toBe('4\n');
  });

  it('a bad key is a usage error (exit 2)', async () => {
    const r = await runTool('fiona-dump', ['--tag', 'NoSuchThing', fx.odd!]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/NoSuchThing/);
  });
});

describe('fiona-dump with bad files', () => {
  it('reports each bad file with offset and tag, prints the good ones, exits 1', async () => {
    const notDicom = join(dir(), 'readme.txt');
    await writeFile(notDicom, 'plain text, not DICOM at all\n'.repeat(20));
    const r = await runTool('fiona-dump', ['--tag', 'PatientID', notDicom, fx.odd!, join(dir(), 'missing.dcm')]);
    expect(r.exitCode).toBe(1);
    expect(String(r.stdout)).toBe(`${fx.odd}\tPAT-001\n`);
    expect(String(r.stderr)).toMatch(/readme\.txt: not a DICOM file.*at offset \d+/);
    expect(String(r.stderr)).toMatch(/missing\.dcm: ENOENT/);
  });
});

describe('fiona-dump help', () => {
  it('--help explains and exits 0; --version prints the version', async () => {
    const h = await runTool('fiona-dump', ['--help']);
    expect(h.exitCode).toBe(0);
    expect(String(h.stdout)).toMatch(/--json/);
    expect(String(h.stdout)).toMatch(/--tag/);
    expect(String(h.stdout)).toMatch(/Exit codes/);
    const v = await runTool('fiona-dump', ['--version']);
    expect(v.exitCode).toBe(0);
    expect(String(v.stdout)).toMatch(/^\d+\.\d+\.\d+/);
  });
});
