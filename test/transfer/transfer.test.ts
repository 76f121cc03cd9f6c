import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { requestId } from '../../src/lib/transfer/requests.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import type { Orthanc } from '../peers/orthanc.js';
import { freePort } from '../peers/ports.js';
import { importStudies, synth, useResearchPacs, type ImportedStudy } from './setup.js';

describe('fiona-transfer into a real Orthanc', () => {
  const fx = useResearchPacs();
  let pacs: Orthanc;
  let dir: string;
  let siteDir: string;
  let routes: string;
  beforeEach(() => {
    ({ pacs, dir, siteDir } = fx);
    routes = join(dir, 'routes.json');
  });

  async function writeRoutes(project: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<void> {
    await writeFile(routes, JSON.stringify({
      // Automatic IDs: the study's own PatientID/PatientName never become the pseudonym here.
      projects: { NORTEST: { destination: `dicom://RPACS@127.0.0.1:${pacs.dicomPort}?calling=FIONA`, autoId: { pattern: 'NT[0-9]{4}' }, ...project } },
      routes: [{ name: 'by-aet', project: 'NORTEST', incomingAet: 'NORTEST', event: 'baseline' }],
      ...extra,
    }));
  }

  async function study(seed: string, args: string[] = [], patch?: (series: string, j: Record<string, unknown>) => void): Promise<ImportedStudy> {
    const out = join(dir, `synth-${seed}`);
    await synth(out, ['--seed', seed, '--series', '2', '--instances', '3', '--rows', '32', ...args]);
    const [s] = await importStudies(out, siteDir, { calling: 'MRI1', called: 'NORTEST' }, patch);
    return s!;
  }

  const route = () => runTool('fiona-route', ['--site', siteDir, '--routes', routes, '--scan']);
  const transfer = (args: string[] = []) => runTool('fiona-transfer', ['--site', siteDir, '--routes', routes, '--retry-delay', '0s', ...args]);

  it('de-identifies with the pseudonym, event and project name, sends, records; reruns do nothing', async () => {
    await writeRoutes({});
    const s = await study('e2e');
    const r = await route();
    const [req] = parseEvents(r.stdout);
    expect(req).toMatchObject({ event: 'transfer-request', project: 'NORTEST', eventName: 'baseline' });
    const pseudonym = String(req!.pseudonym);
    expect(pseudonym).toMatch(/^NT\d{4}$/);

    const t = await transfer();
    expect(t.stderr).not.toContain(s.patientId);
    expect(t.exitCode, String(t.stderr)).toBe(0);
    const [ev] = parseEvents(t.stdout);
    expect(ev).toMatchObject({ event: 'transferred', study: s.uid, project: 'NORTEST', series: 2, instances: 6, attempts: 1 });
    const mapped = String(ev!.mappedStudy);
    expect(mapped).not.toBe(s.uid);

    const tags = await Promise.all((await pacs.instances()).map((id) => pacs.rest<Record<string, string>>('GET', `/instances/${id}/simplified-tags`)));
    expect(tags).toHaveLength(6);
    for (const x of tags) {
      expect(x.PatientID).toBe(pseudonym);
      expect(x.PatientName).toBe(pseudonym);
      expect(x.StudyInstanceUID).toBe(mapped);
      expect(x.InstitutionName).toBe('NORTEST');
      expect(x.ReasonForTheRequestedProcedure).toBe('EventName:baseline');
      expect(x.ReferringPhysicianName).toBe('EventName:baseline');
      expect(JSON.stringify(x)).not.toContain(s.patientId);
    }
    const id = requestId({ study: s.uid, project: 'NORTEST', pseudonym, event: 'baseline' });
    const result = JSON.parse(await readFile(join(siteDir, 'state', 'transfers', `${id}.json`), 'utf8'));
    expect(result).toMatchObject({ status: 'done', attempts: 1, mappedStudyUid: mapped, instances: 6, series: 2 });
    expect(result.started <= result.finished).toBe(true);
    expect(existsSync(join(siteDir, 'state', 'requests', `${id}.json`))).toBe(false);
    expect(await readdir(join(siteDir, 'state', 'work'))).toEqual([]);
    // fiona-cleanup reads what went where.
    expect(await readFile(join(siteDir, 'state', 'delivered', `${s.uid}.ndjson`), 'utf8')).toContain('fiona-transfer');

    const again = await transfer();
    expect(parseEvents(again.stdout)).toEqual([]);
    expect(parseEvents((await route()).stdout)).toEqual([]);

    const list = await runTool('fiona-transfer', ['--site', siteDir, '--list', '--json']);
    const status = JSON.parse(String(list.stdout));
    expect(status.queued).toEqual([]);
    expect(status.results[0]).toMatchObject({ status: 'done', mappedStudyUid: mapped });
  });

  it('applies project features: presentation states and secondary captures stay home', async () => {
    await writeRoutes({ features: ['drop-presentation-states', 'drop-secondary-captures'] });
    let n = 0;
    const s = await study('features', ['--series', '3'], (_series, j) => {
      n++;
      if (n === 1) j.Modality = 'PR';
      if (n === 2) j.ClassifyType = ['CHECKBURNEDINFO'];
    });
    await route();
    const t = await transfer();
    const [ev] = parseEvents(t.stdout);
    expect(ev).toMatchObject({ event: 'transferred', series: 1, instances: 3 });
    const skipped = (ev!.skipped as Array<{ series: string; reason: string }>).map((x) => x.reason).sort();
    expect(skipped).toEqual(['presentation state (project feature drop-presentation-states)', 'secondary capture (project feature drop-secondary-captures)']);
    expect(await pacs.instances()).toHaveLength(3);
    // Dropped series count as seen: the study does not look new to the next route run.
    expect(parseEvents((await route()).stdout)).toEqual([]);
    expect(s.series).toHaveLength(3);
  });

  it('a destination that refuses the study: retried, then failed for good with the reason, kept, re-queueable', async () => {
    await writeRoutes({ destination: `dicom://WRONGAET@127.0.0.1:${pacs.dicomPort}?calling=FIONA` });
    const s = await study('refused');
    await route();
    const t1 = await transfer(['--max-attempts', '2']);
    expect(t1.exitCode, String(t1.stderr)).toBe(1);
    expect(parseEvents(t1.stdout)).toMatchObject([{ event: 'transfer-failed', attempts: 1, willRetry: true }]);
    const t2 = await transfer(['--max-attempts', '2']);
    const [f] = parseEvents(t2.stdout);
    expect(f).toMatchObject({ event: 'transfer-failed', attempts: 2, willRetry: false });
    expect(String(f!.error)).toMatch(/send to dicom:\/\/WRONGAET@127\.0\.0\.1:\d+\?calling=FIONA: 6 of 6 instances failed \(.*\)/);
    const failedDir = join(siteDir, 'state', 'requests', 'failed');
    expect(await readdir(failedDir)).toHaveLength(1);
    expect((await readdir(join(siteDir, 'state', 'requests'))).filter((n) => n.endsWith('.json'))).toEqual([]);
    // Failed for good: neither cron transfer nor cron route brings it back by itself.
    expect(parseEvents((await transfer(['--max-attempts', '2'])).stdout)).toEqual([]);
    expect(parseEvents((await route()).stdout)).toEqual([]);
    const list = await runTool('fiona-transfer', ['--site', siteDir, '--list']);
    expect(String(list.stdout)).toMatch(new RegExp(`failed .* ${s.uid.replace(/\./g, '\\.')} -> NORTEST .*\\[2 attempts: send to`));

    // The operator fixes the destination and re-queues it.
    await writeRoutes({});
    const t3 = await transfer(['--retry-failed']);
    expect(parseEvents(t3.stdout)).toMatchObject([{ event: 'transferred', instances: 6, attempts: 1 }]);
    expect(await readdir(failedDir)).toEqual([]);
  });

  it('a destination that is down: retried later, not before its time', async () => {
    await writeRoutes({ destination: `dicom://RPACS@127.0.0.1:${await freePort()}?calling=FIONA` });
    await study('down');
    await route();
    const t1 = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes, '--retry-delay', '1h']);
    const [f] = parseEvents(t1.stdout);
    expect(f).toMatchObject({ event: 'transfer-failed', willRetry: true });
    expect(Date.parse(String(f!.nextAttempt)) - Date.now()).toBeGreaterThan(3_500_000);
    const t2 = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes]);
    expect(parseEvents(t2.stdout)).toEqual([]);
    expect(t2.exitCode, String(t2.stderr)).toBe(0);
  });

  it('overlapping runs (cron) share the queue: every request once, oldest first', async () => {
    await writeRoutes({});
    await synth(join(dir, 'synth-many'), ['--seed', 'many', '--patients', '3', '--series', '1', '--instances', '3', '--rows', '32']);
    const studies = await importStudies(join(dir, 'synth-many'), siteDir, { calling: 'MRI1', called: 'NORTEST' });
    expect(studies).toHaveLength(3);
    expect(parseEvents((await route()).stdout)).toHaveLength(3);
    const runs = await Promise.all([transfer(), transfer(), transfer()]);
    const done = runs.flatMap((r) => parseEvents(r.stdout)).filter((e) => e.event === 'transferred');
    expect(done.map((e) => e.study).sort()).toEqual(studies.map((x) => x.uid).sort());
    for (const r of runs) expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(await pacs.instances()).toHaveLength(9);
    expect((await readdir(join(siteDir, 'state', 'requests'))).filter((n) => n.endsWith('.json'))).toEqual([]);
  });

  it('--once takes one request; an inactive project waits; a project gone from the rules fails for good', async () => {
    await writeRoutes({});
    await synth(join(dir, 'synth-two'), ['--seed', 'two', '--patients', '2', '--series', '1', '--instances', '2', '--rows', '32']);
    await importStudies(join(dir, 'synth-two'), siteDir, { calling: 'MRI1', called: 'NORTEST' });
    expect(parseEvents((await route()).stdout)).toHaveLength(2);
    const once = await transfer(['--once']);
    expect(parseEvents(once.stdout).map((e) => e.event)).toEqual(['transferred']);
    await writeRoutes({ active: false });
    const waiting = await transfer();
    expect(parseEvents(waiting.stdout)).toEqual([]);
    expect(waiting.stderr).toContain('project NORTEST is inactive; the request stays queued');
    await writeFile(routes, JSON.stringify({ projects: { OTHER: { destination: `dicom://RPACS@127.0.0.1:${pacs.dicomPort}` } } }));
    const gone = await transfer();
    expect(parseEvents(gone.stdout)).toMatchObject([{ event: 'transfer-failed', willRetry: false, attempts: 1 }]);
    expect(gone.stderr).toMatch(/project NORTEST is not in the rules/);
  });

  it('a damaged request file is set aside with a clear message, the rest of the queue goes on', async () => {
    await writeRoutes({});
    const s = await study('damaged');
    await route();
    await writeFile(join(siteDir, 'state', 'requests', '0000aaaa0000aaaa0000aaaa.json'), '{"study": "1.2.3", trunc');
    const t = await transfer();
    expect(t.exitCode, String(t.stderr)).toBe(1);
    expect(t.stderr).toMatch(/0000aaaa0000aaaa0000aaaa\.json cannot be read .*; moved to .*failed\/0000aaaa0000aaaa0000aaaa\.json\.damaged/);
    expect(parseEvents(t.stdout).filter((e) => e.event === 'transferred')).toMatchObject([{ study: s.uid }]);
    expect(parseEvents((await transfer()).stdout)).toEqual([]);
  });

  it('a study removed from the gateway fails at once with the reason (no retries help)', async () => {
    await writeRoutes({});
    const s = await study('gone');
    await route();
    const { rm } = await import('node:fs/promises');
    await rm(join(siteDir, 'archive', s.uid), { recursive: true });
    await rm(join(siteDir, 'raw', s.uid), { recursive: true });
    const t = await transfer();
    const [f] = parseEvents(t.stdout);
    expect(f).toMatchObject({ event: 'transfer-failed', attempts: 1, willRetry: false });
    expect(String(f!.error)).toMatch(/no longer on the gateway.*send it again from the PACS/);
  });
});
