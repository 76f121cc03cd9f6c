import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestStore, requestId, type TransferResult } from '../../src/lib/transfer/requests.js';
import { siteLayout } from '../../src/lib/site/index.js';
import { parseEvents, ROOT, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { writeStudy, type FixtureStudy } from './fixtures.js';

const DEST = 'dicom://RPACS@127.0.0.1:104';

describe('fiona-route', () => {
  let dir: string;
  let siteDir: string;
  let routes: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    siteDir = join(dir, 'site');
    routes = join(dir, 'routes.json');
    await writeFile(routes, JSON.stringify({
      projects: { NORTEST: { destination: DEST }, OTHER: { destination: DEST } },
      routes: [
        { name: 'nt', project: 'NORTEST', incomingAet: 'NORTEST', patientId: 'NT\\d{4}', event: 'baseline' },
        { name: 'other', project: 'OTHER', sendingAet: 'MRI2', patientName: 'OT' },
      ],
    }));
  });
  afterEach(() => cleanup());

  async function complete(s: FixtureStudy): Promise<void> {
    await writeStudy(siteDir, s);
    await mkdir(join(siteDir, 'studies'), { recursive: true });
    await writeFile(join(siteDir, 'studies', `${s.uid}.json`), JSON.stringify({ study: s.uid }));
  }

  const route = (args: string[], input?: string) => runTool('fiona-route', ['--site', siteDir, '--routes', routes, ...args], { input });

  it('queues a request per match from study-complete events, once per key', async () => {
    await complete({ uid: '1.2.840.1', called: 'NORTEST', patientId: 'NT0001', series: [{ uid: '1.2.840.1.1', instances: 3 }] });
    const ev = JSON.stringify({ event: 'study-complete', time: new Date().toISOString(), study: '1.2.840.1', manifest: join(siteDir, 'studies', '1.2.840.1.json') });
    const r = await route([], `${ev}\n${JSON.stringify({ event: 'stored', time: 'x', path: '/x' })}\n`);
    expect(r.stderr).toContain('NORTEST as NT0001');
    expect(r.exitCode).toBe(0);
    const events = parseEvents(r.stdout);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'transfer-request', study: '1.2.840.1', project: 'NORTEST', pseudonym: 'NT0001', eventName: 'baseline', action: 'queued', via: ['route:nt'] });
    const id = requestId({ study: '1.2.840.1', project: 'NORTEST', pseudonym: 'NT0001', event: 'baseline' });
    expect(events[0]!.request).toBe(id);
    const req = JSON.parse(await readFile(join(siteDir, 'state', 'requests', `${id}.json`), 'utf8'));
    expect(req).toMatchObject({ study: '1.2.840.1', project: 'NORTEST', pseudonym: 'NT0001', event: 'baseline', signature: { '1.2.840.1.1': 3 }, revision: 1 });

    // Same event again, and --scan: nothing new; --pass lets other events through.
    const again = await route(['--pass'], `${ev}\n${JSON.stringify({ event: 'stored', time: 'x', path: '/x' })}\n`);
    expect(parseEvents(again.stdout).map((e) => e.event)).toEqual(['stored']);
    expect(again.stderr).toContain('already queued');
    const scan = await route(['--scan']);
    expect(parseEvents(scan.stdout)).toEqual([]);
    expect((await readdir(join(siteDir, 'state', 'requests'))).filter((n) => n.endsWith('.json'))).toEqual([`${id}.json`]);
  });

  it('re-creates a request when new series arrive after the last transfer', async () => {
    await complete({ uid: '1.2.840.2', called: 'NORTEST', patientId: 'NT0002', series: [{ uid: '1.2.840.2.1' }] });
    expect(parseEvents((await route(['--scan'])).stdout)).toHaveLength(1);
    const store = new RequestStore(siteLayout(siteDir));
    const key = { study: '1.2.840.2', project: 'NORTEST', pseudonym: 'NT0002', event: 'baseline' };
    const id = requestId(key);
    // A transfer finished it (what fiona-transfer records).
    const req = (await store.readRequest(id))!;
    const done: TransferResult = { ...key, id, status: 'done', revision: req.revision, attempts: 1, signature: req.signature, history: [] };
    await store.writeResult(done);
    expect(await store.settle(id, req.revision, 'done')).toBe(true);
    expect(parseEvents((await route(['--scan'])).stdout)).toEqual([]);

    // A new series arrives (detect-study says study-updated).
    await complete({ uid: '1.2.840.2', called: 'NORTEST', patientId: 'NT0002', series: [{ uid: '1.2.840.2.1' }, { uid: '1.2.840.2.2' }] });
    const upd = JSON.stringify({ event: 'study-updated', time: 'x', study: '1.2.840.2' });
    const ev = parseEvents((await route([], `${upd}\n`)).stdout);
    expect(ev).toMatchObject([{ event: 'transfer-request', action: 'queued', reason: 'new-series' }]);
    const again = (await store.readRequest(id))!;
    expect(again.signature).toEqual({ '1.2.840.2.1': 2, '1.2.840.2.2': 2 });
    expect(again.revision).toBe(req.revision + 1);

    // More instances while queued: the queued request is updated (revision bump), not doubled.
    await complete({ uid: '1.2.840.2', called: 'NORTEST', patientId: 'NT0002', series: [{ uid: '1.2.840.2.1' }, { uid: '1.2.840.2.2', instances: 5 }] });
    expect(parseEvents((await route(['--study', '1.2.840.2'])).stdout)).toMatchObject([{ action: 'updated' }]);
    expect((await store.readRequest(id))!.revision).toBe(req.revision + 2);
  });

  it('reports a study no rule takes, and routes it once the rules change', async () => {
    await complete({ uid: '1.2.840.3', called: 'FIONA', calling: 'MRI9', patientId: 'X1', series: [{ uid: '1.2.840.3.1' }] });
    const r = await route(['--scan']);
    expect(r.exitCode).toBe(0);
    expect(parseEvents(r.stdout)).toMatchObject([{ event: 'study-unrouted', study: '1.2.840.3' }]);
    expect(r.stderr).toMatch(/1\.2\.840\.3 goes nowhere: no route.*called FIONA, calling MRI9/);
    expect(r.stderr).not.toContain('X1');
    const unrouted = join(siteDir, 'state', 'unrouted', '1.2.840.3.json');
    expect(JSON.parse(await readFile(unrouted, 'utf8')).reasons[0]).toMatch(/no route/);
    await writeFile(routes, JSON.stringify({ projects: { P: { destination: DEST } }, routes: [{ project: 'P', sendingAet: 'MRI9', patientId: 'X' }] }));
    expect(parseEvents((await route(['--scan'])).stdout)).toMatchObject([{ event: 'transfer-request', project: 'P', pseudonym: 'X1' }]);
    expect(existsSync(unrouted)).toBe(false);
  });

  it('refuses a routes file with an invalid regex or an unknown project at start, naming the entry', async () => {
    await complete({ uid: '1.2.840.4', called: 'NORTEST', patientId: 'NT0004', series: [{ uid: '1.2.840.4.1' }] });
    await writeFile(routes, JSON.stringify({ projects: { P: { destination: DEST } }, routes: [{ name: 'ok', project: 'P', patientId: 'A' }, { name: 'broken', project: 'P', patientName: '(unclosed' }] }));
    const r = await route(['--scan']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${routes}: routes[1] (broken): patientName is not a valid regular expression "(unclosed"`);
    expect(existsSync(join(siteDir, 'state', 'requests'))).toBe(false);
    await writeFile(routes, JSON.stringify({ projects: { P: { destination: DEST } }, routes: [{ name: 'typo', project: 'PP', patientId: 'A' }] }));
    const u = await route(['--check']);
    expect(u.exitCode).toBe(2);
    expect(u.stderr).toContain('routes[0] (typo): unknown project "PP"');
  });

  it('concurrent runs queue each key once and agree on automatic IDs', async () => {
    await writeFile(routes, JSON.stringify({
      projects: { AUTO: { destination: DEST, autoId: { pattern: 'A[0-9]{5}' } } },
      routes: [{ project: 'AUTO', incomingAet: 'NORTEST' }],
    }));
    for (let i = 1; i <= 4; i++) await complete({ uid: `1.2.840.7.${i}`, called: 'NORTEST', patientId: 'SAME-PATIENT', series: [{ uid: `1.2.840.7.${i}.1` }] });
    const runs = await Promise.all([1, 2, 3, 4].map(() => route(['--scan'])));
    const events = runs.flatMap((r) => parseEvents(r.stdout));
    expect(events.map((e) => e.study).sort()).toEqual(['1.2.840.7.1', '1.2.840.7.2', '1.2.840.7.3', '1.2.840.7.4']);
    expect(new Set(events.map((e) => e.pseudonym)).size).toBe(1);
    expect((await readdir(join(siteDir, 'state', 'requests'))).filter((n) => n.endsWith('.json'))).toHaveLength(4);
  });

  it('takes the site and the rules from the config file (FIONA keys)', async () => {
    await complete({ uid: '1.2.840.8', called: 'NORTEST', patientId: 'NT0008', series: [{ uid: '1.2.840.8.1' }] });
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ DATADIR: siteDir, routes }));
    const r = await runTool('fiona-route', ['--scan'], { env: { FIONA_CONFIG: config } });
    expect(parseEvents(r.stdout)).toMatchObject([{ study: '1.2.840.8', pseudonym: 'NT0008' }]);
    await writeFile(config, JSON.stringify({ DATADIR: siteDir, redcap: { url: 'http://127.0.0.1:1/api/' } }));
    const bad = await runTool('fiona-route', ['--scan'], { env: { FIONA_CONFIG: config } });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--redcap needs --token-file');
  });

  it('couples by the AccessionNumber of the instances (classify\'s series JSON has none)', async () => {
    const { synth, importStudies } = await import('../transfer/setup.js');
    await synth(join(dir, 'synth'), ['--seed', 'acc', '--series', '1', '--instances', '1', '--rows', '16']);
    const [s] = await importStudies(join(dir, 'synth'), siteDir, { calling: 'X', called: 'Y' });
    const { readHeader } = await import('../../src/lib/dicom/index.js');
    const accession = (await readHeader(s!.files[0]!)).string('AccessionNumber')!;
    expect(accession).toMatch(/\w+/);
    await writeFile(routes, JSON.stringify({
      projects: { NORTEST: { destination: DEST } },
      coupling: [{ accessionNumber: accession, project: 'NORTEST', subject: 'NT0100', event: 'mri-2', date: new Date().toISOString().slice(0, 10) }],
    }));
    const r = await route(['--scan']);
    expect(parseEvents(r.stdout)).toMatchObject([{ study: s!.uid, project: 'NORTEST', pseudonym: 'NT0100', eventName: 'mri-2' }]);
  });

  it('checks the shipped examples/routes.json', async () => {
    const r = await runTool('fiona-route', ['--routes', join(ROOT, 'examples', 'routes.json'), '--check']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(r.stderr).toContain('3 routes, 1 coupling entries, 3 projects');
  });

  it('takes study manifests as arguments (fiona-detect-study --exec)', async () => {
    await complete({ uid: '1.2.840.6', called: 'NORTEST', patientId: 'NT0006', series: [{ uid: '1.2.840.6.1' }] });
    const r = await route([join(siteDir, 'studies', '1.2.840.6.json')]);
    expect(parseEvents(r.stdout)).toMatchObject([{ event: 'transfer-request', study: '1.2.840.6', pseudonym: 'NT0006' }]);
    const bad = await route(['/etc/passwd']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/\/etc\/passwd: neither a StudyInstanceUID nor a manifest/);
  });

  it('--dry-run writes nothing; a missing study fails with exit 1', async () => {
    await complete({ uid: '1.2.840.5', called: 'NORTEST', patientId: 'NT0005', series: [{ uid: '1.2.840.5.1' }] });
    const d = await route(['--scan', '--dry-run']);
    expect(parseEvents(d.stdout)).toMatchObject([{ event: 'transfer-request', action: 'queued' }]);
    expect(existsSync(join(siteDir, 'state', 'requests'))).toBe(false);
    const m = await route(['--study', '1.2.840.999']);
    expect(m.exitCode).toBe(1);
    expect(m.stderr).toMatch(/1\.2\.840\.999 has no instances/);
  });
});
