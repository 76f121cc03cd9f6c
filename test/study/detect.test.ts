import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/lib/dicom/index.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { intoArchive, startTool, synth, type Running } from '../classify/helpers.js';
import { classifiedSite, manifest, sleep, type Ev } from './helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('fiona-detect-');
});
afterAll(async () => tmp.cleanup());

const QUIET_MS = 1000;

/** Files of one synthetic study per patient, grouped by study UID (series in order). */
async function studies(name: string, args: string[]): Promise<Map<string, string[]>> {
  const files = await synth(join(tmp.dir, name), args);
  const order = new Map<string, number>();
  for (const f of files) {
    const h = await readHeader(f);
    order.set(f, Number(h.string('SeriesNumber')) * 10_000 + Number(h.string('InstanceNumber')));
  }
  files.sort((x, y) => order.get(x)! - order.get(y)!);
  const by = new Map<string, string[]>();
  for (const f of files) {
    const study = f.split('/').slice(-3)[0]!;
    by.set(study, [...(by.get(study) ?? []), f]);
  }
  return by;
}

/** fiona-classify feeding fiona-detect-study, the test in the middle (so it sees both streams). */
interface Pipeline {
  classify: Running;
  detect: () => Running;
  restart: () => Running;
  /** Files arrive: stored into archive/ (as the receiver does) and handed to fiona-classify. */
  arrive: (files: string[]) => Promise<void>;
  /** Both tools have started (so startup time is not mistaken for a quiet study). */
  ready: () => Promise<void>;
}

/** detect-study has started when it holds the site lock and wrote its state; classify when it answered a line. */
async function whenReady(site: string, detect: Running, classify?: Running): Promise<void> {
  const until = Date.now() + 20_000;
  if (classify) classify.write('ready?');
  const detectUp = async (): Promise<boolean> => {
    try {
      const lock = JSON.parse(await readFile(join(site, 'state', 'detect-study.lock'), 'utf8')) as { pid: number };
      return lock.pid === detect.proc.pid && existsSync(join(site, 'state', 'detect-study.json'));
    } catch {
      return false;
    }
  };
  while (!(await detectUp()) || (classify && !classify.stderr().includes('line 1:'))) {
    if (Date.now() > until) throw new Error(`tools did not start: ${detect.stderr()} ${classify?.stderr() ?? ''}`);
    await sleep(20);
  }
  await sleep(50);
}

function pipeline(site: string, detectArgs: string[] = [], env: Record<string, string> = {}, quietMs = QUIET_MS): Pipeline {
  let detect = startTool('fiona-detect-study', ['--site', site, '--quiet', `${quietMs}ms`, ...detectArgs], env);
  const classify = startTool('fiona-classify', ['--site', site, '--quiet'], {}, (line) => detect.write(line));
  return {
    classify,
    arrive: async (files) => {
      for (const f of await intoArchive(files, site)) classify.write(f);
    },
    ready: () => whenReady(site, detect, classify),
    detect: () => detect,
    restart: () => {
      detect = startTool('fiona-detect-study', ['--site', site, '--quiet', `${quietMs}ms`, ...detectArgs], env);
      return detect;
    },
  };
}

const ofKind = (events: Ev[], kind: string): Ev[] => events.filter((e) => e.event === kind);

