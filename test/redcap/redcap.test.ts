import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RedcapClient, RedcapError } from '../../src/lib/redcap/client.js';
import { IncomingSink } from '../../src/lib/redcap/sink.js';
import { RedcapRulesSource } from '../../src/lib/redcap/source.js';
import { parseTokenText, readTokenFile } from '../../src/lib/redcap/tokens.js';
import { readStudy } from '../../src/lib/route/study.js';
import { UnavailableError } from '../../src/lib/errors.js';
import type { TransferRequest, TransferResult } from '../../src/lib/transfer/requests.js';
import { freePort } from '../peers/ports.js';
import { couplingProject, FakeRedcap, incomingProject, projectsProject, routingProject } from '../peers/redcap.js';
import { makeTempDir } from '../helpers/tmp.js';
import { writeStudy } from '../route/fixtures.js';

const T = {
  routing: 'A'.repeat(32),
  coupling: 'B'.repeat(32),
  projects: 'C'.repeat(32),
  incoming: 'D'.repeat(32),
};
const DEST = 'dicom://RPACS@127.0.0.1:104';

describe('REDCap client, source and sink against the REDCap stand-in', () => {
  let redcap: FakeRedcap;
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    redcap = new FakeRedcap([
      routingProject(T.routing, { NORTEST: 'NORTEST', 'QC-NHPhantom': 'QC - NH Phantom' }),
      couplingProject(T.coupling),
      projectsProject(T.projects),
      incomingProject(T.incoming),
    ]);
    await redcap.start();
  });
  afterEach(async () => {
    await redcap.stop();
    await cleanup();
  });

  it('exports with records, fields and filterLogic, imports with overwriteBehavior, by form POST', async () => {
    const c = new RedcapClient(redcap.url, T.incoming, 'incoming');
    expect(await c.importRecords([
      { study_instance_uid: '1.2.3', study_description: 'MR HEAD' },
      { study_instance_uid: '1.2.3', redcap_repeat_instrument: 'transfers', redcap_repeat_instance: 1, transfer_project_name: 'P', transfer_error_message: 'boom' },
      { study_instance_uid: '1.2.4', study_description: 'CT' },
    ])).toBe(2);
    const rows = await c.exportRecords({ records: ['1.2.3'], fields: ['study_instance_uid', 'transfer_project_name'] });
    // The record ID field sits on the first (non-repeating) form, so that row comes too.
    expect(rows).toEqual([
      { study_instance_uid: '1.2.3', transfer_project_name: '', redcap_repeat_instrument: '', redcap_repeat_instance: '' },
      { study_instance_uid: '1.2.3', transfer_project_name: 'P', redcap_repeat_instrument: 'transfers', redcap_repeat_instance: '1' },
    ]);
    const filtered = await c.exportRecords({ fields: ['study_instance_uid', 'study_description'], filterLogic: "[study_description] = 'CT'" });
    expect(filtered.map((r) => r.study_instance_uid)).toEqual(['1.2.4']);
    // normal: a blank leaves data alone; overwrite: a blank clears it.
    await c.importRecords([{ study_instance_uid: '1.2.3', redcap_repeat_instrument: 'transfers', redcap_repeat_instance: 1, transfer_error_message: '' }], 'normal');
    expect(redcap.rows(T.incoming).find((r) => r.redcap_repeat_instance === '1')!.transfer_error_message).toBe('boom');
    await c.importRecords([{ study_instance_uid: '1.2.3', redcap_repeat_instrument: 'transfers', redcap_repeat_instance: 1, transfer_error_message: '' }], 'overwrite');
    expect(redcap.rows(T.incoming).find((r) => r.redcap_repeat_instance === '1')!.transfer_error_message).toBe('');
    for (const call of redcap.calls) {
      expect(call.method).toBe('POST');
      expect(call.contentType).toBe('application/x-www-form-urlencoded');
      expect(call.url).toBe('/api/');
      expect(call.params.content).toBe('record');
      expect(call.params.format).toBe('json');
      expect(call.params.type).toBe('flat');
    }
    expect(redcap.calls[1]!.params).toMatchObject({ action: 'export', 'records[0]': '1.2.3', 'fields[1]': 'transfer_project_name' });
  });

  it('reports REDCap error answers clearly and never shows the token', async () => {
    const wrong = new RedcapClient(redcap.url, 'E'.repeat(32), 'routing');
    const e1 = await wrong.exportRecords().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(RedcapError);
    expect((e1 as RedcapError).message).toBe(`REDCap routing project at ${redcap.url} answered HTTP 403: You do not have permissions to use the API`);
    expect((e1 as RedcapError).exitCode).toBe(3);
    const c = new RedcapClient(redcap.url, T.incoming, 'incoming');
    await expect(c.exportRecords({ fields: ['nope'] })).rejects.toThrow(/HTTP 400: The following values in the parameter "fields" are not valid: 'nope'/);
    await expect(c.importRecords([{ study_instance_uid: '1', bogus: 'x' }])).rejects.toThrow(/HTTP 400: .*bogus/);
    await expect(c.exportRecords({ filterLogic: '[nofield] = 1' })).rejects.toThrow(/filterLogic/);
    // An error page that is not the API's JSON, and a server that echoes the token.
    redcap.failNext(1, 500, '<html>Internal Server Error</html>');
    await expect(c.exportRecords()).rejects.toThrow(/HTTP 500: <html>Internal Server Error/);
    redcap.failNext(1, 400, JSON.stringify({ error: `bad token ${T.incoming}` }));
    const echoed = await c.exportRecords().catch((e: Error) => e.message);
    expect(echoed).toContain('bad token [token]');
    expect(echoed).not.toContain(T.incoming);
    // The token check: project info answers only to a valid token.
    expect(await c.projectInfo()).toMatchObject({ project_title: 'Incoming' });
    await expect(wrong.projectInfo()).rejects.toThrow(/HTTP 403: You do not have permissions to use the API/);
    // Unreachable: nothing listens on this port.
    const closed = new RedcapClient(`http://127.0.0.1:${await freePort()}/api/`, T.incoming, 'incoming');
    const e2 = await closed.exportRecords().catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(UnavailableError);
    expect((e2 as Error).message).toMatch(/REDCap incoming project at .* is unreachable: ECONNREFUSED/);
  });

  it('reads token files by role, refuses readable ones and never prints a token', async () => {
    expect(parseTokenText(`# tokens\nrouting=${T.routing}\nincoming = ${T.incoming}\n`, 'f')).toEqual({ routing: T.routing, incoming: T.incoming });
    expect(parseTokenText(`${T.routing}\n`, 'f')).toEqual({ routing: T.routing, coupling: T.routing, projects: T.routing, incoming: T.routing });
    let msg = '';
    try {
      parseTokenText('routing=not-a-token-SECRET\n', 'f');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe('f line 1: not a REDCap API token (32 hex digits)');
    const file = join(dir, 'tokens');
    await writeFile(file, `routing=${T.routing}\n`);
    await chmod(file, 0o644);
    await expect(readTokenFile(file)).rejects.toThrow(/readable by others \(mode 644\): run chmod 600/);
    await chmod(file, 0o600);
    expect(await readTokenFile(file)).toEqual({ routing: T.routing });
  });

  it('reads routes, coupling list and projects with FIONA field names, merged with local project settings', async () => {
    redcap.seed(T.routing, [
      { record_id: 1, routing_active: 1, routing_dest_project: 'NORTEST', routing_incoming_aetitle: 'NORTEST', routing_allowed_patientid: 'NT\\d+', routing_event_name: 'baseline' },
      { record_id: 2, routing_active: 0, routing_dest_project: 'NORTEST', routing_allowed_patientid: '(' },
      { record_id: 3, routing_active: 1, routing_dest_project: 'QC-NHPhantom', routing_sending_aetitle: 'PHANTOM', routing_allowed_patientname: 'QC' },
    ]);
    const today = new Date();
    const d = (daysAgo: number): string => new Date(today.getTime() - daysAgo * 86_400_000).toISOString().slice(0, 10);
    redcap.seed(T.coupling, [
      { record_id: 1, cl_accessionnumber: 'ACC1', cl_projectname: 'NORTEST', cl_subjectid: 'NT0100', cl_eventname: 'fu', cl_date: `${d(2)} 10:00` },
      { record_id: 2, cl_accessionnumber: 'ACC2', cl_projectname: 'NORTEST', cl_subjectid: 'NT0200', cl_date: `${d(60)} 10:00` },
    ]);
    redcap.seed(T.projects, [
      { record_id: 1, project_name: 'NORTEST', project_active: 1, project_features___0: 1, project_use_autoid: 0 },
      { record_id: 1, redcap_repeat_instrument: 'rewritepixelexclusions', redcap_repeat_instance: 1, rewrite_ex_tag: '1', rewrite_ex_reg: '.*' },
      { record_id: 2, project_name: 'QC - NH Phantom', project_active: 1, project_use_autoid: 1, project_patient_naming: 'QC[0-9]{3}', project_autoid_aetitle: 'QCAET' },
    ]);
    const c = (t: string, role: string) => new RedcapClient(redcap.url, t, role);
    const source = new RedcapRulesSource({
      routing: c(T.routing, 'routing'),
      coupling: c(T.coupling, 'coupling'),
      projects: c(T.projects, 'projects'),
      local: { routes: [], coupling: [], projects: [{ name: 'NORTEST', destination: 'sftp://research@127.0.0.1:22/in' }], defaultDestination: DEST },
      baseDir: dir,
    });
    const rules = await source.load();
    expect(rules.routes.map((r) => [r.name, r.project])).toEqual([['1', 'NORTEST'], ['3', 'QC - NH Phantom']]);
    expect(rules.coupling.map((e) => e.subject)).toEqual(['NT0100']);
    expect(rules.projects.get('NORTEST')).toMatchObject({ destination: 'sftp://research@127.0.0.1:22/in', active: true });
    expect([...rules.projects.get('NORTEST')!.features]).toEqual(['drop-presentation-states']);
    expect(rules.projects.get('QC - NH Phantom')).toMatchObject({ destination: DEST, autoId: { pattern: 'QC[0-9]{3}', aet: 'QCAET' } });
    const exports = redcap.calls.filter((x) => x.params.action === 'export');
    expect(exports.find((x) => x.params.token === T.routing)!.params).toMatchObject({ rawOrLabel: 'label', filterLogic: "[routing_active] = '1'" });
    expect(exports.find((x) => x.params.token === T.coupling)!.params.filterLogic).toMatch(/^\[cl_date\] >= '\d{4}-\d{2}-\d{2}'$/);

    // A bad pattern in REDCap refuses the run, naming the record.
    redcap.seed(T.routing, [{ record_id: 9, routing_active: 1, routing_dest_project: 'NORTEST', routing_allowed_patientid: 'NT[' }]);
    await expect(source.load()).rejects.toThrow(/REDCap .*: routes\[2\] \(9\): patientId is not a valid regular expression "NT\["/);
  });

  it('writes arrivals with keyed hashes and transfer results to Incoming, idempotently', async () => {
    const site = await writeStudy(join(dir, 'site'), { uid: '1.2.5', patientId: 'MRN-777', patientName: 'Hansen^Kari', accessionNumber: 'ACC5', calling: 'MRI1', called: 'NORTEST', series: [{ uid: '1.2.5.1', instances: 3 }, { uid: '1.2.5.2', instances: 1 }] });
    const study = await readStudy(site, '1.2.5');
    const sink = new IncomingSink(new RedcapClient(redcap.url, T.incoming, 'incoming'), site.state);
    await sink.studyArrived(study);
    const calls = redcap.calls.length;
    await sink.studyArrived(study);
    // Unchanged study: nothing sent again (cron --scan must not re-send every study).
    expect(redcap.calls.length).toBe(calls);
    const rows = redcap.rows(T.incoming);
    const main = rows.find((r) => r.redcap_repeat_instrument === '')!;
    expect(main).toMatchObject({ study_instance_uid: '1.2.5', study_aetitle_sender: 'MRI1', study_aetitle_addressed: 'NORTEST', study_accession_number: 'ACC5' });
    expect(main.study_patient_id).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(rows)).not.toMatch(/MRN-777|Hansen|Kari/);
    const series = rows.filter((r) => r.redcap_repeat_instrument === 'series');
    expect(series.map((r) => [r.redcap_repeat_instance, r.series_instance_uid, r.series_num_files])).toEqual([['1', '1.2.5.1', '3'], ['2', '1.2.5.2', '1']]);
    // A new series: written, under the next repeat instance; known series keep theirs.
    await writeStudy(join(dir, 'site'), { uid: '1.2.5', patientId: 'MRN-777', patientName: 'Hansen^Kari', accessionNumber: 'ACC5', calling: 'MRI1', called: 'NORTEST', series: [{ uid: '1.2.5.3', instances: 2 }] });
    await sink.studyArrived(await readStudy(site, '1.2.5'));
    expect(redcap.rows(T.incoming).filter((r) => r.redcap_repeat_instrument === 'series').map((r) => `${r.redcap_repeat_instance}:${r.series_instance_uid}`))
      .toEqual(['1:1.2.5.1', '2:1.2.5.2', '3:1.2.5.3']);
    // The hash key is the gateway's alone.
    expect((await readFile(join(site.state, 'redcap', 'hash.key'), 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);

    const req: TransferRequest = { version: 1, id: 'x', study: '1.2.5', project: 'NORTEST', pseudonym: 'NT0005', event: 'baseline', via: [], created: '', updated: '', revision: 1, signature: {}, reason: 'new' };
    expect(await sink.transferRequested(req)).toBe(1);
    expect(await sink.transferRequested(req)).toBe(1);
    expect(await sink.transferRequested({ ...req, project: 'OTHER' })).toBe(2);
    const failed: TransferResult = { ...req, status: 'retry', revision: 1, attempts: 2, error: 'send: association rejected', history: [] };
    await sink.transferFinished(req, failed);
    let t = redcap.rows(T.incoming).find((r) => r.redcap_repeat_instrument === 'transfers' && r.redcap_repeat_instance === '1')!;
    expect(t).toMatchObject({ transfer_error___1: '0', transfer_error___2: '1', transfers_complete: '1', transfer_error_message: 'attempt 2: send: association rejected', transfer_date: '' });
    const done: TransferResult = { ...failed, status: 'done', attempts: 3, error: undefined, mappedStudyUid: '1.3.6.1.4.1.99.1', finished: '2024-05-01T10:30:00.000Z' };
    await sink.transferFinished(req, done);
    t = redcap.rows(T.incoming).find((r) => r.redcap_repeat_instrument === 'transfers' && r.redcap_repeat_instance === '1')!;
    expect(t).toMatchObject({ transfer_error___2: '0', transfers_complete: '2', transfer_error_message: '', transfer_mapped_uid: '1.3.6.1.4.1.99.1', transfer_name: 'NT0005', transfer_event_name: 'baseline' });
    expect(t.transfer_date).toMatch(/^2024-05-01 \d{2}:30$/);
    await mkdir(join(dir, 'unused'), { recursive: true });
  });
});
