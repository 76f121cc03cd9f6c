/**
 * Commands on the SFTP server over exec channels of the same SSH connection (checksums of
 * the uploaded files). Every command string is built from fixed text, numbers and paths
 * passed through shellQuote: nothing from a file's contents or header reaches the shell.
 */
import { remoteHashCommand, sumLine, HEX_LEN, type HashAlg } from './checksum.js';

/** Quote for a POSIX shell (the server runs exec commands through the user's shell). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface ExecStream {
  on(event: 'data', fn: (d: Buffer) => void): void;
  on(event: 'close', fn: (code: number | null) => void): void;
  stderr: { on(event: 'data', fn: (d: Buffer) => void): void };
  write(data: string): boolean;
  end(): void;
  close?(): void;
}

export interface SshExec {
  exec(command: string, cb: (err: Error | undefined, stream: ExecStream) => void): void;
  setNoDelay(noDelay: boolean): void;
  setMaxListeners(n: number): void;
  on(event: 'close', fn: () => void): void;
}

/** ssh2-sftp-client keeps the ssh2 connection in .client (not in its typings). */
export function sshOf(client: unknown): SshExec | undefined {
  return (client as { client?: SshExec } | undefined)?.client;
}

/** Open an exec channel for `command`; undefined when the server refuses or the connection is gone. */
export function openExec(ssh: SshExec, command: string): Promise<ExecStream | undefined> {
  return new Promise((resolve) => {
    try {
      ssh.exec(command, (err, stream) => resolve(err ? undefined : stream));
    } catch {
      resolve(undefined);
    }
  });
}

/**
 * Run a command with no input; its stdout, or undefined when the server refuses, the command
 * fails with no output, or nothing comes back within the time limit.
 */
export function execText(ssh: SshExec | undefined, command: string, timeoutMs: number): Promise<string | undefined> {
  if (!ssh) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let out = '';
    let done = false;
    const finish = (v: string | undefined): void => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        resolve(v);
      }
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    try {
      ssh.exec(command, (err, stream) => {
        if (err) return finish(undefined);
        stream.on('data', (d: Buffer) => {
          out += d.toString('latin1');
        });
        stream.stderr.on('data', () => undefined);
        stream.on('close', (code: number | null) => finish(code === 0 || code === null ? out : out || undefined));
        // A server that forces internal-sftp would wait for SFTP packets on stdin: end it.
        stream.end();
      });
    } catch {
      finish(undefined); // the connection is gone
    }
  });
}

/** Names md5sum (and OpenSSL 3) print escaped (a leading backslash): those are hashed one by one instead. */
export const ESCAPED = /[\\\n\r]/;
/** Ends the plain checksum lines of an answer (hashCommand, and each answer of RemoteHashService). */
export const SUMS_MARK = '--fiona-sums--';

/**
 * One command that hashes many files: a single `md5sum -- p1 p2 ...` (or `openssl dgst
 * -sha256 -r -- ...`: one process, not one per file) whose lines are matched by name; names
 * that may be printed escaped go through `<cmd> < p`, one line each, after a mark. A file the
 * command cannot read has no line.
 */
export function hashCommand(alg: HashAlg, paths: string[]): string {
  const cmd = remoteHashCommand(alg);
  const plain = paths.filter((p) => !ESCAPED.test(p));
  const odd = paths.filter((p) => ESCAPED.test(p));
  const parts: string[] = [];
  if (plain.length > 0) parts.push(`${cmd} -- ${plain.map(shellQuote).join(' ')} 2>/dev/null`);
  parts.push(`echo ${SUMS_MARK}`);
  for (const p of odd) parts.push(`${cmd} < ${shellQuote(p)} 2>/dev/null || echo FAILED`);
  return parts.join('; ');
}

/** The digest of each path from hashCommand's output, in order; undefined where there is none. */
export function parseSums(alg: HashAlg, text: string, paths: string[]): Array<string | undefined> {
  const lines = text.split('\n');
  const mark = lines.indexOf(SUMS_MARK);
  if (mark < 0) return paths.map(() => undefined);
  const line = sumLine(alg);
  const byName = new Map<string, string>();
  for (const l of lines.slice(0, mark)) {
    const m = line.exec(l);
    if (m) byName.set(m[2]!, m[1]!);
  }
  const oddLines = lines.slice(mark + 1);
  const first = new RegExp(`^([0-9a-f]{${HEX_LEN[alg]}})\\b`);
  let k = 0;
  return paths.map((p) => {
    if (!ESCAPED.test(p)) return byName.get(p);
    return first.exec(oddLines[k++] ?? '')?.[1];
  });
}