describe('fiona-detect-study on a live stream', () => {
  it('reports each study once, after the quiet period and within 1 s of it, with its manifest; --exec gets an argument array', async () => {
    const by = await studies('synth-live', ['--patients', '2', '--series', '4', '--instances', '3', '--rows', '16', '--seed', 'live']);
    const site = join(tmp.dir, 'site-live');
    const [a, b] = [...by.keys()] as [string, string];
    const script = join(tmp.dir, 'on-study.sh');
    await writeFile(script, 'printf "%s\\n" "$@" > "$OUTDIR/$FIONA_STUDY.args"\necho "event=$FIONA_EVENT" >> "$OUTDIR/$FIONA_STUDY.args"\n');
    // 2 s quiet: the 600 ms gap between A's bursts must stay well inside it on a busy machine.
    const quiet = 2000;
    const p = pipeline(site, ['--exec', '/bin/sh', script, 'an argument with spaces', '; touch injected'], { OUTDIR: tmp.dir }, quiet);
    await p.ready();

    // Study A's first three series in two bursts 600 ms apart (less than the quiet period),
    // study B at once; A's fourth series is held back to arrive after A was reported.
    const filesA = by.get(a)!;
    await p.arrive(filesA.slice(0, 5));
    await p.arrive(by.get(b)!);
    await p.classify.waitFor((ev) => ev.length === 5 + 12);
    await sleep(600);
    await p.arrive(filesA.slice(5, 9));
    await p.classify.waitFor((ev) => ev.length === 21);
    const lastA = Math.max(...p.classify.events.filter((e) => e.study === a).map((e) => Date.parse(String(e.time))));

    const detect = p.detect();
    await detect.waitFor((ev) => ofKind(ev, 'study-complete').length === 2 && ofKind(ev, 'study-exec').length === 2, 15_000);
    const completeA = ofKind(detect.events, 'study-complete').find((e) => e.study === a)!;
    const lateness = Date.parse(String(completeA.time)) - lastA;
    expect(lateness).toBeGreaterThanOrEqual(quiet);
    expect(lateness).toBeLessThanOrEqual(quiet + 1000);
    expect(completeA).toMatchObject({ series: 3, instances: 9, manifest: join(site, 'studies', `${a}.json`) });

    const m = await manifest(site, a);
    expect(m).toMatchObject({ study: a, status: 'complete', revision: 1, seriesCount: 3, instances: 9 });
    expect((m.series as Ev[]).map((s) => [s.SeriesNumber, s.instances])).toEqual([['1', 3], ['2', 3], ['3', 3]]);
    expect((m.series as Ev[])[1]!.types).toContain('T1');
    expect(Date.parse(String(m.lastArrival))).toBeGreaterThanOrEqual(lastA);

    // The command got the arguments as given (no shell) plus the manifest path.
    const args = (await readFile(join(tmp.dir, `${a}.args`), 'utf8')).split('\n');
    expect(args.slice(0, 4)).toEqual(['an argument with spaces', '; touch injected', join(site, 'studies', `${a}.json`), 'event=study-complete']);
    expect(existsSync(join(process.cwd(), 'injected'))).toBe(false);
    expect(ofKind(detect.events, 'study-exec').every((e) => e.status === 'ok')).toBe(true);

    // Late instances: study-updated with what changed, manifest revision 2, no second exec by default.
    const fourth = filesA.slice(9);
    await p.arrive(fourth);
    await detect.waitFor((ev) => ofKind(ev, 'study-updated').length === 1, 10_000);
    const upd = ofKind(detect.events, 'study-updated')[0]!;
    expect(upd).toMatchObject({ study: a, series: 4, instances: 12, added: { series: [fourth[0]!.split('/').slice(-2)[0]], instances: 3 } });
    expect(await manifest(site, a)).toMatchObject({ revision: 2, instances: 12, seriesCount: 4 });
    await p.classify.end();
    await detect.end();
    expect(detect.proc.exitCode).toBe(0);
    expect(ofKind(detect.events, 'study-complete')).toHaveLength(2);
    expect(ofKind(detect.events, 'study-exec')).toHaveLength(2);
  });
});

describe('fiona-detect-study restarts', () => {
  it('after SIGTERM mid-study: the next run finishes the study, reported once', async () => {
    const by = await studies('synth-term', ['--patients', '1', '--series', '2', '--instances', '4', '--rows', '16', '--seed', 'term']);
    const site = join(tmp.dir, 'site-term');
    const [study] = [...by.keys()] as [string];
    const files = by.get(study)!;
    // A longer quiet period: the stop and restart must fit in it on a busy machine.
    const quiet = 5000;
    const p = pipeline(site, [], {}, quiet);
    await p.ready();
    await p.arrive(files.slice(0, 4));
    await p.classify.waitFor((ev) => ev.length === 4);
    await sleep(200);
    const first = p.detect();
    first.proc.kill('SIGTERM');
    await first.proc;
    expect(first.proc.exitCode).toBe(0);
    expect(ofKind(first.events, 'study-complete')).toHaveLength(0);
    const state = JSON.parse(await readFile(join(site, 'state', 'detect-study.json'), 'utf8')) as { open: Record<string, unknown> };
    expect(Object.keys(state.open)).toEqual([study]);

    const second = p.restart();
    await whenReady(site, second);
    await p.arrive(files.slice(4));
    await second.waitFor((ev) => ofKind(ev, 'study-complete').length === 1, 20_000);
    expect(ofKind(second.events, 'study-complete')[0]).toMatchObject({ study, instances: 8, series: 2 });
    await sleep(1000);
    expect(ofKind(second.events, 'study-complete')).toHaveLength(1);
    await p.classify.end();
    await second.end();
  });

  it('after kill -9 mid-study: the study is found on disk and reported once; a kill -9 after the report does not repeat it', async () => {
    const by = await studies('synth-kill', ['--patients', '1', '--series', '2', '--instances', '4', '--rows', '16', '--seed', 'kill']);
    const site = join(tmp.dir, 'site-kill');
    const [study] = [...by.keys()] as [string];
    const files = by.get(study)!;
    const p = pipeline(site);
    await p.ready();
    await p.arrive(files.slice(0, 6));
    await p.classify.waitFor((ev) => ev.length === 6);
    // No wait for the debounced state write: the kill may well come before it.
    const first = p.detect();
    first.proc.kill('SIGKILL');
    await first.proc;
    expect(ofKind(first.events, 'study-complete')).toHaveLength(0);
    await p.classify.end();

    // Restart with no further input: the site says the study is there and quiet.
    const second = startTool('fiona-detect-study', ['--site', site, '--quiet', `${QUIET_MS}ms`]);
    await second.waitFor((ev) => ofKind(ev, 'study-complete').length === 1, 10_000);
    expect(ofKind(second.events, 'study-complete')[0]).toMatchObject({ study, instances: 6 });
    second.proc.kill('SIGKILL');
    await second.proc;

    const third = startTool('fiona-detect-study', ['--site', site, '--quiet', `${QUIET_MS}ms`]);
    await sleep(QUIET_MS * 2 + 500);
    expect(third.events).toEqual([]);
    await third.end();
    expect(third.proc.exitCode).toBe(0);
  });
});

