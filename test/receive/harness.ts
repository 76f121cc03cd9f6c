/**
 * Test harness for fiona-receive: runs the real bin/fiona-receive (built dist/) on 127.0.0.1
 * with port 0, reads its NDJSON events as they come, and stops it by signal.
 */
import { execa, type ResultPromise } from 'execa';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { binPath } from '../helpers/cli.js';

export type Ev = Record<string, unknown>;

export interface RunningReceiver {
  port: number;
  pid: number;
  events: Ev[];
  stderr(): string;
  /** Resolves with the first event (already seen or coming) that matches. */
  waitFor(pred: (e: Ev) => boolean, timeoutMs?: number, what?: string): Promise<Ev>;
  /** All events of a kind so far. */
  of(kind: string): Ev[];
  /** Send a signal and wait for the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | undefined>;
  proc: ResultPromise;
}

/**
 * Start bin/fiona-receive. `wrap` runs it through another program first, e.g.
 * ['unshare', '-rm', 'sh', '-c', 'mount ... && exec "$0" "$@"'] (the receiver keeps the pid).
 */
export async function startReceive(site: string, args: string[] = [], env: Record<string, string> = {}, wrap: string[] = []): Promise<RunningReceiver> {
  const argv = [binPath('fiona-receive'), '--site', site, '--port', '0', '--host', '127.0.0.1', ...args];
  const [file, ...rest] = [...wrap, ...argv] as [string, ...string[]];
  const proc = execa(file, rest, {
    reject: false,
    env: { NO_COLOR: '1', ...env },
    stdin: 'ignore',
    buffer: false,
  });
  const events: Ev[] = [];
  let err = '';
  const waiters: Array<{ pred: (e: Ev) => boolean; resolve: (e: Ev) => void }> = [];
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    const e = JSON.parse(line) as Ev;
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  const waitFor = (pred: (e: Ev) => boolean, timeoutMs = 20_000, what = 'event'): Promise<Ev> => {
    const seen = events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Ev>((resolve, reject) => {
      const w = { pred, resolve: (e: Ev) => (clearTimeout(t), resolve(e)) };
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(events).slice(0, 2000)}; stderr: ${err.slice(0, 2000)}`));
      }, timeoutMs);
      waiters.push(w);
    });
  };
  let exited = false;
  void proc.then(() => {
    exited = true;
  });
  const listening = await Promise.race([
    waitFor((e) => e.event === 'listening', 20_000, 'listening event'),
    proc.then((r) => {
      throw new Error(`fiona-receive exited with ${r.exitCode} before listening: ${err}`);
    }),
  ]);
  return {
    port: Number(listening.port),
    pid: proc.pid as number,
    events,
    stderr: () => err,
    waitFor,
    of: (kind) => events.filter((e) => e.event === kind),
    proc,
    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (!exited) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const r = await proc;
      clearTimeout(t);
      rl.close();
      return r.exitCode;
    },
  };
}

/**
 * Files in <site>/.arrived/ that hold bytes. (The receiver keeps a few empty temp files ready
 * there; an empty file holds nothing received.)
 */
export async function arrivedWithBytes(site: string): Promise<string[]> {
  const dir = join(site, '.arrived');
  const out: string[] = [];
  for (const name of await readdir(dir)) {
    if ((await stat(join(dir, name))).size > 0) out.push(name);
  }
  return out;
}
