/**
 * Outbox mode (cron): items move to sent/ after verified delivery, to failed/ with a reason
 * after the limit; a lock keeps runs apart; a run killed with -9 loses and duplicates
 * nothing on the re-run. Real peers: sshd and storescp.
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { startStorescp } from '../peers/dcmtk.js';
import type { Sshd } from '../peers/sshd.js';
import { binPath, filesUnder, md5, parseEvents, send, sftpArgs, sopOf, stopProc, synthStudy, withSshd, type TempDir } from './helpers.js';

let tmp: TempDir;
let sshd: Sshd;
withSshd('fiona-send-outbox-', (t, s) => {
  tmp = t;
  sshd = s;
});

const sftp = (remote: string, extra: string[]): string[] => sftpArgs(sshd, remote, extra);

test('sftp outbox: a zip with its .md5, a folder and a file end in sent/; state cleaned up', async () => {
  const base = join(tmp.dir, 'o1');
  const outbox = join(base, 'outbox');
  await mkdir(join(outbox, 'folder', 'sub'), { recursive: true });
  const zip = randomBytes(400_000);
  await writeFile(join(outbox, 'export.zip'), zip);
  await writeFile(join(outbox, 'export.zip.md5'), `${createHash('md5').update(zip).digest('hex')} *export.zip\n`);
  await writeFile(join(outbox, 'folder', 'a.bin'), randomBytes(1000));
  await writeFile(join(outbox, 'folder', 'sub', 'b.bin'), randomBytes(2000));
  await writeFile(join(outbox, 'note.txt'), 'hello\n');
  await writeFile(join(outbox, 'still-writing.zip.part'), 'x');
  const remote = join(tmp.dir, 'r1');
  const r = await send(sftp(remote, ['--outbox', outbox]));
  expect(r.exitCode, String(r.stderr)).toBe(0);
  const events = parseEvents(r.stdout);
  const delivered = events.filter((e) => e.event === 'delivered');
  expect(delivered.map((e) => e.item).sort()).toEqual(['export.zip', 'folder', 'note.txt']);
  // The checksum file goes up after the file it describes.
  const order = events.filter((e) => e.event === 'sent').map((e) => e.name);
  expect(order.indexOf('export.zip.md5')).toBeGreaterThan(order.indexOf('export.zip'));
  expect((await readdir(outbox)).sort()).toEqual(['.fiona-send', 'still-writing.zip.part']);
  expect((await readdir(join(outbox, '.fiona-send'))).filter((f) => f !== 'lock')).toEqual([]);
  expect((await readdir(join(base, 'sent'))).sort()).toEqual(['export.zip', 'export.zip.md5', 'folder', 'note.txt']);
  expect(await md5(join(remote, 'export.zip'))).toBe(await md5(join(base, 'sent', 'export.zip')));
  expect(await md5(join(remote, 'folder', 'sub', 'b.bin'))).toBe(await md5(join(base, 'sent', 'folder', 'sub', 'b.bin')));
  expect(existsSync(join(remote, 'still-writing.zip.part'))).toBe(false);
});

test('undeliverable: pending while attempts remain, then failed/ with <name>.reason.json', async () => {
  const base = join(tmp.dir, 'o2');
  const outbox = join(base, 'outbox');
  await mkdir(outbox, { recursive: true });
  await writeFile(join(outbox, 'x.zip'), randomBytes(1000));
  const badKnown = join(tmp.dir, 'known-other');
  await writeFile(badKnown, `[127.0.0.1]:1 ${sshd.hostKey}\n`);
  const args = ['--to', sshd.url(join(tmp.dir, 'r2')), '--identity', sshd.identity, '--known-hosts', badKnown, '--outbox', outbox, '--retries', '0', '--max-attempts', '2'];
  const first = await send(args);
  expect(first.exitCode).toBe(1);
  expect(parseEvents(first.stdout).find((e) => e.event === 'delivery-pending')).toMatchObject({ item: 'x.zip', attempts: 1 });
  expect(existsSync(join(outbox, 'x.zip'))).toBe(true);
  const second = await send(args);
  expect(second.exitCode).toBe(1);
  const failed = parseEvents(second.stdout).find((e) => e.event === 'delivery-failed')!;
  expect(failed).toMatchObject({ item: 'x.zip', attempts: 2, path: join(base, 'failed', 'x.zip') });
  expect(String(failed.reason)).toMatch(/unknown host/);
  const why = JSON.parse(await readFile(join(base, 'failed', 'x.zip.reason.json'), 'utf8')) as Record<string, unknown>;
  expect(why).toMatchObject({ item: 'x.zip', attempts: 2 });
  expect(String(why.reason)).toMatch(/unknown host/);
  expect(existsSync(join(outbox, 'x.zip'))).toBe(false);
});

test('a live lock holder makes the run a no-op (exit 0, send-skipped)', async () => {
  const outbox = join(tmp.dir, 'o3', 'outbox');
  await mkdir(join(outbox, '.fiona-send'), { recursive: true });
  await writeFile(join(outbox, 'y.bin'), 'y');
  await writeFile(join(outbox, '.fiona-send', 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), time: new Date().toISOString() }));
  const r = await send(sftp(join(tmp.dir, 'r3'), ['--outbox', outbox]));
  expect(r.exitCode).toBe(0);
  expect(parseEvents(r.stdout)).toEqual([expect.objectContaining({ event: 'send-skipped' })]);
  expect(existsSync(join(outbox, 'y.bin'))).toBe(true);
});

test('sftp outbox killed with -9 mid-run: the re-run delivers the rest, nothing lost, nothing sent twice', async () => {
  const base = join(tmp.dir, 'o4');
  const outbox = join(base, 'outbox');
  await mkdir(outbox, { recursive: true });
  for (let i = 0; i < 6; i++) await writeFile(join(outbox, `item-${i}.bin`), randomBytes(8 * 1024 * 1024));
  const sums = new Map<string, string>();
  for (const f of await readdir(outbox)) sums.set(f, await md5(join(outbox, f)));
  const remote = join(tmp.dir, 'r4');
  const run = execa(binPath('fiona-send'), sftp(remote, ['--outbox', outbox, '--parallel', '1']), { reject: false, env: { NO_COLOR: '1' } });
  // Kill once the first files are confirmed (their "sent" events are out).
  await new Promise<void>((resolve) => {
    let n = 0;
    run.stdout!.on('data', (d: Buffer) => {
      n += (d.toString().match(/"event":"sent"/g) ?? []).length;
      if (n >= 2) resolve();
    });
    void run.then(() => resolve());
  });
  run.kill('SIGKILL');
  const killed = await run;
  const firstSent = parseEvents(String(killed.stdout).split('\n').filter((l) => l.endsWith('}')).join('\n'))
    .filter((e) => e.event === 'sent')
    .map((e) => e.name);
  const again = await send(sftp(remote, ['--outbox', outbox, '--parallel', '1']));
  expect(again.exitCode, String(again.stderr)).toBe(0);
  const secondSent = parseEvents(again.stdout).filter((e) => e.event === 'sent');
  // Files confirmed before the kill are not uploaded again (acked, or found there by checksum).
  for (const e of secondSent) {
    if (firstSent.includes(e.name)) expect(e.alreadyThere, String(e.name)).toBe(true);
  }
  expect(await readdir(outbox)).toEqual(['.fiona-send']);
  expect((await readdir(join(base, 'sent'))).sort()).toEqual([...sums.keys()].sort());
  expect((await readdir(remote)).sort()).toEqual([...sums.keys()].sort());
  for (const [f, sum] of sums) expect(await md5(join(remote, f)), f).toBe(sum);
}, 110_000);

describe('dicom outbox', () => {
  test('a study folder goes to the PACS and then to sent/; a delivery record is written for the site', async () => {
    const base = join(tmp.dir, 'o5');
    const site = join(base, 'site');
    const files = await synthStudy(join(base, 'synth'), { series: 1, instances: 4 });
    // The study as the receiver archives it: archive/<Study>/<Series>/<SOP>.dcm
    const studyUid = files[0]!.split('/').at(-3)!;
    const outbox = join(base, 'outbox');
    await mkdir(join(outbox, 'study-1'), { recursive: true });
    for (const f of files) {
      const parts = f.split('/');
      const dst = join(site, 'archive', parts.at(-3)!, parts.at(-2)!);
      await mkdir(dst, { recursive: true });
      await copyFile(f, join(dst, parts.at(-1)!));
      await copyFile(f, join(outbox, 'study-1', parts.at(-1)!));
    }
    const received = join(base, 'pacs');
    await mkdir(received);
    const scp = await startStorescp(received, { aet: 'PACS', args: ['+xa', '+B'] });
    try {
      const r = await send(['--to', `dicom://PACS@127.0.0.1:${scp.port}`, '--outbox', outbox, '--site', site]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(parseEvents(r.stdout).find((e) => e.event === 'delivered')).toMatchObject({ item: 'study-1', files: 4 });
      expect((await readdir(join(base, 'sent', 'study-1'))).length).toBe(4);
      const stored = await filesUnder(received);
      expect(stored).toHaveLength(4);
      expect(new Set(await Promise.all(stored.map(sopOf)))).toEqual(new Set(await Promise.all(files.map(sopOf))));
      const record = (await readFile(join(site, 'state', 'delivered', `${studyUid}.ndjson`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(record).toEqual([expect.objectContaining({ study: studyUid, kind: 'sent', tool: 'fiona-send', files: 4 })]);
    } finally {
      await stopProc(scp.proc);
    }
  });
});
