/**
 * fiona-zip-export queue mode on FIONA's jobs file: every job ends done or failed with its
 * reason in results.jsonl; mails through a real SMTP server; two runs at once share no job;
 * kill -9 mid-job and a rerun finish the job once; attempts counted up to the limit;
 * execMeasurements.json; retrieval from a real Orthanc (C-GET and C-MOVE).
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startOrthanc, type Orthanc } from '../peers/orthanc.js';
import { freePort } from '../peers/ports.js';
import { requireProgram } from '../peers/process.js';
import { startSmtp, type SmtpPeer } from '../peers/smtp.js';
import { expectNoIdentifiers, extract, projectRules, synthStudy, type SynthStudy } from './fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let study: SynthStudy;
let projects: string;
let smtp: SmtpPeer;

beforeAll(async () => {
  for (const [b, p] of [['unzip', 'unzip'], ['7z', 'p7zip-full'], ['dcm2niix', 'dcm2niix']] as const) requireProgram(b, p);
  tmp = await makeTempDir('fiona-queue-');
  study = await synthStudy(tmp.dir);
  projects = join(tmp.dir, 'projects');
  await mkdir(projects);
  await projectRules(projects, 'STUDYX');
  smtp = await startSmtp();
});

afterAll(async () => {
  await smtp?.stop();
  await tmp?.cleanup();
});

interface Result {
  id: string;
  line: number;
  status: 'done' | 'failed';
  reason?: string;
  archive?: string;
  md5?: string;
  attempts: number;
}

async function results(state: string): Promise<Result[]> {
  if (!existsSync(join(state, 'results.jsonl'))) return [];
  return (await readFile(join(state, 'results.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Result);
}

function queueArgs(jobs: string, state: string, out: string, extra: string[] = []): string[] {
  return ['--jobs', jobs, '--state', state, '--site', study.site, '--out', out, ...extra];
}

const env = (): Record<string, string> => ({ FIONA_PROJECTS_DIR: projects, TMPDIR: tmp.dir });

function job(fields: Record<string, unknown>): string {
  return `${JSON.stringify({ project: 'STUDYX', studyinstanceuid: study.studyUid, exportType: 'DICOM', downloadAttempts: 0, ...fields })}\n`;
}

/** A test's own queue folder: the jobs file (with these jobs), the state folder and the output folder. */
async function queueFolder(name: string, jobsText: string, jobsName = 'jobs'): Promise<{ dir: string; jobs: string; state: string; out: string }> {
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  const jobs = join(dir, jobsName);
  await writeFile(jobs, jobsText);
  return { dir, jobs, state: join(dir, 'state'), out: join(dir, 'out') };
}

async function zipsIn(out: string): Promise<string[]> {
  return (await readdir(out)).filter((f) => f.endsWith('.zip')).sort();
}

