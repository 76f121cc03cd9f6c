/**
 * A manual export of a study that fiona-route already gave a pseudonym in the project takes
 * that pseudonym (the ZIP and the research PACS name the participant alike); --patient-id
 * still wins; two different routed pseudonyms are refused with both named.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteLayout } from '../../src/lib/site/index.js';
import { RequestStore } from '../../src/lib/transfer/requests.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { requireProgram } from '../peers/process.js';
import { expectNoIdentifiers, extract, filesUnder, projectRules, synthStudy, type SynthStudy } from './fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let study: SynthStudy;
let rules: string;

beforeAll(async () => {
  requireProgram('unzip', 'unzip');
  tmp = await makeTempDir('fiona-export-routed-');
  study = await synthStudy(tmp.dir);
  rules = await projectRules(tmp.dir);
});

afterAll(async () => {
  await tmp?.cleanup();
});

async function routeAs(pseudonym: string, project = 'STUDYX'): Promise<void> {
  await new RequestStore(siteLayout(study.site)).enqueue({ study: study.studyUid, project, pseudonym, event: 'baseline' }, ['route:test'], {});
}

/** Export the study, unpack it, and return the PatientID and PatientName of every instance. */
async function exportedPatient(label: string, extra: string[] = []): Promise<{ ids: Set<string>; names: Set<string>; stderr: string; dir: string }> {
  const out = join(tmp.dir, `out-${label}`);
  const r = await runTool('fiona-zip-export', ['--project', rules, '--study', study.studyUid, '--site', study.site, '--out', out, ...extra]);
  expect(r.exitCode, String(r.stderr)).toBe(0);
  const zip = String(parseEvents(r.stdout).find((e) => e.event === 'exported')!.path);
  const dir = await extract(zip, join(tmp.dir, `x-${label}`));
  const dicom = (await filesUnder(dir)).filter((f) => f.endsWith('.dcm'));
  expect(dicom.length).toBe(12);
  const d = await runTool('fiona-dump', ['--tag', 'PatientID', '--tag', 'PatientName', '--no-filename', ...dicom]);
  expect(d.exitCode).toBe(0);
  const rows = String(d.stdout).trim().split('\n').map((l) => l.split('\t'));
  return { ids: new Set(rows.map((x) => x[0]!)), names: new Set(rows.map((x) => x[1]!)), stderr: String(r.stderr), dir };
}

describe('fiona-zip-export: the pseudonym fiona-route gave the study', () => {
  it('without --patient-id, an unrouted study gets the project rules\' pseudonym (not the routed one of another project)', async () => {
    await routeAs('OTHER-7', 'ANOTHERPROJECT');
    const got = await exportedPatient('unrouted');
    expect(got.ids.size).toBe(1);
    expect([...got.ids][0]).not.toBe('OTHER-7');
    expect(got.stderr).not.toMatch(/fiona-route gave/);
  });

  it('without --patient-id, the routed pseudonym is PatientID and PatientName, in the layout too; nothing identifying left', async () => {
    await routeAs('NT0042');
    const got = await exportedPatient('routed');
    expect([...got.ids]).toEqual(['NT0042']);
    expect([...got.names]).toEqual(['NT0042']);
    expect(got.stderr).toMatch(/PatientID NT0042: the pseudonym fiona-route gave this study in STUDYX/);
    expect((await filesUnder(got.dir)).some((f) => f.includes('/NT0042/'))).toBe(true);
    await expectNoIdentifiers(got.dir, study.identifiers);
  });

  it('--patient-id wins over the routed pseudonym', async () => {
    const got = await exportedPatient('explicit', ['--patient-id', 'SUBJ02']);
    expect([...got.ids]).toEqual(['SUBJ02']);
    expect(got.stderr).not.toMatch(/fiona-route gave/);
  });

  it('two routed pseudonyms for the study in the project: refused (exit 2), both named, nothing exported', async () => {
    await routeAs('NT0043');
    const out = join(tmp.dir, 'out-ambiguous');
    const r = await runTool('fiona-zip-export', ['--project', rules, '--study', study.studyUid, '--site', study.site, '--out', out]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/under 2 pseudonyms \(NT0042, NT0043\): say which with --patient-id/);
    expect(parseEvents(r.stdout).some((e) => e.event === 'exported')).toBe(false);
  });
});

describe('fiona-zip-export queue: a job without patientid', () => {
  it('takes the pseudonym fiona-route gave the study; a job with patientid keeps its own', async () => {
    const projects = join(tmp.dir, 'projects');
    await mkdir(projects, { recursive: true });
    await projectRules(projects, 'QUEUEP');
    await routeAs('QP0007', 'QUEUEP');
    const jobs = join(tmp.dir, 'jobs.jsonl');
    const line = (f: Record<string, unknown>): string => `${JSON.stringify({ project: 'QUEUEP', studyinstanceuid: study.studyUid, exportType: 'DICOM', ...f })}\n`;
    await writeFile(jobs, line({}) + line({ patientid: 'FROMJOB1', event: 'second' }));
    const out = join(tmp.dir, 'out-queue');
    const r = await runTool('fiona-zip-export', ['--jobs', jobs, '--state', join(tmp.dir, 'qstate'), '--site', study.site, '--out', out], {
      env: { FIONA_PROJECTS_DIR: projects },
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const zips = parseEvents(r.stdout).filter((e) => e.event === 'exported').map((e) => String(e.path));
    expect(zips.length).toBe(2);
    const ids: string[] = [];
    for (const [k, zip] of zips.entries()) {
      const dir = await extract(zip, join(tmp.dir, `xq-${k}`));
      const first = (await filesUnder(dir)).find((f) => f.endsWith('.dcm'))!;
      ids.push(String((await runTool('fiona-dump', ['--tag', 'PatientID', '--no-filename', first])).stdout).trim());
    }
    expect(ids.sort()).toEqual(['FROMJOB1', 'QP0007']);
  });
});