describe('fiona-detect-study --scan (cron mode)', () => {
  it('reports what is complete and exits; a second run reports nothing; a running daemon takes precedence', async () => {
    const site = join(tmp.dir, 'site-scan');
    const byStudy = await classifiedSite(site, join(tmp.dir, 'synth-scan'), ['--patients', '2', '--series', '2', '--instances', '2', '--rows', '16', '--seed', 'scan']);
    const busy = await runTool('fiona-detect-study', ['--site', site, '--scan', '--quiet', '1h']);
    expect(busy.exitCode).toBe(0);
    expect(parseEvents(busy.stdout)).toEqual([]);
    expect(busy.stderr).toMatch(/0 studies reported, 2 still receiving/);

    await sleep(QUIET_MS + 100);
    const r = await runTool('fiona-detect-study', ['--site', site, '--scan', '--quiet', `${QUIET_MS}ms`]);
    expect(r.exitCode).toBe(0);
    const done = ofKind(parseEvents(r.stdout), 'study-complete');
    expect(done.map((e) => e.study).sort()).toEqual([...byStudy.keys()].sort());
    expect(done.every((e) => e.instances === 4 && e.series === 2)).toBe(true);

    const again = await runTool('fiona-detect-study', ['--site', site, '--scan', '--quiet', `${QUIET_MS}ms`]);
    expect(parseEvents(again.stdout)).toEqual([]);

    const daemon = startTool('fiona-detect-study', ['--site', site]);
    await sleep(800);
    const second = await runTool('fiona-detect-study', ['--site', site]);
    expect(second.exitCode).toBe(3);
    expect(second.stderr).toMatch(/already running/);
    const scan = await runTool('fiona-detect-study', ['--site', site, '--scan']);
    expect(scan.exitCode).toBe(0);
    expect(scan.stderr).toMatch(/is watching this site/);
    await daemon.end();
  });

  it('runs an --exec command left unfinished by a crash, and not one whose report never committed', async () => {
    const site = join(tmp.dir, 'site-pending');
    const byStudy = await classifiedSite(site, join(tmp.dir, 'synth-pending'), ['--patients', '2', '--series', '1', '--instances', '2', '--rows', '16', '--seed', 'pending']);
    const [a, b] = [...byStudy.keys()] as [string, string];
    await sleep(QUIET_MS + 100);
    const first = await runTool('fiona-detect-study', ['--site', site, '--scan', '--quiet', `${QUIET_MS}ms`]);
    expect(ofKind(parseEvents(first.stdout), 'study-complete')).toHaveLength(2);
    // As if killed while the command ran for A (revision 1 committed) and before B's revision 2 committed.
    const statePath = join(site, 'state', 'detect-study.json');
    const state = JSON.parse(await readFile(statePath, 'utf8')) as Record<string, unknown>;
    state.exec = [
      { study: a, manifest: join(site, 'studies', `${a}.json`), event: 'study-complete', revision: 1 },
      { study: b, manifest: join(site, 'studies', `${b}.json`), event: 'study-updated', revision: 2 },
    ];
    await writeFile(statePath, JSON.stringify(state));
    const log = join(tmp.dir, 'pending.log');
    const r = await runTool('fiona-detect-study', ['--site', site, '--scan', '--quiet', `${QUIET_MS}ms`, '--exec', '/bin/sh', '-c', `echo "$FIONA_STUDY $1" >> ${log}`, 'sh']);
    expect(r.exitCode).toBe(0);
    expect(ofKind(parseEvents(r.stdout), 'study-complete')).toHaveLength(0);
    expect(ofKind(parseEvents(r.stdout), 'study-exec').map((e) => e.study)).toEqual([a]);
    expect((await readFile(log, 'utf8')).trim()).toBe(`${a} ${join(site, 'studies', `${a}.json`)}`);
    expect((JSON.parse(await readFile(statePath, 'utf8')) as { exec: unknown[] }).exec).toEqual([]);
  });

  it('warns on lines that are not events, naming the line, and goes on', async () => {
    const site = join(tmp.dir, 'site-lines');
    const r = await runTool('fiona-detect-study', ['--site', site, '--quiet', '100ms'], {
      input: '/some/path.dcm\n{"event":"classified"}\n{not json\n{"event":"classified","study":"1.2/../3","time":"2020-01-01T00:00:00Z"}\n',
    });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/line 1: fiona-detect-study reads events/);
    expect(r.stderr).toMatch(/line 2: a "classified" event without a "study"/);
    expect(r.stderr).toMatch(/line 3: not valid JSON/);
    expect(r.stderr).toMatch(/not a valid UID/);
  });
});
