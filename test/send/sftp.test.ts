/**
 * fiona-send to sftp:// against a real OpenSSH sshd on loopback (generated host and user
 * keys, internal-sftp): checksums compared (SHA-256 by openssl, MD5 by md5sum), host keys
 * enforced, sshd killed mid-transfer and restarted, a full disk, a server that allows no
 * exec, a server without openssl.
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { beforeAll, describe, expect, test } from 'vitest';
import { EMPTY_DIGEST, type HashAlg } from '../../src/lib/transport/checksum.js';
import { sshOf, type SshExec } from '../../src/lib/transport/sftp-exec.js';
import { BlockHasher } from '../../src/lib/transport/sftp-hash.js';
import { RemoteHashService } from '../../src/lib/transport/sftp-hash-service.js';
import { RemoteStreamHash } from '../../src/lib/transport/sftp-stream-hash.js';
import { tunePackets } from '../../src/lib/transport/sftp-packets.js';
import { hasherFor, uploadFile } from '../../src/lib/transport/sftp-upload.js';
import { requireProgram } from '../peers/process.js';
import { startSshd, type Sshd } from '../peers/sshd.js';
import { binPath, filesUnder, md5, parseEvents, send, sftpArgs, withSftpSession, withSshd, type TempDir } from './helpers.js';

// The server side of --verify sha256 (the sshd here runs on this machine): a missing openssl
// fails the tests with the install command instead of quietly testing the md5sum fallback.
beforeAll(() => {
  requireProgram('openssl', 'openssl');
  requireProgram('python3', 'python3');
});

let tmp: TempDir;
let sshd: Sshd;
withSshd('fiona-send-sftp-', (t, s) => {
  tmp = t;
  sshd = s;
});

/** SHA-256 of a local file, hex. */
async function sha256(f: string): Promise<string> {
  return createHash('sha256').update(await readFile(f)).digest('hex');
}

/** A file's digest by algorithm. */
async function digestOf(alg: HashAlg, f: string): Promise<string> {
  return alg === 'md5' ? md5(f) : sha256(f);
}

/** Whether the server runs the streaming construct (sh, dd, the hash): hashes /dev/null through it. */
async function probeStreamHash(ssh: SshExec, alg: HashAlg, timeoutMs = 10_000): Promise<boolean> {
  const r = await RemoteStreamHash.start(ssh, alg, '/dev/null');
  if (!r) return false;
  r.request(1); // the count= branch too
  return (await r.finish(timeoutMs)) === EMPTY_DIGEST[alg];
}

/**
 * sshd_config lines that give the session commands a PATH holding links to the named programs
 * only: a server that lacks the rest. In a Match block, because sshd takes the first SetEnv
 * line it reads and the peer's own config has one already (SHLVL=1, kept here).
 */
async function onlyTools(dir: string, tools: string[]): Promise<string[]> {
  await mkdir(dir);
  for (const tool of tools) {
    const where = (await execa('sh', ['-c', `command -v ${tool}`])).stdout.trim();
    await symlink(where, join(dir, tool));
  }
  return [`Match User ${userInfo().username}`, `  SetEnv SHLVL=1 PATH=${dir}`];
}

/**
 * A new folder under tmp holding big.bin, 66 MiB of random bytes: more than one streaming-hash
 * segment (64 MiB), so the servers with fewer tools take their fallbacks.
 */
