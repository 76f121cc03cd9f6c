/**
 * fiona-send to sftp:// against a real OpenSSH sshd on loopback (generated host and user
 * keys, internal-sftp): checksums compared, host keys enforced, sshd killed mid-transfer and
 * restarted, a full disk, a server that allows no exec.
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTempDir } from '../helpers/tmp.js';
import { startSshd, type Sshd } from '../peers/sshd.js';
import { binPath, filesUnder, parseEvents, send } from './helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let sshd: Sshd;

const md5 = async (f: string): Promise<string> => createHash('md5').update(await readFile(f)).digest('hex');

beforeAll(async () => {
  tmp = await makeTempDir('fiona-send-sftp-');
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
  await tmp?.cleanup();
});

function sftpArgs(s: Sshd, remote: string, extra: string[] = []): string[] {
  return ['--to', s.url(remote), '--identity', s.identity, '--known-hosts', s.knownHosts, ...extra];
}

async function makeFiles(dir: string, n: number, size: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = join(dir, `file-${i}.bin`);
    await writeFile(f, randomBytes(size));
    out.push(f);
  }
  return out;
}

describe('uploads', () => {
  test('files and folders arrive whole (md5 compared), .md5 beside with --md5-file, no .part left', async () => {
    const src = join(tmp.dir, 'src1');
    const files = await makeFiles(join(src, 'study'), 5, 300_000);
    const single = join(src, 'export.zip');
    await writeFile(single, randomBytes(1_500_000));
    const remote = join(tmp.dir, 'remote1');
    const r = await send(sftpArgs(sshd, remote, ['--md5-file', join(src, 'study'), single]));
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
    expect(sent).toHaveLength(6);
    expect(sent.every((e) => e.verified === 'md5sum')).toBe(true);
    for (const f of files) {
      const there = join(remote, 'study', f.split('/').pop()!);
      expect(await md5(there)).toBe(await md5(f));
      expect((await readFile(`${there}.md5`, 'utf8')).trim()).toBe(`${await md5(f)} *${f.split('/').pop()}`);
    }
    expect(await md5(join(remote, 'export.zip'))).toBe(await md5(single));
    expect((await filesUnder(remote)).some((f) => f.endsWith('.part'))).toBe(false);
  });

  test('a second run finds the files there (same checksum) and uploads nothing again', async () => {
    const src = join(tmp.dir, 'src2');
    await makeFiles(src, 3, 100_000);
    const remote = join(tmp.dir, 'remote2');
    expect((await send(sftpArgs(sshd, remote, [src]))).exitCode).toBe(0);
    const before = await Promise.all((await filesUnder(remote)).map(async (f) => (await stat(f)).mtimeMs));
    const r = await send(sftpArgs(sshd, remote, [src]));
    expect(r.exitCode).toBe(0);
    const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
    expect(sent).toHaveLength(3);
    expect(sent.every((e) => e.alreadyThere === true)).toBe(true);
    const after = await Promise.all((await filesUnder(remote)).map(async (f) => (await stat(f)).mtimeMs));
    expect(after).toEqual(before);
  });

  test('sshd killed mid-transfer and restarted: the upload restarts cleanly and arrives whole', async () => {
    const src = join(tmp.dir, 'src3');
    await mkdir(src);
    const big = join(src, 'big.bin');
    await writeFile(big, randomBytes(120 * 1024 * 1024));
    const remote = join(tmp.dir, 'remote3');
    await mkdir(remote);
    const run = execa(binPath('fiona-send'), sftpArgs(sshd, remote, ['--retries', '6', '--retry-delay', '500ms', '--max-delay', '1s', big]), {
      reject: false,
      env: { NO_COLOR: '1' },
    });
    // Wait until the upload is under way, then cut it.
    for (let i = 0; i < 300; i++) {
      const part = join(remote, 'big.bin.part');
      if (existsSync(part) && (await stat(part)).size > 5 * 1024 * 1024) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await sshd.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 700));
    await sshd.restart();
    const r = await run;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const events = parseEvents(r.stdout);
    expect(events.some((e) => e.event === 'send-retry')).toBe(true);
    expect(await md5(join(remote, 'big.bin'))).toBe(await md5(big));
    expect(await readdir(remote)).toEqual(['big.bin']);
  }, 110_000);
});

describe('refusals', () => {
  test('a changed host key is refused, also an unknown host; nothing is uploaded', async () => {
    const other = join(tmp.dir, 'otherhost');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const pub = (await readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const wrong = join(tmp.dir, 'known_wrong');
    await writeFile(wrong, `[127.0.0.1]:${sshd.port} ${pub}\n`);
    const empty = join(tmp.dir, 'known_empty');
    await writeFile(empty, `# nothing\n[127.0.0.1]:1 ${pub}\n`);
    const src = join(tmp.dir, 'src4');
    await makeFiles(src, 1, 1000);
    const remote = join(tmp.dir, 'remote4');
    for (const [file, why] of [[wrong, /does not match/], [empty, /unknown host/]] as const) {
      const r = await send(['--to', sshd.url(remote), '--identity', sshd.identity, '--known-hosts', file, '--retries', '1', '--retry-delay', '100ms', src]);
      expect(r.exitCode).toBe(1);
      const failed = parseEvents(r.stdout).find((e) => e.event === 'send-failed')!;
      expect(String(failed.reason)).toMatch(why);
      expect(failed.attempts).toBe(2);
    }
    expect(existsSync(remote)).toBe(false);
  });

  test('a key the server does not know is refused with the reason', async () => {
    const stranger = join(tmp.dir, 'stranger');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    const src = join(tmp.dir, 'src5');
    await makeFiles(src, 1, 1000);
    const r = await send(['--to', sshd.url(join(tmp.dir, 'remote5')), '--identity', stranger, '--known-hosts', sshd.knownHosts, '--retries', '0', src]);
    expect(r.exitCode).toBe(1);
    expect(String(parseEvents(r.stdout).find((e) => e.event === 'send-failed')!.reason)).toMatch(/refused the key/);
  });

  test('a full remote disk: retried, then failed with the reason; nothing published', async () => {
    const small = await startSshd({ fileSizeLimitKb: 1024 });
    try {
      const src = join(tmp.dir, 'src6');
      await mkdir(src);
      await writeFile(join(src, 'fits.bin'), randomBytes(200_000));
      await writeFile(join(src, 'toobig.bin'), randomBytes(3_000_000));
      const remote = join(tmp.dir, 'remote6');
      const r = await send(sftpArgs(small, remote, ['--retries', '1', '--retry-delay', '100ms', src]));
      expect(r.exitCode).toBe(1);
      const events = parseEvents(r.stdout);
      const failed = events.filter((e) => e.event === 'send-failed');
      expect(failed.map((e) => String(e.path).split('/').pop())).toEqual(['toobig.bin']);
      expect(failed[0]!.attempts).toBe(2);
      expect(String(failed[0]!.reason)).toMatch(/upload failed|disk is full/);
      expect(await readdir(join(remote, 'src6'))).toEqual(['fits.bin']);
    } finally {
      await small.stop();
    }
  });

  test('a server that runs no commands (ForceCommand internal-sftp): size check in auto mode; md5sum mode refuses', async () => {
    const sftpOnly = await startSshd({ extraConfig: ['ForceCommand internal-sftp'] });
    try {
      const src = join(tmp.dir, 'src7');
      const [f] = await makeFiles(src, 1, 50_000);
      const remote = join(tmp.dir, 'remote7');
      const r = await send(sftpArgs(sftpOnly, remote, [f!]));
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(parseEvents(r.stdout).find((e) => e.event === 'sent')!.verified).toBe('size');
      expect(await md5(join(remote, 'file-0.bin'))).toBe(await md5(f!));
      const strict = await send(sftpArgs(sftpOnly, join(tmp.dir, 'remote7b'), ['--verify', 'md5sum', '--retries', '0', f!]));
      expect(strict.exitCode).toBe(1);
      expect(String(parseEvents(strict.stdout).find((e) => e.event === 'send-failed')!.reason)).toMatch(/does not run md5sum/);
      const back = await send(sftpArgs(sftpOnly, join(tmp.dir, 'remote7c'), ['--verify', 'readback', f!]));
      expect(back.exitCode).toBe(0);
      expect(parseEvents(back.stdout).find((e) => e.event === 'sent')!.verified).toBe('readback');
    } finally {
      await sftpOnly.stop();
    }
  });
});
