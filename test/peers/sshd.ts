/**
 * A real OpenSSH sshd on 127.0.0.1 for tests: host key and user key generated in a private
 * temp folder, `Subsystem sftp internal-sftp`, key authentication only, no PAM,
 * StrictModes no, a PidFile, a free port. It runs as the current user without chroot, so
 * uploaded files land in the real file system where the test can read them.
 *
 * const sshd = await startSshd();  ... sshd.knownHosts, sshd.identity, sshd.user, sshd.port
 * await sshd.stop();
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync } from 'node:fs';
import { readdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitForPort } from './ports.js';
import { requireProgram } from './process.js';

export interface Sshd {
  dir: string;
  port: number;
  user: string;
  /** The user's private key (ed25519, no passphrase). */
  identity: string;
  /** A known_hosts file holding this server's host key as `[127.0.0.1]:port`. */
  knownHosts: string;
  /** The host public key line (type and base64). */
  hostKey: string;
  /** sftp:// URL for a remote folder. */
  url(remoteDir: string): string;
  /** Kill the listener and every session process it started (a cut connection), by pid. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start again on the same port with the same keys. */
  restart(): Promise<void>;
  /** Stop everything and remove the folder. */
  stop(): Promise<void>;
}

async function keygen(file: string, type = 'ed25519'): Promise<void> {
  await execa('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'fiona-test', '-f', file]);
}

/** Direct and indirect children of a pid, read from /proc (Linux). */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = await readFile(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(e));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    for (const c of parents.get(p) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

export interface SshdOptions {
  /** More sshd_config lines (e.g. 'ForceCommand internal-sftp'). */
  extraConfig?: string[];
  /**
   * Largest file the server may write, in KiB (RLIMIT_FSIZE, with SIGXFSZ ignored so that a
   * write past it fails with EFBIG): a full disk or quota, as the SFTP client sees it.
   */
  fileSizeLimitKb?: number;
}

export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const sshdBin = requireProgram('sshd', 'openssh-server');
  requireProgram('ssh-keygen', 'openssh-client');
  const { dir, cleanup } = await makeTempDir('fiona-sshd-');
  const user = userInfo().username;
  const hostKeyFile = join(dir, 'host_ed25519');
  const identity = join(dir, 'id_ed25519');
  await keygen(hostKeyFile);
  await keygen(identity);
  const authorized = join(dir, 'authorized_keys');
  await writeFile(authorized, await readFile(`${identity}.pub`));
  await chmod(authorized, 0o600);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyFile}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      `AllowUsers ${user}`,
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      // Commands over exec (md5sum, dd) run without the login user's ~/.bashrc: bash reads it
      // for sshd only in a top-level shell (SHLVL < 2). Keeps the peer the same on every
      // machine: here root's .bashrc runs `pyenv init`, whose stale lock once held every exec
      // for 60 s.
      'SetEnv SHLVL=1',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  // As root, sshd insists on its privilege separation folder (Debian: /run/sshd).
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });

  const hostPub = (await readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);

  let proc: ResultPromise | undefined;
  const launch = async (): Promise<void> => {
    const args = ['-D', '-e', '-f', config];
    proc = opts.fileSizeLimitKb
      ? execa('sh', ['-c', `trap '' XFSZ; ulimit -f ${opts.fileSizeLimitKb}; exec "$0" "$@"`, sshdBin, ...args], { reject: false, stdin: 'ignore', buffer: { stdout: true, stderr: true } })
      : execa(sshdBin, args, { reject: false, stdin: 'ignore', buffer: { stdout: true, stderr: true } });
    const exited = proc.then((r) => {
      throw new Error(`sshd exited at start (code ${r.exitCode}): ${String(r.stderr).slice(0, 2000)}`);
    });
    await Promise.race([waitForPort(port, 15_000), exited]);
    exited.catch(() => undefined);
  };
  await launch();

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const p = proc;
    if (!p?.pid || p.exitCode !== null) return;
    const kids = await descendants(p.pid);
    p.kill(signal);
    for (const k of kids) {
      try {
        process.kill(k, signal);
      } catch {
        // gone
      }
    }
    await p;
  };

  return {
    dir,
    port,
    user,
    identity,
    knownHosts,
    hostKey: hostPub,
    url: (remoteDir) => `sftp://${encodeURIComponent(user)}@127.0.0.1:${port}${remoteDir.startsWith('/') ? '' : '/'}${remoteDir}`,
    kill,
    restart: launch,
    async stop() {
      await kill('SIGTERM');
      await cleanup();
    },
  };
}