async function bigFileIn(name: string): Promise<{ src: string; big: string }> {
  const src = join(tmp.dir, name);
  await mkdir(src);
  const big = join(src, 'big.bin');
  await writeFile(big, randomBytes(66 * 1024 * 1024));
  return { src, big };
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
  test('files and folders arrive whole (sha256 compared), .md5 beside with --md5-file, no .part left', async () => {
    const src = join(tmp.dir, 'src1');
    const files = await makeFiles(join(src, 'study'), 5, 300_000);
    const single = join(src, 'export.zip');
    await writeFile(single, randomBytes(1_500_000));
    const remote = join(tmp.dir, 'remote1');
    const r = await send(sftpArgs(sshd, remote, ['--md5-file', join(src, 'study'), single]));
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
    expect(sent).toHaveLength(6);
    expect(sent.every((e) => e.verified === 'sha256')).toBe(true);
    for (const f of files) {
      const there = join(remote, 'study', f.split('/').pop()!);
      expect(await md5(there)).toBe(await md5(f));
      expect((await readFile(`${there}.md5`, 'utf8')).trim()).toBe(`${await md5(f)} *${f.split('/').pop()}`);
      // Both digests of the bytes sent: SHA-256 compared with the server's, MD5 for the .md5 file.
      const e = sent.find((x) => x.path === f)!;
      expect([e.sha256, e.md5]).toEqual([await sha256(f), await md5(f)]);
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
    expect(sent.every((e) => e.alreadyThere === true && e.verified === 'sha256')).toBe(true);
    for (const e of sent) expect(e.sha256).toBe(await sha256(String(e.path)));
    // The same with MD5 (--verify md5sum): the server's md5sum finds them there too.
    const m = await send(sftpArgs(sshd, remote, ['--verify', 'md5sum', src]));
    expect(m.exitCode, String(m.stderr)).toBe(0);
    const again = parseEvents(m.stdout).filter((e) => e.event === 'sent');
    expect(again.every((e) => e.alreadyThere === true && e.verified === 'md5sum')).toBe(true);
    for (const e of again) expect(e.md5).toBe(await md5(String(e.path)));
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

  test('a server that runs no commands (ForceCommand internal-sftp): size check in auto mode; md5sum and sha256 modes refuse', async () => {
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
      const strict256 = await send(sftpArgs(sftpOnly, join(tmp.dir, 'remote7d'), ['--verify', 'sha256', '--retries', '0', f!]));
      expect(strict256.exitCode).toBe(1);
      expect(String(parseEvents(strict256.stdout).find((e) => e.event === 'send-failed')!.reason)).toMatch(/does not run openssl dgst -sha256/);
      const back = await send(sftpArgs(sftpOnly, join(tmp.dir, 'remote7c'), ['--verify', 'readback', f!]));
      expect(back.exitCode).toBe(0);
      expect(parseEvents(back.stdout).find((e) => e.event === 'sent')!.verified).toBe('readback');
    } finally {
      await sftpOnly.stop();
    }
  });
});

describe('files in flight', () => {
  test('several files at once, one of them failing: the others arrive verified, the one fails alone', async () => {
    const src = join(tmp.dir, 'src8');
    const files = await makeFiles(src, 7, 700_000);
    // Over one 64 MiB segment: verified by the md5sum that runs during the upload.
    const big = join(src, 'big.bin');
    await writeFile(big, randomBytes(70 * 1024 * 1024));
    const remote = join(tmp.dir, 'remote8');
    // A folder where file-3.bin.part would go: the server cannot open it for writing.
    await mkdir(join(remote, 'src8', 'file-3.bin.part'), { recursive: true });
    const r = await send(sftpArgs(sshd, remote, ['--parallel', '4', '--retries', '1', '--retry-delay', '100ms', src]));
    expect(r.exitCode).toBe(1);
    const events = parseEvents(r.stdout);
    const failed = events.filter((e) => e.event === 'send-failed');
    expect(failed.map((e) => String(e.name).split('/').pop())).toEqual(['file-3.bin']);
    expect(failed[0]!.attempts).toBe(2);
    const sent = events.filter((e) => e.event === 'sent');
    expect(sent).toHaveLength(7);
    expect(sent.every((e) => e.verified === 'sha256')).toBe(true);
    for (const f of [...files.filter((f) => !f.endsWith('file-3.bin')), big]) {
      const name = f.split('/').pop()!;
      const there = join(remote, 'src8', name);
      expect(await md5(there)).toBe(await md5(f));
      const e = sent.find((x) => String(x.name).endsWith(`/${name}`))!;
      expect(e.sha256).toBe(await sha256(f));
      // MD5 is computed only where something needs it (--md5-file, a server with md5sum only).
      expect(e.md5).toBeUndefined();
    }
    expect((await readdir(join(remote, 'src8'))).sort()).toEqual(
      ['big.bin', 'file-0.bin', 'file-1.bin', 'file-2.bin', 'file-3.bin.part', 'file-4.bin', 'file-5.bin', 'file-6.bin'],
    );
  }, 60_000);

  test('40 small files at the default parallelism: all verified, no warning on stderr', async () => {
    const src = join(tmp.dir, 'src11');
    const files = await makeFiles(src, 40, 20_000);
    const remote = join(tmp.dir, 'remote11');
    const r = await send(sftpArgs(sshd, remote, [src]));
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stderr)).not.toMatch(/Warning|leak/i);
    const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
    expect(sent).toHaveLength(40);
    for (const f of files) expect(await md5(join(remote, 'src11', f.split('/').pop()!))).toBe(await md5(f));
  });

  test('names with quotes, spaces and backslashes are checked by the batched sha256 and md5sum', async () => {
    const src = join(tmp.dir, 'src9');
    await mkdir(src);
    const names = ["it's a file.bin", 'back\\slash.bin', '-dash.bin', 'new\nline.bin'];
    for (const n of names) await writeFile(join(src, n), randomBytes(50_000));
    for (const verify of ['sha256', 'md5sum']) {
      const remote = join(tmp.dir, `remote9-${verify}`);
      const r = await send(sftpArgs(sshd, remote, ['--verify', verify, src]));
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
      expect(sent.map((e) => e.verified)).toEqual(names.map(() => verify));
      for (const n of names) expect(await md5(join(remote, 'src9', n))).toBe(await md5(join(src, n)));
    }
  });
});

