import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../helpers/tmp.js';
import { storescu } from '../peers/dcmtk.js';
import { startTool, synth, type Running } from '../classify/helpers.js';
import { manifest, type Ev } from './helpers.js';

/**
 * The FIONA pipeline end to end: DCMTK storescu sends three studies at once to
 * fiona-receive, whose events go to fiona-classify, whose events go to fiona-detect-study
 * (the test forwards each stream, so it sees all three).
 */
let tmp: { dir: string; cleanup: () => Promise<void> };
const running: Running[] = [];
beforeAll(async () => {
  tmp = await makeTempDir('fiona-chain-');
});
afterAll(async () => {
  for (const r of running) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
  await tmp.cleanup();
});

const QUIET_MS = 2000;

describe('storescu -> fiona-receive -> fiona-classify -> fiona-detect-study', () => {
  it('reports each of three studies sent at once exactly once, complete, within quiet + 1 s of its last instance', async () => {
    const files = await synth(join(tmp.dir, 'synth'), ['--patients', '3', '--series', '3', '--instances', '5', '--rows', '32', '--seed', 'chain']);
    const byStudy = new Map<string, string[]>();
    for (const f of files) {
      const s = f.split('/').slice(-3)[0]!;
      byStudy.set(s, [...(byStudy.get(s) ?? []), f]);
    }
    expect(byStudy.size).toBe(3);
    const site = join(tmp.dir, 'site');
    const detect = startTool('fiona-detect-study', ['--site', site, '--quiet', `${QUIET_MS}ms`]);
    const classify = startTool('fiona-classify', ['--site', site, '--quiet'], {}, (l) => detect.write(l));
    const receive = startTool('fiona-receive', ['--site', site, '--port', '0', '--quiet'], {}, (l) => classify.write(l));
    running.push(detect, classify, receive);
    await receive.waitFor((ev) => ev.some((e) => e.event === 'listening'));
    const port = Number(receive.events.find((e) => e.event === 'listening')!.port);

    const sends = await Promise.all([...byStudy.values()].map((list) => storescu(list, { port, callingAet: 'SCANNER' })));
    for (const s of sends) expect(s.exitCode, String(s.stderr)).toBe(0);

    await detect.waitFor((ev) => ev.filter((e) => e.event === 'study-complete').length === 3, 30_000);
    const stored = receive.events.filter((e) => e.event === 'stored');
    expect(stored).toHaveLength(45);
    expect(classify.events.filter((e) => e.event === 'classified')).toHaveLength(45);
    expect(classify.events.every((e) => e.event !== 'classified' || e.calling === 'SCANNER')).toBe(true);

    const complete = detect.events.filter((e) => e.event === 'study-complete');
    expect(new Set(complete.map((e) => e.study))).toEqual(new Set(byStudy.keys()));
    for (const c of complete) {
      const study = String(c.study);
      expect(c).toMatchObject({ series: 3, instances: 15 });
      // Quiet + 1 s after the last instance as the detector learns of it (its classified
      // event); the receiver's stored event is earlier by classify's batching delay (100 ms).
      const lastStored = Math.max(...stored.filter((e) => e.study === study).map((e) => Date.parse(String(e.time))));
      const lastClassified = Math.max(...classify.events.filter((e) => e.study === study).map((e) => Date.parse(String(e.time))));
      const at = Date.parse(String(c.time));
      expect(at - lastStored, `study ${study}`).toBeGreaterThanOrEqual(QUIET_MS);
      expect(at - lastClassified, `study ${study}`).toBeLessThanOrEqual(QUIET_MS + 1000);
      const m = await manifest(site, study);
      expect((m.series as Ev[]).map((s) => s.instances)).toEqual([5, 5, 5]);
      for (const s of m.series as Ev[]) {
        expect(await readdir(join(site, 'raw', study, String(s.series)))).toHaveLength(5);
        expect(await readdir(join(site, 'archive', study, String(s.series)))).toHaveLength(5);
      }
    }

    // Nothing more is reported once everything is quiet.
    await new Promise((r) => setTimeout(r, QUIET_MS + 500));
    expect(detect.events.filter((e) => e.event === 'study-complete' || e.event === 'study-updated')).toHaveLength(3);
    receive.proc.kill('SIGTERM');
    await receive.proc;
    await classify.end();
    await detect.end();
    expect(receive.proc.exitCode).toBe(0);
    expect(classify.proc.exitCode).toBe(0);
    expect(detect.proc.exitCode).toBe(0);
  });
});
