import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AutoIdStore } from '../../src/lib/route/autoid.js';
import { matchStudy } from '../../src/lib/route/match.js';
import { parseRules, type RawRules } from '../../src/lib/route/parse.js';
import { readStudy } from '../../src/lib/route/study.js';
import { siteLayout } from '../../src/lib/site/index.js';
import { makeTempDir } from '../helpers/tmp.js';
import { writeStudy, type FixtureStudy } from './fixtures.js';

const DEST = 'dicom://RPACS@127.0.0.1:104';
const opts = { origin: 'test', baseDir: '/' };

function rules(partial: Partial<RawRules>) {
  return parseRules({
    routes: [],
    coupling: [],
    projects: [{ name: 'P1', destination: DEST }, { name: 'P2', destination: DEST }, { name: 'AUTO', destination: DEST, autoId: { pattern: 'AU[0-9]{4}', aet: 'AUTOAET' } }],
    ...partial,
  }, opts);
}

describe('route matching', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let autoIds: AutoIdStore;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    autoIds = AutoIdStore.forState(join(dir, 'state'));
  });
  afterEach(() => cleanup());

  async function study(s: Partial<FixtureStudy>) {
    const site = await writeStudy(dir, { uid: '1.2.3', series: [{ uid: '1.2.3.1' }], ...s });
    return readStudy(site, s.uid ?? '1.2.3');
  }
  const projects = async (r: ReturnType<typeof rules>, s: Awaited<ReturnType<typeof study>>, now?: Date) =>
    (await matchStudy(r, s, autoIds, now)).matches.map((m) => `${m.project}/${m.pseudonym}/${m.event}`).sort();

  it('routes by called AE title with a PatientID pattern; the ID becomes the pseudonym', async () => {
    const r = rules({ routes: [{ name: 'r', project: 'P1', incomingAet: 'P1AET', patientId: 'NT\\d+', event: 'baseline' }] });
    expect(await projects(r, await study({ called: 'P1AET', patientId: 'NT0042' }))).toEqual(['P1/NT0042/baseline']);
    expect(await projects(r, await study({ uid: '1.2.4', called: 'OTHER', patientId: 'NT0042' }))).toEqual([]);
    expect(await projects(r, await study({ uid: '1.2.5', called: 'P1AET', patientId: 'X0042' }))).toEqual([]);
  });

  it('routes by calling AE title, and by either AE title when both are given (FIONA)', async () => {
    const r = rules({ routes: [{ name: 'r', project: 'P1', sendingAet: 'MRI1', patientName: 'PROJ' }] });
    expect(await projects(r, await study({ calling: 'MRI1', patientName: 'PROJ_07' }))).toEqual(['P1/PROJ_07/']);
    expect(await projects(r, await study({ uid: '1.2.4', calling: 'MRI2', patientName: 'PROJ_07' }))).toEqual([]);
    const both = rules({ routes: [{ name: 'r', project: 'P1', incomingAet: 'P1AET', sendingAet: 'MRI1', patientId: 'NT' }] });
    expect(await projects(both, await study({ uid: '1.2.5', calling: 'MRI1', called: 'FIONA', patientId: 'NT1' }))).toEqual(['P1/NT1/']);
    expect(await projects(both, await study({ uid: '1.2.6', calling: 'X', called: 'P1AET', patientId: 'NT1' }))).toEqual(['P1/NT1/']);
    expect(await projects(both, await study({ uid: '1.2.7', calling: 'X', called: 'Y', patientId: 'NT1' }))).toEqual([]);
  });

  it('takes the PatientID when both ID and name patterns match, else the name', async () => {
    const r = rules({ routes: [{ name: 'r', project: 'P1', patientId: 'NT', patientName: 'NT' }] });
    expect(await projects(r, await study({ patientId: 'NT9', patientName: 'NT_NAME' }))).toEqual(['P1/NT9/']);
    expect(await projects(r, await study({ uid: '1.2.4', patientId: '123', patientName: 'NT_NAME' }))).toEqual(['P1/NT_NAME/']);
    expect(await projects(r, await study({ uid: '1.2.5', patientId: '123', patientName: 'Doe^J' }))).toEqual([]);
  });

  it('skips inactive routes and inactive projects; sends one study to several projects', async () => {
    const r = parseRules({
      projects: [{ name: 'P1', destination: DEST }, { name: 'P2', destination: DEST }, { name: 'OFF', active: false, destination: DEST }],
      routes: [
        { name: 'a', project: 'P1', patientId: 'NT' },
        { name: 'b', project: 'P2', patientId: 'NT', event: 'e1' },
        { name: 'c', project: 'P2', patientId: 'NT', active: false, event: 'e2' },
        { name: 'd', project: 'OFF', patientId: 'NT' },
        { name: 'dup', project: 'P1', patientName: 'Doe', patientId: 'NT' },
      ],
      coupling: [],
    }, opts);
    expect(await projects(r, await study({ patientId: 'NT1', patientName: 'Doe^J' }))).toEqual(['P1/NT1/', 'P2/NT1/e1']);
  });

  it('couples by AccessionNumber or StudyInstanceUID until the entry expires', async () => {
    const made = '2024-03-01 12:00';
    const r = rules({
      coupling: [
        { name: 'acc', accessionNumber: 'ACC77', project: 'P2', subject: 'SUBJ-1', event: 'visit2', date: made },
        { name: 'uid', studyInstanceUid: '1.2.9', project: 'P1', subject: 'SUBJ-2', date: made },
      ],
    });
    const s = await study({ accessionNumber: 'ACC77' });
    expect(await projects(r, s, new Date(2024, 2, 10))).toEqual(['P2/SUBJ-1/visit2']);
    // FIONA's 14 days: still on day 14 minus a minute, gone at 14 days.
    expect(await projects(r, s, new Date(2024, 2, 15, 11, 59))).toEqual(['P2/SUBJ-1/visit2']);
    expect(await projects(r, s, new Date(2024, 2, 15, 12, 0))).toEqual([]);
    const byUid = await study({ uid: '1.2.9' });
    expect(await projects(r, byUid, new Date(2024, 2, 2))).toEqual(['P1/SUBJ-2/']);
    const short = rules({ couplingExpiryDays: 2, coupling: [{ accessionNumber: 'ACC77', project: 'P2', subject: 'S', date: made }] });
    expect(await projects(short, s, new Date(2024, 2, 4))).toEqual([]);
  });

  it('gives automatic IDs: stable for a patient across runs, new for a new patient, file 0600', async () => {
    const r = rules({ routes: [{ name: 'r', project: 'AUTO', patientId: '.' }] });
    const a1 = await projects(r, await study({ patientId: 'MRN-1' }));
    expect(a1[0]).toMatch(/^AUTO\/AU\d{4}\/$/);
    // A new store object = a new run of fiona-route.
    autoIds = AutoIdStore.forState(join(dir, 'state'));
    expect(await projects(r, await study({ uid: '1.2.4', patientId: 'MRN-1' }))).toEqual(a1);
    const b = await projects(r, await study({ uid: '1.2.5', patientId: 'MRN-2' }));
    expect(b[0]).not.toEqual(a1[0]);
    // By AE title alone (project_autoid_aetitle): same patient, same ID.
    expect(await projects(r, await study({ uid: '1.2.6', called: 'AUTOAET', patientId: 'MRN-1' }))).toEqual(a1);
    const files = (await import('node:fs/promises')).readdir(join(dir, 'state', 'autoid'));
    const mapping = (await files).find((f) => f.endsWith('.json'))!;
    const path = join(dir, 'state', 'autoid', mapping);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'state', 'autoid'))).mode & 0o777).toBe(0o700);
    const text = await readFile(path, 'utf8');
    expect(text).not.toContain('MRN-1');
    expect(Object.keys(JSON.parse(text).entries)).toHaveLength(2);
  });

  it('refuses to give an automatic ID without a PatientID, and never overwrites a damaged mapping', async () => {
    const r = rules({ routes: [{ name: 'r', project: 'AUTO', patientName: 'Doe' }] });
    const out = await matchStudy(r, await study({ patientId: '', patientName: 'Doe^J' }), autoIds);
    expect(out.matches).toEqual([]);
    expect(out.problems[0]).toMatch(/route:r: the study has no PatientID/);
    await mkdir(join(dir, 'state', 'autoid'), { recursive: true });
    await matchStudy(r, await study({ uid: '1.2.4', patientId: 'MRN-1', patientName: 'Doe^J' }), autoIds);
    const f = (await (await import('node:fs/promises')).readdir(join(dir, 'state', 'autoid'))).find((n) => n.endsWith('.json'))!;
    await writeFile(join(dir, 'state', 'autoid', f), '{broken');
    const again = await matchStudy(r, await study({ uid: '1.2.5', patientId: 'MRN-9', patientName: 'Doe^J' }), AutoIdStore.forState(join(dir, 'state')));
    expect(again.problems[0]).toMatch(/cannot be read/);
    expect(await readFile(join(dir, 'state', 'autoid', f), 'utf8')).toBe('{broken');
  });

  it('reads the study from raw/ and archive/', async () => {
    const s = await study({ series: [{ uid: '1.2.3.1', instances: 3 }, { uid: '1.2.3.2', instances: 1, noMeta: true }], calling: 'MRI1\0 ' });
    expect(s.series.map((x) => [x.uid, x.files.length])).toEqual([['1.2.3.1', 3], ['1.2.3.2', 1]]);
    expect(s.calling).toBe('MRI1');
    await expect(readStudy(siteLayout(dir), '../etc')).rejects.toThrow(/not a valid StudyInstanceUID/);
  });
});
