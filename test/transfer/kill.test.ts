import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeEach, describe, expect, it } from 'vitest';
import { binPath, parseEvents, runTool } from '../helpers/cli.js';
import { importStudies, synth, useResearchPacs } from './setup.js';

const N = 4 * 50;

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('fiona-transfer killed with -9 mid-study, then run again', () => {
  const fx = useResearchPacs();
  let dir: string;
  let siteDir: string;
  let routes: string;
  beforeEach(async () => {
    ({ dir, siteDir } = fx);
    routes = join(dir, 'routes.json');
    await writeFile(routes, JSON.stringify({
      projects: { NORTEST: { destination: `dicom://RPACS@127.0.0.1:${fx.pacs.dicomPort}?calling=FIONA`, autoId: { pattern: 'NT[0-9]{4}' } } },
      routes: [{ project: 'NORTEST', incomingAet: 'NORTEST' }],
    }));
  });

  async function queueStudy(seed: string): Promise<string> {
    await synth(join(dir, 'synth'), ['--seed', seed, '--series', '4', '--instances', String(N / 4), '--rows', '64']);
    await importStudies(join(dir, 'synth'), siteDir, { calling: 'MRI1', called: 'NORTEST' });
    const r = await runTool('fiona-route', ['--site', siteDir, '--routes', routes, '--scan']);
    return String(parseEvents(r.stdout)[0]!.request);
  }

  async function killedThenRerun(id: string, killWhen: () => Promise<boolean>, label: string): Promise<void> {
    const proc = execa(binPath('fiona-transfer'), ['--site', siteDir, '--routes', routes, '--retry-delay', '0s'], { reject: false, env: { NO_COLOR: '1' } });
    await until(label, killWhen);
    proc.kill('SIGKILL');
    const killed = await proc;
    expect(killed.signal).toBe('SIGKILL');
    const mid = JSON.parse(await readFile(join(siteDir, 'state', 'transfers', `${id}.json`), 'utf8'));
    expect(mid.status).toBe('running');
    expect(existsSync(join(siteDir, 'state', 'requests', `${id}.json`))).toBe(true);

    const again = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes, '--retry-delay', '0s']);
    expect(again.exitCode, String(again.stderr)).toBe(0);
    const [ev] = parseEvents(again.stdout);
    expect(ev).toMatchObject({ event: 'transferred', instances: N, series: 4, attempts: 2 });
    const result = JSON.parse(await readFile(join(siteDir, 'state', 'transfers', `${id}.json`), 'utf8'));
    expect(result.history.map((h: { status: string }) => h.status)).toEqual(['interrupted', 'done']);
    // Nothing lost, nothing doubled: exactly one study with every instance once.
    const studies = await fx.pacs.rest<string[]>('GET', '/studies');
    expect(studies).toHaveLength(1);
    expect(await fx.pacs.instances()).toHaveLength(N);
    expect(await fx.pacs.studyInstances(String(ev!.mappedStudy))).toHaveLength(N);
    expect(existsSync(join(siteDir, 'state', 'requests', `${id}.json`))).toBe(false);
    expect(await readdir(join(siteDir, 'state', 'work'))).toEqual([]);
    expect(existsSync(join(siteDir, 'state', 'locks', `transfer-${id}.lock`))).toBe(false);
  }

  it('during sending: some instances at the PACS', async () => {
    const id = await queueStudy('kill-send');
    let atKill = 0;
    await killedThenRerun(id, async () => {
      atKill = (await fx.pacs.instances()).length;
      return atKill >= 5;
    }, 'the first instances at the PACS');
    // The kill landed mid-study, not after it.
    expect(atKill).toBeLessThan(N);
  }, 150_000);

  it('during de-identification: outputs half written, nothing sent yet', async () => {
    const id = await queueStudy('kill-anon');
    const work = join(siteDir, 'state', 'work', id);
    await killedThenRerun(id, async () => {
      if (!existsSync(work)) return false;
      const studies = await readdir(work);
      return studies.length > 0;
    }, 'the first de-identified files');
  }, 150_000);
});
