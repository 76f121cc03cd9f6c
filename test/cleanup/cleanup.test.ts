/**
 * fiona-cleanup on a real site: studies received by fiona-receive (from DCMTK storescu),
 * classified by fiona-classify (raw/ and participants/ links), completed by
 * fiona-detect-study (manifests), delivered by fiona-send into storescp (records).
 */
import { execa } from 'execa';
import { existsSync, lstatSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { binPath, parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startStorescp, storescu } from '../peers/dcmtk.js';
import { freePort, waitForPort } from '../peers/ports.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let site: string;
/** Study UIDs by synth seed: a (old, delivered), b (old, not delivered), c (old, open), d (recent, delivered). */
const uid: Record<string, string> = {};

async function age(dir: string, days: number): Promise<void> {
  const t = new Date(Date.now() - days * 86_400_000);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await age(join(dir, e.name), days);
    await utimes(join(dir, e.name), t, t).catch(() => undefined);
  }
  await utimes(dir, t, t);
}

async function allPaths(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

beforeAll(async () => {
  tmp = await makeTempDir('fiona-cleanup-');
  site = join(tmp.dir, 'site');
  await mkdir(site);
  // Four studies, each from its own synthetic patient.
  const port = await freePort();
  const receiver = execa(binPath('fiona-receive'), ['--site', site, '--port', String(port), '--aet', 'FIONA', '--quiet'], { reject: false, env: { NO_COLOR: '1' } });
  try {
    await waitForPort(port);
    for (const seed of ['a', 'b', 'c', 'd']) {
      const out = join(tmp.dir, `synth-${seed}`);
      const r = await runTool('fiona-synth', ['--out', out, '--patients', '1', '--series', '2', '--instances', '3', '--rows', '32', '--seed', `cleanup-${seed}`]);
      expect(r.exitCode).toBe(0);
      const sent = await storescu([out], { port, calledAet: 'FIONA', args: ['+sd', '+r'] });
      expect(sent.exitCode, String(sent.stderr)).toBe(0);
      const patient = (await readdir(out))[0]!;
      uid[seed] = (await readdir(join(out, patient)))[0]!;
    }
  } finally {
    receiver.kill('SIGTERM');
    await receiver;
  }
  const classify = await runTool('fiona-classify', ['--site', site, '--quiet', join(site, 'archive')], { stdin: 'ignore' });
  expect(classify.exitCode, String(classify.stderr)).toBe(0);
  await new Promise((r) => setTimeout(r, 1500)); // the quiet period
  const detect = await runTool('fiona-detect-study', ['--site', site, '--scan', '--quiet', '1s'], { stdin: 'ignore' });
  expect(detect.exitCode, String(detect.stderr)).toBe(0);
  for (const s of Object.values(uid)) expect(existsSync(join(site, 'studies', `${s}.json`))).toBe(true);

  // Deliver a and d with fiona-send (records for the site), into a real storescp.
  const pacsDir = join(tmp.dir, 'pacs');
  await mkdir(pacsDir);
  const scp = await startStorescp(pacsDir, { aet: 'PACS', args: ['+xa'] });
  try {
    for (const s of ['a', 'd']) {
      const r = await runTool('fiona-send', ['--to', `dicom://PACS@127.0.0.1:${scp.port}`, '--site', site, join(site, 'archive', uid[s]!)], { stdin: 'ignore' });
      expect(r.exitCode, String(r.stderr)).toBe(0);
    }
  } finally {
    scp.proc.kill('SIGTERM');
    await scp.proc;
  }
  // Study c is open again as fiona-detect-study sees it (new instances expected).
  await writeFile(join(site, 'state', 'detect-study.json'), JSON.stringify({ version: 1, open: { [uid.c!]: { firstArrival: 0, lastArrival: 0, update: true } }, exec: [] }));
  // a, b, c arrived 40 days ago; d yesterday.
  for (const s of ['a', 'b', 'c']) await age(join(site, 'archive', uid[s]!), 40);
  await age(join(site, 'archive', uid.d!), 1);
}, 120_000);

afterAll(async () => {
  await tmp?.cleanup();
});

function cleanup(args: string[]) {
  return runTool('fiona-cleanup', ['--site', site, ...args], { stdin: 'ignore', timeout: 60_000 });
}

describe('fiona-cleanup', () => {
  test('--dry-run lists what would go and what stays, and changes nothing', async () => {
    // (state/cleanup/ holds the run's lock, taken in a dry run too.)
    const before = (await allPaths(site)).filter((p) => !p.startsWith('state/cleanup'));
    const r = await cleanup(['--older-than', '30d', '--dry-run']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const events = parseEvents(r.stdout);
    expect(events.filter((e) => e.event === 'would-remove').map((e) => e.study)).toEqual([uid.a]);
    const kept = Object.fromEntries(events.filter((e) => e.event === 'kept').map((e) => [e.study, e.reason]));
    expect(kept[uid.b!]).toMatch(/not delivered/);
    expect(kept[uid.c!]).toMatch(/still open/);
    expect(kept[uid.d!]).toBeUndefined();
    expect((await allPaths(site)).filter((p) => !p.startsWith('state/cleanup'))).toEqual(before);
  });

  test('removes the old delivered study everywhere (archive, raw, participants, manifest); the rest stay', async () => {
    const r = await cleanup(['--older-than', '30d']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const events = parseEvents(r.stdout);
    const removed = events.filter((e) => e.event === 'removed');
    expect(removed.map((e) => e.study)).toEqual([uid.a]);
    expect(removed[0]!.files).toBe(6);
    expect(Number(removed[0]!.bytes)).toBeGreaterThan(0);
    expect((removed[0]!.deliveredTo as string[])[0]).toMatch(/^dicom:\/\/PACS@/);
    expect(existsSync(join(site, 'archive', uid.a!))).toBe(false);
    expect(existsSync(join(site, 'raw', uid.a!))).toBe(false);
    expect(existsSync(join(site, 'studies', `${uid.a}.json`))).toBe(false);
    // No participants link points nowhere; the other studies keep theirs.
    const symlinks: string[] = [];
    for (const patient of await readdir(join(site, 'participants'))) {
      for (const l of await readdir(join(site, 'participants', patient))) symlinks.push(join(site, 'participants', patient, l));
    }
    expect(symlinks.every((p) => lstatSync(p).isSymbolicLink())).toBe(true);
    expect(symlinks.length).toBe(3);
    for (const l of symlinks) expect(existsSync(l), l).toBe(true);
    for (const s of ['b', 'c', 'd']) {
      expect(existsSync(join(site, 'archive', uid[s]!))).toBe(true);
      expect(existsSync(join(site, 'raw', uid[s]!))).toBe(true);
      expect(existsSync(join(site, 'studies', `${uid[s]}.json`))).toBe(true);
    }
    expect(events.at(-1)).toMatchObject({ event: 'cleanup-summary', removed: 1, targetMet: true });
  });

  test('--require nothing removes old studies that were not delivered, but never an open one', async () => {
    const r = await cleanup(['--older-than', '30d', '--require', 'nothing', '--dry-run']);
    const events = parseEvents(r.stdout);
    expect(events.filter((e) => e.event === 'would-remove').map((e) => e.study)).toEqual([uid.b]);
    expect(events.find((e) => e.event === 'kept' && e.study === uid.c)!.reason).toMatch(/still open/);
  });

  test('--keep-free: a target already met removes nothing; an unreachable one exits 1', async () => {
    const met = await cleanup(['--older-than', '1h', '--require', 'nothing', '--keep-free', '1%', '--dry-run']);
    expect(met.exitCode).toBe(0);
    expect(parseEvents(met.stdout).filter((e) => e.event === 'would-remove')).toEqual([]);
    const unreachable = await cleanup(['--older-than', '1h', '--require', 'nothing', '--keep-free', '100%', '--dry-run']);
    expect(unreachable.exitCode).toBe(1);
    const ev = parseEvents(unreachable.stdout);
    // Oldest first: b (40 days), then d (1 day); c is open.
    expect(ev.filter((e) => e.event === 'would-remove').map((e) => e.study)).toEqual([uid.b, uid.d]);
    expect(ev.at(-1)).toMatchObject({ targetMet: false });
  });

  test('a removal cut short (trash left behind) is finished by the next run', async () => {
    // Simulate a run killed after parking b's archive: the folder sits in the trash, links remain.
    const trash = join(site, 'state', 'cleanup', 'trash');
    await mkdir(trash, { recursive: true });
    await rename(join(site, 'archive', uid.b!), join(trash, `${uid.b}.${Date.now()}`));
    const r = await cleanup(['--older-than', '30d']);
    expect(r.exitCode).toBe(0);
    expect(parseEvents(r.stdout).at(-1)!.finishedFromEarlierRun).toEqual([uid.b]);
    expect(await readdir(trash)).toEqual([]);
    expect(existsSync(join(site, 'raw', uid.b!))).toBe(false);
    expect(existsSync(join(site, 'studies', `${uid.b}.json`))).toBe(false);
    expect(existsSync(join(site, 'archive', uid.c!))).toBe(true);
  });

  test('usage errors exit 2', async () => {
    expect((await runTool('fiona-cleanup', ['--older-than', '30d'], { stdin: 'ignore', env: { NO_COLOR: '1', FIONA_CONFIG: join(tmp.dir, 'none.json') } })).exitCode).toBe(2);
    expect((await cleanup(['--older-than', 'soon'])).exitCode).toBe(2);
    expect((await cleanup(['--older-than', '30d', '--keep-free', 'lots'])).exitCode).toBe(2);
    const cfg = join(tmp.dir, 'cfg.json');
    await writeFile(cfg, JSON.stringify({ DATADIR: site }));
    const viaConfig = await runTool('fiona-cleanup', ['--config', cfg, '--older-than', '3650d', '--dry-run'], { stdin: 'ignore' });
    expect(viaConfig.exitCode).toBe(0);
    expect(JSON.parse(await readFile(cfg, 'utf8')).DATADIR).toBe(site);
  });
});
