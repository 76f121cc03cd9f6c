import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort } from '../peers/ports.js';
import { couplingProject, FakeRedcap, incomingProject, projectsProject, routingProject } from '../peers/redcap.js';
import { writeStudy, type FixtureStudy } from '../route/fixtures.js';

const T = { routing: '1A'.repeat(16), coupling: '2B'.repeat(16), projects: '3C'.repeat(16), incoming: '4D'.repeat(16) };
const DEST = 'dicom://RPACS@127.0.0.1:104';

describe('fiona-route with REDCap', () => {
  let redcap: FakeRedcap;
  let dir: string;
  let siteDir: string;
  let tokens: string;
  let local: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    siteDir = join(dir, 'site');
    redcap = new FakeRedcap([routingProject(T.routing, { NORTEST: 'NORTEST' }), couplingProject(T.coupling), projectsProject(T.projects), incomingProject(T.incoming)]);
    await redcap.start();
    redcap.seed(T.routing, [{ record_id: 1, routing_active: 1, routing_dest_project: 'NORTEST', routing_incoming_aetitle: 'NORTEST', routing_allowed_patientid: 'NT\\d+' }]);
    redcap.seed(T.coupling, [{ record_id: 1, cl_accessionnumber: 'ACC9', cl_projectname: 'NORTEST', cl_subjectid: 'NT0900', cl_eventname: 'followup', cl_date: new Date().toISOString().slice(0, 10) }]);
    redcap.seed(T.projects, [{ record_id: 1, project_name: 'NORTEST', project_active: 1 }]);
    tokens = join(dir, 'tokens');
    await writeFile(tokens, Object.entries(T).map(([k, v]) => `${k}=${v}`).join('\n'), { mode: 0o600 });
    local = join(dir, 'local.json');
    await writeFile(local, JSON.stringify({ defaultDestination: DEST }));
  });
  afterEach(async () => {
    await redcap.stop();
    await cleanup();
  });

  async function complete(s: FixtureStudy): Promise<void> {
    await writeStudy(siteDir, s);
    await mkdir(join(siteDir, 'studies'), { recursive: true });
    await writeFile(join(siteDir, 'studies', `${s.uid}.json`), '{}');
  }
  const route = (url: string, args: string[] = []) =>
    runTool('fiona-route', ['--site', siteDir, '--routes', local, '--redcap', url, '--token-file', tokens, '--scan', ...args]);

  it('routes by REDCap rules and coupling list, writes Incoming, never shows a token', async () => {
    await complete({ uid: '1.2.7.1', called: 'NORTEST', patientId: 'NT0001', accessionNumber: 'ACC9', series: [{ uid: '1.2.7.1.1' }] });
    const r = await route(redcap.url);
    expect(r.stderr).not.toMatch(new RegExp(Object.values(T).join('|')));
    expect(r.stdout).not.toMatch(new RegExp(Object.values(T).join('|')));
    expect(r.exitCode).toBe(0);
    const ev = parseEvents(r.stdout).map((e) => `${e.project}/${e.pseudonym}/${e.eventName}/${(e.via as string[]).join()}`).sort();
    expect(ev).toEqual(['NORTEST/NT0001//route:1', 'NORTEST/NT0900/followup/coupling:1']);
    const rows = redcap.rows(T.incoming);
    expect(rows.filter((x) => x.redcap_repeat_instrument === 'transfers').map((x) => `${x.transfer_name}@${x.redcap_repeat_instance}`).sort()).toEqual(['NT0001@1', 'NT0900@2']);
    expect(rows.filter((x) => x.redcap_repeat_instrument === 'series')).toHaveLength(1);
    // Requests remember their REDCap instance; a rerun adds nothing to REDCap.
    const before = redcap.rows(T.incoming).length;
    const again = await route(redcap.url);
    expect(parseEvents(again.stdout)).toEqual([]);
    expect(redcap.rows(T.incoming).length).toBe(before);
  });

  it('REDCap unreachable: the run fails with exit 3 and queues nothing', async () => {
    await complete({ uid: '1.2.7.2', called: 'NORTEST', patientId: 'NT0002', series: [{ uid: '1.2.7.2.1' }] });
    const r = await route(`http://127.0.0.1:${await freePort()}/api/`);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/REDCap routing project at http:\/\/127\.0\.0\.1:\d+\/api\/ is unreachable: ECONNREFUSED/);
    expect(existsSync(join(siteDir, 'state', 'requests'))).toBe(false);
  });

  it('REDCap answering an error for the rules: exit 3, clear message, nothing queued', async () => {
    await complete({ uid: '1.2.7.3', called: 'NORTEST', patientId: 'NT0003', series: [{ uid: '1.2.7.3.1' }] });
    redcap.failNext(1, 403, JSON.stringify({ error: 'You do not have permissions to use the API' }));
    const r = await route(redcap.url);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain('answered HTTP 403: You do not have permissions to use the API');
    expect(existsSync(join(siteDir, 'state', 'requests'))).toBe(false);
  });

  it('a wrong or revoked token stops the run before anything is queued, naming the project', async () => {
    await complete({ uid: '1.2.7.5', called: 'NORTEST', patientId: 'NT0005', series: [{ uid: '1.2.7.5.1' }] });
    await writeFile(tokens, Object.entries({ ...T, incoming: '9F'.repeat(16) }).map(([k, v]) => `${k}=${v}`).join('\n'), { mode: 0o600 });
    const r = await route(redcap.url);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/REDCap incoming project at .* answered HTTP 403: You do not have permissions to use the API/);
    expect(r.stderr).not.toContain('9F'.repeat(16));
    expect(existsSync(join(siteDir, 'state', 'requests'))).toBe(false);
  });

  it('Incoming failing after the rules loaded: local requests stay queued, exit 3', async () => {
    await complete({ uid: '1.2.7.4', called: 'NORTEST', patientId: 'NT0004', series: [{ uid: '1.2.7.4.1' }] });
    // The three rule projects answer; the Incoming project answers with an error page.
    redcap.failFor(T.incoming, 10, 503, '<html>Service Unavailable</html>', 'record');
    const r = await route(redcap.url);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/queued locally, but REDCap incoming project at .* answered HTTP 503/);
    expect((await readdir(join(siteDir, 'state', 'requests'))).filter((n) => n.endsWith('.json'))).toHaveLength(1);
  });
});
