/**
 * fiona-zip-export one-off: a synthetic study from a site or a folder, de-identified by the
 * deid library, in FIONA's layout, zipped (plain and AES), read back by unzip / 7z / md5sum,
 * searched for every identifying value; NIfTI via dcm2niix checked with nifti-reader-js;
 * failures (dcm2niix missing, a full disk, an unknown project) publish nothing and leave no
 * temp folder.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { requireProgram } from '../peers/process.js';
import { expectNoIdentifiers, extract, filesUnder, projectRules, synthStudy, type SynthStudy } from './fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let study: SynthStudy;
let rules: string;
let tmpdirForTool: string;

beforeAll(async () => {
  for (const [b, p] of [['unzip', 'unzip'], ['7z', 'p7zip-full'], ['md5sum', 'coreutils'], ['dcm2niix', 'dcm2niix'], ['unshare', 'util-linux']] as const) requireProgram(b, p);
  tmp = await makeTempDir('fiona-export-');
  study = await synthStudy(tmp.dir);
  rules = await projectRules(tmp.dir);
  tmpdirForTool = join(tmp.dir, 'tooltmp');
  await mkdir(tmpdirForTool);
});

afterAll(async () => {
  await tmp?.cleanup();
});

function exportTool(args: string[], env: Record<string, string> = {}) {
  return runTool('fiona-zip-export', args, { env: { TMPDIR: tmpdirForTool, ...env } });
}

async function expectNoTemp(): Promise<void> {
  expect(await readdir(tmpdirForTool)).toEqual([]);
}

describe('fiona-zip-export, one-off', () => {
  it('exports a study from the site: layout, manifest, md5, unzip -t, no identifying value anywhere', async () => {
    const out = join(tmp.dir, 'out-site');
    const r = await exportTool(['--project', rules, '--study', study.studyUid, '--site', study.site, '--out', out, '--patient-id', 'SUBJ01', '--event', 'baseline']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.exitCode).toBe(0);
    const ev = parseEvents(r.stdout).find((e) => e.event === 'exported')!;
    const zip = String(ev.path);
    expect(zip).toMatch(/\/STUDYX_[0-9a-f]{16}\.zip$/);
    expect(ev).toMatchObject({ series: 3, instances: 12, entries: 13, encrypted: false });
    expect(existsSync(`${zip}.part`)).toBe(false);
    // the .md5 beside it, in md5sum -b format, checks out
    const md5 = await readFile(`${zip}.md5`, 'utf8');
    expect(md5).toMatch(/^[0-9a-f]{32} \*STUDYX_[0-9a-f]{16}\.zip\n$/);
    expect((await execa('md5sum', ['-c', `${zip}.md5`], { cwd: out })).stdout).toMatch(/: OK$/);
    expect((await execa('unzip', ['-t', zip])).stdout).toContain('No errors detected');
    const names = (await execa('unzip', ['-Z1', zip])).stdout.split('\n').sort();
    // <Project>/<PatientID>/<StudyDate>_<StudyTime>_<event>/<NNNN>_<SeriesDescription>/<file>
    const dicom = names.filter((n) => n.endsWith('.dcm'));
    expect(dicom).toHaveLength(12);
    for (const n of dicom) expect(n).toMatch(/^STUDYX\/SUBJ01\/\d{8}_\d{6}_baseline\/\d{4}_[A-Za-z0-9._-]+\/MR\.2\.25\.\d+\.dcm$/);
    expect(new Set(dicom.map((n) => n.split('/').slice(0, 4).join('/'))).size).toBe(3);
    expect(names).toContain('fiona.txt');
    const x = await extract(zip, join(tmp.dir, 'x-site'));
    const manifest = await readFile(join(x, 'fiona.txt'), 'utf8');
    expect(manifest).toContain('Research project: STUDYX');
    expect(manifest).toContain('Participant (pseudonym): SUBJ01');
    expect(manifest).toContain('DICOM: 3 series, 12 instances');
    expect(manifest).toMatch(/basic profile with options retainLongitudinalModifiedDates/);
    expect(await expectNoIdentifiers(x, study.identifiers, [zip, await readFile(`${zip}.md5`, 'utf8')])).toBe(13);
    // de-identified, and still DICOM that DCMTK reads
    const one = (await filesUnder(x)).find((f) => f.endsWith('.dcm'))!;
    const dump = (await execa('dcmdump', ['+P', 'PatientIdentityRemoved', '+P', 'PatientID', one])).stdout;
    expect(dump).toContain('[YES]');
    expect(dump).toContain('[SUBJ01]');
    // recorded as exported, so fiona-cleanup may later remove the study from the site
    const delivered = await readFile(join(study.site, 'state', 'delivered', `${study.studyUid}.ndjson`), 'utf8');
    expect(JSON.parse(delivered.trim().split('\n').pop()!)).toMatchObject({ study: study.studyUid, kind: 'exported', tool: 'fiona-zip-export', to: zip, files: 12 });
    await expectNoTemp();
  });

  it('AES-256 with --password-file: 7z t with the password passes, without it fails; contents clean', async () => {
    const out = join(tmp.dir, 'out-aes');
    const pw = join(tmp.dir, 'pw.txt');
    await writeFile(pw, 'a long export password\n', { mode: 0o600 });
    const r = await exportTool(['--project', rules, '--folder', join(study.site, 'archive'), '--out', out, '--password-file', pw, '--json']);
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(String(r.stdout)) as { path: string; encrypted: boolean; md5: string };
    expect(report.encrypted).toBe(true);
    expect((await execa('7z', ['t', '-pa long export password', report.path])).stdout).toContain('Everything is Ok');
    expect((await execa('7z', ['t', '-pwrong', report.path], { reject: false })).exitCode).not.toBe(0);
    expect((await execa('md5sum', ['-c', `${report.path}.md5`], { cwd: out })).stdout).toMatch(/: OK$/);
    const x = await extract(report.path, join(tmp.dir, 'x-aes'), 'a long export password');
    await expectNoIdentifiers(x, study.identifiers);
    // nothing readable in the archive itself but names (which carry no identity)
    const raw = (await readFile(report.path)).toString('latin1');
    expect(raw.includes('Research project')).toBe(false);
    await expectNoTemp();
  });

  it('--nifti: one NIfTI per series, readable (nifti-reader-js), sidecars without identity, listed in fiona.txt', async () => {
    const out = join(tmp.dir, 'out-nifti');
    const r = await exportTool(['--project', rules, '--study', study.studyUid, '--site', study.site, '--out', out, '--nifti', '--level', '6', '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const report = JSON.parse(String(r.stdout)) as { path: string; nifti: Array<{ series: string; status: string }> };
    expect(report.nifti).toHaveLength(3);
    const x = await extract(report.path, join(tmp.dir, 'x-nifti'));
    const nii = (await readdir(join(x, 'nifti'))).filter((f) => f.endsWith('.nii.gz'));
    expect(nii.length).toBeGreaterThanOrEqual(3);
    for (const f of nii) {
      const data = gunzipSync(await readFile(join(x, 'nifti', f)));
      const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
      expect(nifti.isNIFTI(ab), f).toBe(true);
      const h = nifti.readHeader(ab)!;
      // 64 x 64 images (dcm2niix may put the slice axis anywhere for oblique/sagittal stacks)
      expect(h.dims.slice(1, 4).filter((d) => d === 64).length, f).toBeGreaterThanOrEqual(2);
      const voxels = h.dims.slice(1, 1 + h.dims[0]!).reduce((n, d) => n * d, 1);
      expect(nifti.readImage(h, ab).byteLength, f).toBe((voxels * h.numBitsPerVoxel) / 8);
      const sidecar = JSON.parse(await readFile(join(x, 'nifti', f.replace(/\.nii\.gz$/, '.json')), 'utf8')) as Record<string, unknown>;
      for (const k of ['PatientName', 'PatientID', 'PatientBirthDate', 'InstitutionName', 'InstitutionAddress', 'StationName', 'DeviceSerialNumber', 'AccessionNumber']) {
        expect(sidecar[k], `${f}: ${k}`).toBeUndefined();
      }
    }
    const manifest = await readFile(join(x, 'fiona.txt'), 'utf8');
    expect(manifest).toMatch(/NIfTI \(dcm2niix -z y -b y -ba y\): \d of 3 series converted/);
    await expectNoIdentifiers(x, study.identifiers);
    await expectNoTemp();
  });

  it('a series dcm2niix cannot convert is listed in fiona.txt, not dropped', async () => {
    // A fourth "series": instances without pixel data (dcm2niix: exit 2, no images).
    const noPixels = join(tmp.dir, 'nopix-site');
    const files = study.files.slice(0, 2);
    for (const f of files) {
      const rel = f.slice(study.site.length);
      const target = join(noPixels, rel);
      await mkdir(join(target, '..'), { recursive: true });
      await execa('dcmodify', ['-nb', '-ea', '(7fe0,0010)', '-m', 'SeriesInstanceUID=2.25.99', '-m', 'SeriesNumber=99', '-m', 'SeriesDescription=nopixels', '-of', target, f]).catch(async () => {
        await execa('cp', [f, target]);
        await execa('dcmodify', ['-nb', '-ea', '(7fe0,0010)', '-m', 'SeriesInstanceUID=2.25.99', '-m', 'SeriesNumber=99', '-m', 'SeriesDescription=nopixels', target]);
      });
    }
    const out = join(tmp.dir, 'out-nopix');
    const r = await exportTool(['--project', rules, '--folder', noPixels, '--out', out, '--nifti', '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const report = JSON.parse(String(r.stdout)) as { path: string; nifti: Array<{ series: string; status: string; reason?: string }> };
    // (the basic profile removes SeriesDescription: the folder falls back to the modality)
    expect(report.nifti).toEqual([{ series: '0099_MR', status: 'not-converted', reason: expect.stringMatching(/exit 2/) }]);
    const manifest = (await execa('unzip', ['-p', report.path, 'fiona.txt'])).stdout;
    expect(manifest).toMatch(/0099_MR: NOT CONVERTED: no DICOM images dcm2niix can convert \(exit 2\)/);
    expect((await execa('unzip', ['-Z1', report.path])).stdout).toMatch(/0099_MR\/MR\./);
  });

  it('dcm2niix missing: the export fails with the reason, nothing published, no temp folder', async () => {
    const out = join(tmp.dir, 'out-nodcm2niix');
    const r = await exportTool(['--project', rules, '--study', study.studyUid, '--site', study.site, '--out', out, '--nifti', '--dcm2niix', join(tmp.dir, 'no-such-dcm2niix')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/dcm2niix is not installed/);
    expect(parseEvents(r.stdout).find((e) => e.event === 'export-failed')?.reason).toMatch(/dcm2niix is not installed/);
    expect(await readdir(out)).toEqual([]);
    await expectNoTemp();
  });

  it('a full disk: the export fails saying so, no partial archive, no temp folder', async () => {
    // --out on a 64 KiB tmpfs of a private mount namespace (works as root and unprivileged).
    const script = `set -e
mkdir -p "$OUT" && mount -t tmpfs -o size=64k tmpfs "$OUT"
set +e
"$TOOL" --project "$RULES" --study "$STUDY" --site "$SITE" --out "$OUT" --level 0
echo "exit=$?" >&2
ls -A "$OUT" >&2
echo "listed" >&2`;
    const out = join(tmp.dir, 'out-full');
    const r = await execa('unshare', ['--map-root-user', '--mount', 'sh', '-c', script], {
      reject: false,
      env: { OUT: out, TOOL: join(process.cwd(), 'bin', 'fiona-zip-export'), RULES: rules, STUDY: study.studyUid, SITE: study.site, TMPDIR: tmpdirForTool, NO_COLOR: '1' },
    });
    expect(r.stderr).toMatch(/exit=3/);
    expect(r.stderr).toMatch(/disk full \(ENOSPC\)/);
    // nothing at all in --out: no .zip, no .zip.part, no .md5
    expect(r.stderr).toMatch(/exit=3\n(?:fiona[^\n]*\n)*listed/);
    await expectNoTemp();
  });

  it('bad input: unknown project, no source, bad UID, a folder without DICOM', async () => {
    const out = join(tmp.dir, 'out-bad');
    let r = await exportTool(['--project', 'NO_SUCH_PROJECT', '--study', study.studyUid, '--site', study.site, '--out', out]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown project "NO_SUCH_PROJECT"/);
    r = await exportTool(['--project', rules, '--out', out]);
    expect(r.exitCode).toBe(2);
    r = await exportTool(['--project', rules, '--study', '1.2.x', '--site', study.site, '--out', out]);
    expect(r.exitCode).toBe(2);
    r = await exportTool(['--project', rules, '--study', '1.2.3.4', '--site', study.site, '--out', out]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/not in the site archive/);
    const junk = join(tmp.dir, 'junk');
    await mkdir(junk, { recursive: true });
    await writeFile(join(junk, 'a.txt'), 'not dicom');
    r = await exportTool(['--project', rules, '--folder', junk, '--out', out]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/no instance could be released/);
    expect(await readdir(out)).toEqual([]);
    await expectNoTemp();
  });
});
