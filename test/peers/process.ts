import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';

/**
 * Fail (never skip) when a peer program is missing, and say how to install it.
 */
export function requireProgram(bin: string, debianPackage: string): string {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin']);
  for (const d of dirs) {
    const p = `${d}/${bin}`;
    if (existsSync(p)) return p;
  }
  throw new Error(`${bin} is not installed: run \`apt-get install -y ${debianPackage}\` (or \`npm test\` as root, whose pretest installs it)`);
}

/** Environment for DCMTK tools: on loopback they are slow without TCP_NODELAY. */
export const DCMTK_ENV = { TCP_NODELAY: '1' } as const;

export interface Peer {
  proc: ResultPromise;
  stop(): Promise<void>;
}

/** Start a long-running peer; stop() sends SIGTERM, then SIGKILL after a grace period. */
export function startPeer(file: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Peer {
  const proc = execa(file, args, {
    cwd: opts.cwd,
    env: { ...DCMTK_ENV, ...opts.env },
    reject: false,
    stdin: 'ignore',
    buffer: { stdout: true, stderr: true },
  });
  return { proc, stop: () => stopProcess(proc) };
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
export async function stopProcess(proc: ResultPromise, graceMs = 3000): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await proc;
  clearTimeout(timer);
}
