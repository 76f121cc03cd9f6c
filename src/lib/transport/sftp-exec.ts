/**
 * Commands on the SFTP server over exec channels of the same SSH connection (md5sum of the
 * uploaded files). Every command string is built from fixed text, numbers and paths passed
 * through shellQuote: nothing from a file's contents or header reaches the shell.
 */

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
