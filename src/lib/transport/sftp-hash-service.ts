/**
 * One checksum "service" per connection: a single exec channel runs a small POSIX sh loop
 * that reads a count and that many paths from its stdin, runs one `md5sum -- paths...` (or
 * `openssl dgst -sha256 -r -- paths...`) and ends the answer with a mark. Every exec costs the server a session and a login shell (which
 * reads the user's shell rc files: 0.15 s of CPU on the test machine, whose .bashrc runs
 * `pyenv init`), so batches go down one channel instead of one exec each.
 *
 * Paths travel as data on stdin, never in the command string. Names the command may print
 * escaped (backslash, newline, carriage return) cannot travel line by line: the caller
 * hashes those by a separate exec (hashCommand).
 */
import { remoteHashCommand, type HashAlg } from './checksum.js';
import { ESCAPED, SUMS_MARK as MARK, openExec, parseSums, type ExecStream, type SshExec } from './sftp-exec.js';

function loop(alg: HashAlg): string {
  return (
    `while read -r n; do set --; i=0; while [ "$i" -lt "$n" ]; do IFS= read -r p || exit 1; set -- "$@" "$p"; i=$((i+1)); done; ` +
    `${remoteHashCommand(alg)} -- "$@" 2>/dev/null; echo ${MARK}; done`
  );
}

/** Whether a path can be sent to the service (one line, printed unescaped by md5sum). */
function servicePath(p: string): boolean {
  return !ESCAPED.test(p) && p !== '-';
}

interface Request {
  paths: string[];
  resolve: (sums: Array<string | undefined> | undefined) => void;
}

export class RemoteHashService {
  private out = '';
  private current?: Request & { timer: NodeJS.Timeout };
  private readonly queue: Request[] = [];
  private closed = false;

  private constructor(
    private readonly stream: ExecStream,
    readonly alg: HashAlg,
  ) {
    stream.on('data', (d: Buffer) => this.onData(d.toString('latin1')));
    stream.stderr.on('data', () => undefined);
    stream.on('close', () => this.shut());
  }

  /** Open the channel; undefined when the server refuses. */
  static async open(ssh: SshExec, alg: HashAlg): Promise<RemoteHashService | undefined> {
    const stream = await openExec(ssh, loop(alg));
    return stream && new RemoteHashService(stream, alg);
  }

  get usable(): boolean {
    return !this.closed;
  }

  /**
   * Digest of each path in order (undefined where the command printed none: unreadable, or a path
   * servicePath refuses); undefined for all when the channel failed or timed out.
   */
  hash(paths: string[], timeoutMs: number): Promise<Array<string | undefined> | undefined> {
    const ok = paths.filter(servicePath);
    if (this.closed) return Promise.resolve(undefined);
    if (ok.length === 0) return Promise.resolve(paths.map(() => undefined));
    return new Promise<Array<string | undefined> | undefined>((resolve) => {
      this.queue.push({ paths: ok, resolve });
      this.next(timeoutMs);
    }).then((sums) => {
      if (!sums) return undefined;
      const byPath = new Map(ok.map((p, i) => [p, sums[i]]));
      return paths.map((p) => byPath.get(p));
    });
  }

  close(): void {
    this.shut();
    try {
      this.stream.end();
      this.stream.close?.();
    } catch {
      // already gone
    }
  }

  private next(timeoutMs: number): void {
    if (this.current || this.closed) return;
    const req = this.queue.shift();
    if (!req) return;
    const timer = setTimeout(() => this.close(), timeoutMs);
    this.current = { ...req, timer };
    this.stream.write(`${req.paths.length}\n${req.paths.join('\n')}\n`);
  }

  private onData(text: string): void {
    this.out += text;
    // The mark on a line of its own (no name sent here holds a newline).
    const at = `\n${this.out}`.indexOf(`\n${MARK}\n`);
    if (at < 0 || !this.current) return;
    const answer = this.out.slice(0, at + MARK.length);
    this.out = this.out.slice(at + MARK.length + 1);
    const req = this.current;
    this.current = undefined;
    clearTimeout(req.timer);
    req.resolve(parseSums(this.alg, answer, req.paths));
    this.next(60_000 + (this.queue[0]?.paths.length ?? 0) * 5_000);
  }

  private shut(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.current) {
      clearTimeout(this.current.timer);
      this.current.resolve(undefined);
      this.current = undefined;
    }
    for (const r of this.queue.splice(0)) r.resolve(undefined);
  }
}