describe('fiona-zip-export --jobs', () => {
  it('each job ends done or failed with its reason; mails; measurements; no temp folder', async () => {
    const password = 'secret pass 123';
    const { dir, jobs, state, out } = await queueFolder(
      'q1',
      job({ patientid: 'P-001', accessionnumber: study.accession, event: 'baseline' }) +
        '{"project": "STUDYX", broken\n' +
        '{"project":"STUDYX","exportType":"DICOM"}\n' +
        job({ project: 'NOPE' }) +
        job({ studyinstanceuid: '1.2.3.4.5' }) +
        job({
          patientid: 'P-002',
          exportType: 'NIFTI',
          event: 'week2',
          email: 'researcher@example.org',
          sender_email: 'pi@example.org',
          password: Buffer.from(password).toString('base64'),
        }),
      'prepared_downloads_list.jobs',
    );
    const r = await runTool(
      'fiona-zip-export',
      queueArgs(jobs, state, out, ['--smtp', smtp.url, '--mail-from', 'fiona@example.org', '--link-base', 'https://fiona.example.org/dl/']),
      { env: env() },
    );
    expect(r.exitCode).toBe(1);
    const res = await results(state);
    expect(res.map((x) => [x.line, x.status])).toEqual(
      expect.arrayContaining([[1, 'done'], [2, 'failed'], [3, 'failed'], [4, 'failed'], [5, 'failed'], [6, 'done']]),
    );
    expect(res).toHaveLength(6);
    const by = new Map(res.map((x) => [x.line, x]));
    expect(by.get(2)!.reason).toMatch(/line 2 is not valid JSON/);
    expect(by.get(3)!.reason).toMatch(/missing field "studyinstanceuid"/);
    expect(by.get(4)!.reason).toMatch(/unknown project "NOPE"/);
    expect(by.get(5)!.reason).toMatch(/not in the site archive/);
    // the reasons also went out as events and to the log
    const ev = parseEvents(r.stdout);
    expect(ev.filter((e) => e.event === 'export-failed')).toHaveLength(4);
    expect(r.stderr).toMatch(/unknown project "NOPE"/);
    expect(ev.find((e) => e.event === 'export-summary')).toMatchObject({ done: 2, failed: 4, retry: 0 });

    // archives: two, named <project>_<token>.zip, checked, md5 beside them
    const zips = await zipsIn(out);
    expect(zips).toHaveLength(2);
    for (const z of zips) {
      expect(z).toMatch(/^STUDYX_[0-9a-f]{16}\.zip$/);
      expect((await execa('md5sum', ['-c', `${z}.md5`], { cwd: out })).stdout).toMatch(/OK$/);
    }
    expect((await readdir(out)).some((f) => f.endsWith('.part'))).toBe(false);
    const plain = join(out, by.get(1)!.archive!.split('/').pop()!);
    expect((await execa('unzip', ['-t', plain])).stdout).toContain('No errors detected');
    await expectNoIdentifiers(await extract(plain, join(dir, 'x1')), study.identifiers);
    expect((await execa('unzip', ['-Z1', plain])).stdout).toMatch(/^STUDYX\/P-001\/\d{8}_\d{6}_baseline\//m);

    // the mail job: encrypted with the job's password, NIfTI inside, two separate mails
    const enc = join(out, by.get(6)!.archive!.split('/').pop()!);
    expect((await execa('7z', ['t', `-p${password}`, enc])).stdout).toContain('Everything is Ok');
    const x6 = await extract(enc, join(dir, 'x6'), password);
    expect((await readdir(join(x6, 'nifti'))).some((f) => f.endsWith('.nii.gz'))).toBe(true);
    await expectNoIdentifiers(x6, study.identifiers);
    const mails = await smtp.waitFor(2);
    const mine = mails.filter((m) => m.to.includes('researcher@example.org'));
    expect(mine).toHaveLength(2);
    const [link, pw] = mine;
    expect(link!.text).toContain(`https://fiona.example.org/dl/${enc.split('/').pop()}`);
    expect(link!.text).toContain('Project: STUDYX');
    expect(link!.text).not.toContain(password);
    expect(pw!.text).toContain(`Password: ${password}`);
    expect(pw!.text).not.toContain('https://');
    const ref = /reference ([0-9A-F]{6})/.exec(link!.text)![1]!;
    expect(pw!.text).toContain(ref);
    for (const m of mine) for (const id of study.identifiers) expect(m.raw.includes(id)).toBe(false);

    // execMeasurements.json: FIONA's seconds per project, and per stage
    const meas = JSON.parse(await readFile(join(state, 'execMeasurements.json'), 'utf8')) as Record<string, unknown>;
    expect(typeof meas.STUDYX).toBe('number');
    expect(Object.keys((meas._stages as Record<string, Record<string, number>>).STUDYX!)).toEqual(
      expect.arrayContaining(['source', 'anonymize', 'layout', 'archive', 'nifti']),
    );
    // temp folders removed, locks released
    expect(existsSync(join(state, 'work')) ? await readdir(join(state, 'work')) : []).toEqual([]);
    expect(await readdir(join(state, 'claims'))).toEqual([]);

    // a second run has nothing to do and changes nothing
    const again = await runTool('fiona-zip-export', queueArgs(jobs, state, out, ['--smtp', smtp.url]), { env: env() });
    expect(again.exitCode).toBe(0);
    expect(await results(state)).toHaveLength(6);
    expect(await zipsIn(out)).toHaveLength(2);
    expect(smtp.messages.filter((m) => m.to.includes('researcher@example.org'))).toHaveLength(2);
  });

  it('--once takes one job per run; a job appended later is taken by a later run', async () => {
    const { jobs, state, out } = await queueFolder('q2', job({ event: 'a' }) + job({ event: 'b' }));
    for (let i = 1; i <= 3; i++) {
      if (i === 3) await appendFile(jobs, job({ event: 'c' }));
      const r = await runTool('fiona-zip-export', queueArgs(jobs, state, out, ['--once']), { env: env() });
      expect(r.exitCode).toBe(0);
      expect(await results(state)).toHaveLength(i);
    }
    expect(await zipsIn(out)).toHaveLength(3);
  });

  it('two runs at once never take the same job', async () => {
    const { jobs, state, out } = await queueFolder('q3', ['e1', 'e2', 'e3', 'e4'].map((event) => job({ event })).join(''));
    const [a, b] = await Promise.all([
      runTool('fiona-zip-export', queueArgs(jobs, state, out), { env: env() }),
      runTool('fiona-zip-export', queueArgs(jobs, state, out), { env: env() }),
    ]);
    expect(a.exitCode).toBe(0);
    expect(b.exitCode).toBe(0);
    const res = await results(state);
    expect(res).toHaveLength(4);
    expect(new Set(res.map((x) => x.id)).size).toBe(4);
    expect(res.every((x) => x.status === 'done' && x.attempts === 1)).toBe(true);
    expect(await zipsIn(out)).toHaveLength(4);
    const doneA = parseEvents(a.stdout).filter((e) => e.event === 'export-done').length;
    const doneB = parseEvents(b.stdout).filter((e) => e.event === 'export-done').length;
    expect(doneA + doneB).toBe(4);
  });

  it('kill -9 mid-job, then a rerun: the job is finished once, nothing partial is left', async () => {
    const dir = join(tmp.dir, 'q4');
    await mkdir(dir);
    const big = await synthStudy(dir, ['--series', '4', '--instances', '150', '--rows', '64']);
    const jobs = join(dir, 'jobs');
    await writeFile(jobs, `${JSON.stringify({ project: 'STUDYX', studyinstanceuid: big.studyUid, exportType: 'DICOM' })}\n`);
    const state = join(dir, 'state');
    const out = join(dir, 'out');
    const args = ['--jobs', jobs, '--state', state, '--site', big.site, '--out', out];
    const proc = execa(binPath('fiona-zip-export'), args, { env: { ...env(), NO_COLOR: '1' }, reject: false });
    // wait until the job is being de-identified, then kill without warning
    const work = join(state, 'work');
    const until = Date.now() + 60_000;
    for (;;) {
      const ids = existsSync(work) ? await readdir(work) : [];
      if (ids.length > 0 && existsSync(join(work, ids[0]!, 'anonymized'))) break;
      if (Date.now() > until) throw new Error('the job never started');
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.kill('SIGKILL');
    const killed = await proc;
    expect(killed.signal).toBe('SIGKILL');
    expect(await zipsIn(out).catch(() => [])).toEqual([]);
    expect(await results(state)).toEqual([]);

    const r = await runTool('fiona-zip-export', args, { env: env() });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const res = await results(state);
    expect(res).toHaveLength(1);
    expect(res[0]).toMatchObject({ status: 'done', attempts: 2 });
    expect(await zipsIn(out)).toHaveLength(1);
    expect((await readdir(out)).filter((f) => f.endsWith('.part'))).toEqual([]);
    expect(await readdir(work)).toEqual([]);
    const zip = join(out, (await zipsIn(out))[0]!);
    expect((await execa('unzip', ['-tq', zip])).stdout).toContain('No errors detected');
    expect((await execa('unzip', ['-Z1', zip])).stdout.split('\n').filter((n) => n.endsWith('.dcm'))).toHaveLength(600);
  });

  it('attempts are counted: a PACS that stays away fails the job at the limit; FIONA downloadAttempts honoured', async () => {
    const { jobs, state, out } = await queueFolder('q5', job({ event: 'x' }) + job({ event: 'y', downloadAttempts: 7 }));
    const port = await freePort();
    const args = ['--jobs', jobs, '--state', state, '--out', out, '--from', `NOBODY@127.0.0.1:${port}`, '--method', 'get', '--max-attempts', '2'];
    let r = await runTool('fiona-zip-export', args, { env: env() });
    expect(r.exitCode).toBe(1);
    let res = await results(state);
    expect(res).toHaveLength(1);
    expect(res[0]).toMatchObject({ line: 2, status: 'failed' });
    expect(res[0]!.reason).toMatch(/attempt limit reached \(7 of 2\)/);
    expect(parseEvents(r.stdout).find((e) => e.event === 'export-retry')?.reason).toMatch(/connection refused/);
    r = await runTool('fiona-zip-export', args, { env: env() });
    expect(r.exitCode).toBe(1);
    res = await results(state);
    expect(res).toHaveLength(2);
    expect(res[1]).toMatchObject({ line: 1, status: 'failed', attempts: 2 });
    expect(res[1]!.reason).toMatch(/gave up after 2 attempts: .*connection refused/);
    expect(await readdir(out)).toEqual([]);
  });

  it('a mail server that fails once: the archive is published once, the mail goes out on the next run', async () => {
    const { jobs, state, out } = await queueFolder('q6', job({ event: 'm', email: 'late@example.org' }));
    smtp.failNext(1);
    let r = await runTool('fiona-zip-export', queueArgs(jobs, state, out, ['--smtp', smtp.url]), { env: env() });
    expect(r.exitCode).toBe(1);
    expect(parseEvents(r.stdout).find((e) => e.event === 'export-retry')?.reason).toMatch(/mail to late@example.org/);
    const first = await zipsIn(out);
    expect(first).toHaveLength(1);
    r = await runTool('fiona-zip-export', queueArgs(jobs, state, out, ['--smtp', smtp.url]), { env: env() });
    expect(r.exitCode).toBe(0);
    expect(await zipsIn(out)).toEqual(first);
    expect(smtp.messages.filter((m) => m.to.includes('late@example.org'))).toHaveLength(1);
    expect((await results(state))[0]).toMatchObject({ status: 'done', attempts: 2 });
  });
});

describe('fiona-zip-export --jobs from a PACS', () => {
  let pacs: Orthanc;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    pacs = await startOrthanc({ modalities: { FIONA: { aet: 'FIONA', port } } });
    await pacs.uploadAll(study.files);
  });
  afterAll(async () => {
    await pacs?.stop();
  });

  for (const method of ['get', 'move'] as const) {
    it(`pulls the study by accession number (C-FIND, then C-${method.toUpperCase()}) and exports it`, async () => {
      const { dir, jobs, state, out } = await queueFolder(`qp-${method}`, `${JSON.stringify({ project: 'STUDYX', accessionnumber: study.accession, patientid: 'P-9', exportType: 'DICOM' })}\n`);
      const r = await runTool(
        'fiona-zip-export',
        ['--jobs', jobs, '--state', state, '--out', out, '--from', `${pacs.aet}@127.0.0.1:${pacs.dicomPort}`, '--aet', 'FIONA', '--method', method, '--port', String(port)],
        { env: env() },
      );
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const exported = parseEvents(r.stdout).find((e) => e.event === 'exported')!;
      expect(exported).toMatchObject({ instances: 12, series: 3 });
      const x = await extract(String(exported.path), join(dir, 'x'));
      await expectNoIdentifiers(x, study.identifiers);
      expect(await readdir(join(state, 'work'))).toEqual([]);
    });
  }
});
