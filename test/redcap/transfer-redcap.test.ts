import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEvents, runTool } from '../helpers/cli.js';
import type { Orthanc } from '../peers/orthanc.js';
import { freePort } from '../peers/ports.js';
import { FakeRedcap, incomingProject } from '../peers/redcap.js';
import { importStudies, synth, useResearchPacs } from '../transfer/setup.js';

const TOKEN = '5E'.repeat(16);

describe('fiona-transfer writes results to REDCap Incoming', () => {
  const fx = useResearchPacs();
  let pacs: Orthanc;
  let redcap: FakeRedcap;
  let dir: string;
  let siteDir: string;
  let tokens: string;
  beforeEach(async () => {
    ({ pacs, dir, siteDir } = fx);
    redcap = new FakeRedcap([incomingProject(TOKEN)]);
    await redcap.start();
    tokens = join(dir, 'tokens');
    await writeFile(tokens, `incoming=${TOKEN}\n`, { mode: 0o600 });
  });
  afterEach(async () => {
    await redcap.stop();
  });

  async function routesTo(port: number): Promise<string> {
    const routes = join(dir, 'routes.json');
    await writeFile(routes, JSON.stringify({
      projects: { NORTEST: { destination: `dicom://RPACS@127.0.0.1:${port}`, autoId: { pattern: 'NT[0-9]{4}' } } },
      routes: [{ project: 'NORTEST', incomingAet: 'NORTEST', event: 'baseline' }],
    }));
    return routes;
  }

  it('records the transfer date, mapped UID and flags; REDCap down: sent, not marked done, recorded later without resending', async () => {
    const routes = await routesTo(pacs.dicomPort);
    await synth(join(dir, 'synth'), ['--seed', 'rc', '--series', '1', '--instances', '3', '--rows', '32']);
    const [s] = await importStudies(join(dir, 'synth'), siteDir, { calling: 'MRI1', called: 'NORTEST' });
    const rc = ['--redcap', redcap.url, '--token-file', tokens];
    const r = await runTool('fiona-route', ['--site', siteDir, '--routes', routes, ...rc, '--scan']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const id = String(parseEvents(r.stdout)[0]!.request);
    const transfers = () => redcap.rows(TOKEN).filter((x) => x.redcap_repeat_instrument === 'transfers');
    expect(transfers()).toMatchObject([{ study_instance_uid: s!.uid, transfer_project_name: 'NORTEST', transfer_event_name: 'baseline', transfer_date: '' }]);

    // REDCap answers errors while the study is sent.
    redcap.failFor(TOKEN, 1, 500, '<html>Internal Server Error</html>', 'record');
    const t1 = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes, ...rc]);
    expect(t1.exitCode, String(t1.stderr)).toBe(3);
    expect(t1.stderr).toMatch(/the study was sent, but recording the result in REDCap incoming project at .* failed: .*HTTP 500/);
    expect(parseEvents(t1.stdout)).toMatchObject([{ event: 'transfer-pending' }]);
    const mid = JSON.parse(await readFile(join(siteDir, 'state', 'transfers', `${id}.json`), 'utf8'));
    expect(mid).toMatchObject({ status: 'sent', reportPending: true });
    expect(transfers()[0]!.transfer_date).toBe('');
    expect(await pacs.instances()).toHaveLength(3);

    // Next run: REDCap is back; the PACS address is now dead, so a resend would fail.
    await routesTo(await freePort());
    const t2 = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes, ...rc]);
    expect(t2.exitCode, String(t2.stderr)).toBe(0);
    const [ev] = parseEvents(t2.stdout);
    expect(ev).toMatchObject({ event: 'transferred', attempts: 1 });
    const row = transfers()[0]!;
    expect(row).toMatchObject({ transfer_mapped_uid: mid.mappedStudyUid, transfers_complete: '2', transfer_error___1: '0', transfer_error___2: '0', transfer_error_message: '' });
    expect(row.transfer_date).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
    expect(JSON.parse(await readFile(join(siteDir, 'state', 'transfers', `${id}.json`), 'utf8')).status).toBe('done');
  });

  it('records a failed attempt with the send error flag and message', async () => {
    const routes = await routesTo(await freePort());
    await synth(join(dir, 'synth'), ['--seed', 'rc2', '--series', '1', '--instances', '2', '--rows', '32']);
    await importStudies(join(dir, 'synth'), siteDir, { calling: 'MRI1', called: 'NORTEST' });
    const rc = ['--redcap', redcap.url, '--token-file', tokens];
    await runTool('fiona-route', ['--site', siteDir, '--routes', routes, ...rc, '--scan']);
    const t = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes, ...rc, '--retry-delay', '0s']);
    expect(t.exitCode, String(t.stderr)).toBe(1);
    const row = redcap.rows(TOKEN).find((x) => x.redcap_repeat_instrument === 'transfers')!;
    expect(row).toMatchObject({ transfer_error___2: '1', transfers_complete: '1', transfer_date: '' });
    expect(row.transfer_error_message).toMatch(/^attempt 1: send to dicom:\/\/RPACS@127\.0\.0\.1:\d+.*connection refused/);
  });
});
