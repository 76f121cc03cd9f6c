import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, ROOT } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startOrthanc, type Orthanc } from '../peers/orthanc.js';
import { freePort, waitForPort } from '../peers/ports.js';
import { DCMTK_ENV, requireProgram } from '../peers/process.js';
import { synth } from './setup.js';

/**
 * The "done when": a study sent by DCMTK storescu to fiona-receive ends up
 * de-identified in the research PACS with no command typed after the sending:
 * receive | classify | detect-study | route, and transfer --watch (cron works the same).
 */
describe('the automatic pipeline: storescu -> receive | classify | detect-study | route; transfer --watch -> Orthanc', () => {
  let pacs: Orthanc;
  let dir: string;
  let cleanup: () => Promise<void>;
  const procs: ResultPromise[] = [];

  beforeAll(async () => {
    pacs = await startOrthanc({ aet: 'RPACS' });
    ({ dir, cleanup } = await makeTempDir());
  });
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await Promise.allSettled(procs);
    await pacs?.stop();
    await cleanup();
  });

  it('delivers the study de-identified, unattended', async () => {
    const storescu = requireProgram('storescu', 'dcmtk');
    const site = join(dir, 'site');
    const routes = join(dir, 'routes.json');
    await writeFile(routes, JSON.stringify({
      projects: { NORTEST: { destination: `dicom://RPACS@127.0.0.1:${pacs.dicomPort}?calling=FIONA`, autoId: { pattern: 'NT[0-9]{4}' } } },
      routes: [{ name: 'scanner-1', project: 'NORTEST', sendingAet: 'MRI1', event: 'baseline' }],
    }));
    await synth(join(dir, 'synth'), ['--seed', 'pipeline', '--series', '3', '--instances', '4', '--rows', '64']);
    const port = await freePort();
    const env = { NO_COLOR: '1' };
    const opts = { reject: false, env, buffer: { stdout: false, stderr: true }, forceKillAfterDelay: 60_000 } as const;
    const receive = execa(binPath('fiona-receive'), ['--site', site, '--port', String(port), '--host', '127.0.0.1', '-q'], { ...opts, stdin: 'ignore' });
    const classify = execa(binPath('fiona-classify'), ['--site', site, '-q'], opts);
    const detect = execa(binPath('fiona-detect-study'), ['--site', site, '--quiet', '1s'], opts);
    const route = execa(binPath('fiona-route'), ['--site', site, '--routes', routes], { ...opts, buffer: { stdout: true, stderr: true } });
    const transfer = execa(binPath('fiona-transfer'), ['--site', site, '--routes', routes, '--watch', '--interval', '500ms'], { ...opts, stdin: 'ignore', buffer: { stdout: true, stderr: true } });
    procs.push(receive, classify, detect, route, transfer);
    receive.stdout!.pipe(classify.stdin!);
    classify.stdout!.pipe(detect.stdin!);
    detect.stdout!.pipe(route.stdin!);
    await waitForPort(port);

    // The only command: the scanner sends.
    const sent = await execa(storescu, ['-aet', 'MRI1', '-aec', 'FIONA', '+sd', '+r', '127.0.0.1', String(port), join(dir, 'synth')], { env: DCMTK_ENV, reject: false });
    expect(sent.exitCode, String(sent.stderr)).toBe(0);

    const until = Date.now() + 90_000;
    while ((await pacs.instances()).length < 12 && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    const ids = await pacs.instances();
    expect(ids).toHaveLength(12);
    const tags = await Promise.all(ids.map((id) => pacs.rest<Record<string, string>>('GET', `/instances/${id}/simplified-tags`)));
    const pseudonyms = new Set(tags.map((t) => t.PatientID));
    expect(pseudonyms.size).toBe(1);
    expect([...pseudonyms][0]).toMatch(/^NT\d{4}$/);
    for (const t of tags) {
      expect(t.PatientName).toBe(t.PatientID);
      expect(t.InstitutionName).toBe('NORTEST');
      expect(t.ReferringPhysicianName).toBe('EventName:baseline');
    }

    receive.kill('SIGTERM');
    transfer.kill('SIGTERM');
    const [r, t] = await Promise.all([route, transfer]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout)).toContain('"event":"transfer-request"');
    expect(t.exitCode, String(t.stderr)).toBe(0);
    expect(String(t.stdout)).toContain('"event":"transferred"');
  }, 150_000);

  it('examples/pipeline-auto.sh does the same, and stops cleanly on SIGTERM', async () => {
    for (const id of await pacs.rest<string[]>('GET', '/studies')) await pacs.rest('DELETE', `/studies/${id}`);
    const storescu = requireProgram('storescu', 'dcmtk');
    const site = join(dir, 'site2');
    const routes = join(dir, 'routes2.json');
    await writeFile(routes, JSON.stringify({
      projects: { NORTEST: { destination: `dicom://RPACS@127.0.0.1:${pacs.dicomPort}?calling=FIONA`, autoId: { pattern: 'NT[0-9]{4}' } } },
      routes: [{ project: 'NORTEST', sendingAet: 'MRI1' }],
    }));
    await synth(join(dir, 'synth2'), ['--seed', 'script', '--series', '2', '--instances', '3', '--rows', '32']);
    const port = await freePort();
    const script = execa('bash', [join(ROOT, 'examples', 'pipeline-auto.sh')], {
      reject: false,
      // The stages drain after SIGTERM; on a busy machine that may take more than execa's 5 s.
      forceKillAfterDelay: 60_000,
      env: { PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`, SITE: site, ROUTES: routes, PORT: String(port), QUIET: '1s', NO_COLOR: '1' },
    });
    procs.push(script);
    await waitForPort(port);
    const sent = await execa(storescu, ['-aet', 'MRI1', '-aec', 'FIONA', '+sd', '+r', '127.0.0.1', String(port), join(dir, 'synth2')], { env: DCMTK_ENV, reject: false });
    expect(sent.exitCode, String(sent.stderr)).toBe(0);
    const until = Date.now() + 90_000;
    while ((await pacs.instances()).length < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    expect(await pacs.instances()).toHaveLength(6);
    script.kill('SIGTERM');
    const done = await script;
    expect(done.exitCode, String(done.stderr)).toBe(0);
    expect(await readFile(join(site, 'state', 'log', 'transfer.ndjson'), 'utf8')).toContain('"event":"transferred"');
    expect(await readFile(join(site, 'state', 'log', 'route.ndjson'), 'utf8')).toContain('"event":"transfer-request"');
  }, 150_000);
});