describe('servers with fewer tools', () => {
  test('no openssl and no dd: auto falls back to md5sum, a big file is checked after its upload; sha256 mode refuses', async () => {
    // PATH with sh and md5sum only: no openssl (auto takes md5sum), no dd (the streaming hash
    // fails, the batch md5sum runs after the upload).
    const noOpenssl = await startSshd({ extraConfig: await onlyTools(join(tmp.dir, 'nodd-bin'), ['sh', 'md5sum']) });
    try {
      const { src, big } = await bigFileIn('src10');
      const small = await makeFiles(src, 3, 30_000);
      const remote = join(tmp.dir, 'remote10');
      const r = await send(sftpArgs(noOpenssl, remote, [src]));
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const sent = parseEvents(r.stdout).filter((e) => e.event === 'sent');
      expect(sent).toHaveLength(4);
      for (const f of [big, ...small]) {
        const e = sent.find((x) => x.path === f)!;
        expect(e.verified).toBe('md5sum');
        // Uploads that began before the probe answered hashed SHA-256; their MD5 was read after.
        expect(e.md5).toBe(await md5(f));
        expect(await md5(join(remote, 'src10', f.split('/').pop()!))).toBe(await md5(f));
      }
      const strict = await send(sftpArgs(noOpenssl, join(tmp.dir, 'remote10b'), ['--verify', 'sha256', '--retries', '0', small[0]!]));
      expect(strict.exitCode).toBe(1);
      expect(String(parseEvents(strict.stdout).find((e) => e.event === 'send-failed')!.reason)).toMatch(/does not run openssl dgst -sha256/);
    } finally {
      await noOpenssl.stop();
    }
  }, 60_000);

  test('a byte changed on the server before its check: sha256 verification fails, retried, nothing published', async () => {
    // The server's `openssl` first changes the first byte of every file it is asked to hash
    // (a disk that corrupts what it was given), then hashes honestly.
    const bin = join(tmp.dir, 'corrupt-bin');
    const extra = await onlyTools(bin, ['sh']);
    const dd = (await execa('sh', ['-c', 'command -v dd'])).stdout.trim();
    const openssl = (await execa('sh', ['-c', 'command -v openssl'])).stdout.trim();
    await writeFile(
      join(bin, 'openssl'),
      `#!/bin/sh\nfor a in "$@"; do if [ -f "$a" ] && [ -s "$a" ]; then printf '\\377' | ${dd} of="$a" bs=1 count=1 conv=notrunc 2>/dev/null; fi; done\nexec ${openssl} "$@"\n`,
      { mode: 0o755 },
    );
    const corrupting = await startSshd({ extraConfig: extra });
    try {
      const src = join(tmp.dir, 'src13');
      await mkdir(src);
      const f = join(src, 'scan.zip');
      await writeFile(f, Buffer.concat([Buffer.from([0]), randomBytes(200_000)]));
      const remote = join(tmp.dir, 'remote13');
      const r = await send(sftpArgs(corrupting, remote, ['--retries', '1', '--retry-delay', '50ms', f]));
      expect(r.exitCode).toBe(1);
      const events = parseEvents(r.stdout);
      expect(events.filter((e) => e.event === 'sent')).toHaveLength(0);
      const failed = events.find((e) => e.event === 'send-failed')!;
      expect(failed.attempts).toBe(2);
      expect(String(failed.reason)).toMatch(new RegExp(`verification failed: sha256 on the server [0-9a-f]{64} != local ${await sha256(f)}`));
      // Neither the final name nor a .part is left.
      expect(await readdir(remote)).toEqual([]);
    } finally {
      await corrupting.stop();
    }
  }, 60_000);

  test('openssl but no dd: a big file is verified by sha256 (python3 reads it during the upload, else openssl after)', async () => {
    const noDd = await startSshd({ extraConfig: await onlyTools(join(tmp.dir, 'nodd2-bin'), ['sh', 'openssl']) });
    try {
      const { big } = await bigFileIn('src12');
      const remote = join(tmp.dir, 'remote12');
      const r = await send(sftpArgs(noDd, remote, [big]));
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const e = parseEvents(r.stdout).find((x) => x.event === 'sent')!;
      expect([e.verified, e.sha256]).toEqual(['sha256', await sha256(big)]);
      expect(await sha256(join(remote, 'big.bin'))).toBe(await sha256(big));
    } finally {
      await noDd.stop();
    }
  }, 60_000);
});

