import { execa, type ResultPromise } from 'execa';
import { mkdir, copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { binPath, runTool } from '../helpers/cli.js';

/** Synthetic studies from fiona-synth (the real tool, as users run it). */
export async function synth(out: string, args: string[]): Promise<string[]> {
  const r = await runTool('fiona-synth', ['--out', out, '--paths', '--quiet', '--no-fsync', ...args]);
  if (r.exitCode !== 0) throw new Error(`fiona-synth failed: ${String(r.stderr)}`);
  return String(r.stdout).split('\n').filter(Boolean).sort();
}

/** Copy synth files into a site's archive/<Study>/<Series>/<SOP>.dcm, as the receiver would store them. */
export async function intoArchive(files: string[], site: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    const parts = f.split('/');
    const [study, series, sop] = parts.slice(-3) as [string, string, string];
    const dir = join(site, 'archive', study, series);
    await mkdir(dir, { recursive: true });
    await copyFile(f, join(dir, sop));
    out.push(join(dir, sop));
  }
  return out;
}

export async function listJson(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
}

/** A long-running fiona tool with its stdout read line by line as events. */
export interface Running {
  proc: ResultPromise;
  events: Array<Record<string, unknown>>;
  stderr: () => string;
  write(line: string): void;
  waitFor(pred: (events: Array<Record<string, unknown>>) => boolean, timeoutMs?: number): Promise<void>;
  end(): Promise<void>;
}

export function startTool(
  tool: string,
  args: string[],
  env: Record<string, string> = {},
  onLine?: (line: string) => void,
): Running {
  const proc = execa(binPath(tool), args, { reject: false, stdin: 'pipe', env: { NO_COLOR: '1', ...env }, buffer: { stdout: false, stderr: true } });
  const events: Array<Record<string, unknown>> = [];
  let err = '';
  // A test may kill the tool and write on: a broken pipe is expected then, not a failure.
  proc.stdin?.on('error', () => undefined);
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (l) => {
    if (!l.trim()) return;
    events.push(JSON.parse(l) as Record<string, unknown>);
    onLine?.(l);
  });
  return {
    proc,
    events,
    stderr: () => err,
    write: (line) => {
      if (proc.stdin?.writable) proc.stdin.write(`${line}\n`);
    },
    async waitFor(pred, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      while (!pred(events)) {
        if (Date.now() > until) throw new Error(`timed out; events so far: ${JSON.stringify(events).slice(0, 2000)}\nstderr: ${err}`);
        if (proc.exitCode !== null && proc.exitCode !== undefined) throw new Error(`${tool} exited with ${proc.exitCode}: ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async end() {
      proc.stdin!.end();
      await proc;
    },
  };
}