describe('upload pieces against the real sshd', () => {
  let client: SftpClient;
  let sftp: SFTPWrapper;
  withSftpSession(() => sshd, (c, s) => {
    client = c;
    sftp = s;
  });

  test('cheaper packets: the same layout as ssh2\'s own for every payload length, padding random; uploads after it arrive whole', async () => {
    const ssh = sshOf(client)!;
    const cipher = (ssh as unknown as { _protocol: { _cipher: { allocPacket(n: number): Buffer } } })._protocol._cipher;
    const own = Object.getPrototypeOf(cipher).allocPacket as (n: number) => Buffer;
    expect(tunePackets(ssh)).toBe(true);
    expect(Object.getPrototypeOf(cipher).allocPacket).not.toBe(own);
    for (const n of [0, 1, 2, 11, 12, 13, 27, 28, 100, 1000, 32768 - 9, 32768, 300_000]) {
      const a = own.call(cipher, n);
      const b = cipher.allocPacket(n);
      expect([b.length, b.readUInt32BE(0), b[4]]).toEqual([a.length, a.readUInt32BE(0), a[4]]);
      expect(b.readUInt32BE(0) % 16).toBe(0); // AES-GCM: everything after the length field in whole blocks
    }
    // Padding comes from the CSPRNG: two packets' padding differ (19 bytes alike by chance: never).
    const pad = (): string => {
      const p = cipher.allocPacket(13);
      return p.subarray(5 + 13, 4 + p.readUInt32BE(0)).toString('hex');
    };
    expect(pad()).not.toBe(pad());
    // Packets carved from one slab do not overlap.
    const x = cipher.allocPacket(100);
    const y = cipher.allocPacket(100);
    x.fill(1);
    y.fill(2);
    expect(x.every((v) => v === 1)).toBe(true);
    // ssh2 copies payloads in with packet.set: from shared memory (the upload's blocks) by the
    // fast copy, from anything else as before; the same bytes at the same place, nothing around them.
    const shared = Buffer.from(new SharedArrayBuffer(300));
    for (let i = 0; i < shared.length; i++) shared[i] = (i * 7 + 3) & 0xff;
    for (const src of [shared.subarray(17, 217), Buffer.from(shared.subarray(17, 217)), [...shared.subarray(17, 217)]]) {
      const p = cipher.allocPacket(250);
      p.fill(0xee);
      p.set(src, 9);
      expect(p.subarray(9, 209).equals(shared.subarray(17, 217))).toBe(true);
      expect(p.subarray(0, 9).every((v) => v === 0xee) && p.subarray(209).every((v) => v === 0xee)).toBe(true);
      expect(() => p.set(src, p.length - 10)).toThrow(RangeError);
    }
    // Against Uint8Array's own set, for source alignments, lengths and offsets (out of range,
    // negative, fractional, a string): the same bytes, or the same error class and nothing copied.
    const outcome = (q: Uint8Array, src: Uint8Array, at: unknown): string => {
      let err = '';
      try {
        q.set(src, at as number);
      } catch (e) {
        err = (e as Error).constructor.name;
      }
      return `${err}:${Buffer.from(q.buffer, q.byteOffset, q.length).toString('hex')}`;
    };
    const size = cipher.allocPacket(1).length;
    for (const start of [0, 1, 3, 8]) {
      for (const len of [1, 7, 16, 33]) {
        const src = shared.subarray(start, start + len);
        for (const at of [0, 1, 3, size - len, size + 1 - len, -1, 2.5, Number.NaN, '3', undefined]) {
          const p = cipher.allocPacket(1);
          p.fill(0xee);
          const plain = new Uint8Array(p.length).fill(0xee);
          expect(outcome(p, src, at), `${start} ${len} ${String(at)}`).toBe(outcome(plain, src, at));
        }
      }
    }
    expect(Buffer.isBuffer(cipher.allocPacket(10))).toBe(true);
  });

  test('the digests of the sent bytes come from the same read; the server file is byte-identical', async () => {
    const local = join(tmp.dir, 'up1.bin');
    await writeFile(local, randomBytes(5 * 1024 * 1024 + 12345));
    const size = (await stat(local)).size;
    const hasher = hasherFor(sftp);
    const remote = join(tmp.dir, 'up1.remote');
    const acked: number[] = [];
    const { digests } = await uploadFile(sftp, hasher, local, remote, { size, algs: ['sha256', 'md5'], window: 2 * 1024 * 1024, onAcked: (n) => acked.push(n) });
    const sums = await digests;
    expect(sums).toEqual({ sha256: await sha256(local), md5: await md5(local) });
    expect(await sha256(remote)).toBe(sums.sha256);
    expect(acked.at(-1)).toBe(size);
    expect(acked.every((n, i) => i === 0 || n > acked[i - 1]!)).toBe(true);
    // No digest asked for (--verify size): nothing hashed, the same bytes arrive.
    const plain = join(tmp.dir, 'up1b.remote');
    expect(await (await uploadFile(sftp, hasher, local, plain, { size, algs: [] })).digests).toEqual({});
    expect(await sha256(plain)).toBe(sums.sha256);
    await hasher.close();
  });

  test('a local file that shrinks during the upload fails the upload', async () => {
    const local = join(tmp.dir, 'up2.bin');
    await writeFile(local, randomBytes(1024 * 1024));
    const hasher = hasherFor(sftp);
    await expect(uploadFile(sftp, hasher, local, join(tmp.dir, 'up2.remote'), { size: 3 * 1024 * 1024, algs: ['sha256'] })).rejects.toThrow(/shrank/);
    await hasher.close();
  });

  test.each(['sha256', 'md5'] as HashAlg[])('the %s channel answers batch after batch; a missing file or a name it cannot carry has no sum', async (alg) => {
    const dir = join(tmp.dir, `svc-${alg}`);
    await mkdir(dir);
    const a = join(dir, 'a b.bin');
    const b = join(dir, '--fiona-sums--');
    await writeFile(a, randomBytes(1000));
    await writeFile(b, randomBytes(2000));
    const service = (await RemoteHashService.open(sshOf(client)!, alg))!;
    const first = await service.hash([a, join(dir, 'missing'), b], 10_000);
    expect(first).toEqual([await digestOf(alg, a), undefined, await digestOf(alg, b)]);
    const second = await service.hash([b, join(dir, 'back\\slash'), a], 10_000);
    expect(second).toEqual([await digestOf(alg, b), undefined, await digestOf(alg, a)]);
    service.close();
    expect(await service.hash([a], 1000)).toBeUndefined();
  });

  test('the hasher gives the digests of its blocks in order, with its worker or in-process; none when none is asked for', async () => {
    const data = randomBytes(10 * 1000 + 7);
    const want = { md5: createHash('md5').update(data).digest('hex'), sha256: createHash('sha256').update(data).digest('hex') };
    for (const broken of [false, true]) {
      const h = new BlockHasher(1000, 3);
      if (broken) await h.close(); // no worker: in-process
      const both = h.begin(['sha256', 'md5']);
      const one = h.begin(['sha256']);
      const none = h.begin([]);
      // Told which block is the last (its digests come back with it), asked for late.
      const marked = h.begin(['md5', 'sha256']);
      for (let off = 0; off < data.length; off += 1000) {
        for (const id of [both, one, none, marked]) {
          const b = await h.acquire();
          const n = data.copy(b.buf, 0, off, Math.min(off + 1000, data.length));
          h.update(id, b, n, id === marked && off + n === data.length);
        }
      }
      expect(await h.digest(both)).toEqual(want);
      expect(await h.digest(one)).toEqual({ sha256: want.sha256 });
      expect(await h.digest(none)).toEqual({});
      await new Promise((r) => setTimeout(r, 50)); // the answer for `marked` is in before digest() asks
      expect(await h.digest(marked)).toEqual(want);
      await h.close();
    }
  });

  test.each(['sha256', 'md5'] as HashAlg[])('the %s hash during the upload gives no digest for a file the server cannot read', async (alg) => {
    const r = (await RemoteStreamHash.start(sshOf(client)!, alg, join(tmp.dir, 'no-such-file.part')))!;
    r.request(3);
    expect(await r.finish(10_000)).toBeUndefined();
  });

  test.each(['sha256', 'md5'] as HashAlg[])('the %s that runs during the upload sees a byte changed on the server in a segment it has not read yet', async (alg) => {
    const ssh = sshOf(client)!;
    expect(await probeStreamHash(ssh, alg)).toBe(true);
    const MiB = 1024 * 1024;
    const local = join(tmp.dir, `up3-${alg}.bin`);
    await writeFile(local, randomBytes(6 * MiB + 999));
    const size = (await stat(local)).size;
    for (const corrupt of [false, true]) {
      const remote = join(tmp.dir, `up3-${alg}-${corrupt}.remote`);
      const hasher = hasherFor(sftp);
      const stream = (await RemoteStreamHash.start(ssh, alg, remote, 2 * MiB))!;
      let done = false;
      const up = await uploadFile(sftp, hasher, local, remote, {
        size,
        algs: [alg],
        window: MiB,
        onAcked: (n) => {
          // Before the server is asked for the first segment, flip one byte in it (in place, now).
          if (corrupt && !done && n >= 2 * MiB) {
            done = true;
            const fd = openSync(remote, 'r+');
            const b = Buffer.alloc(1);
            readSync(fd, b, 0, 1, MiB + 5);
            b[0] = b[0]! ^ 0xff;
            writeSync(fd, b, 0, 1, MiB + 5);
            closeSync(fd);
          }
          stream.advance(n);
        },
      });
      const there = await stream.finish(30_000);
      const sent = (await up.digests)[alg];
      await hasher.close();
      expect(sent).toBe(await digestOf(alg, local));
      if (corrupt) expect(there).not.toBe(sent);
      else expect(there).toBe(sent);
      // The server's digest of what it holds, computed by the same command afterwards, is what the stream said.
      expect(there).toBe(await digestOf(alg, remote));
      await rm(remote, { force: true });
    }
  });
});
