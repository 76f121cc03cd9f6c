/**
 * --restart CMD: run a command when the receiver does not answer. The command is split into
 * words here (quotes and backslashes understood, nothing expanded) and run without a shell.
 * A state file keeps restarts at least `minIntervalMs` apart, so a receiver that cannot
 * start is not restarted every minute by cron.
 */
import { readFile } from 'node:fs/promises';
import { writeJsonAtomic } from '../site/atomic.js';

export function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < cmd.length && '"\\$`'.includes(cmd[i + 1]!)) cur += cmd[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < cmd.length) {
      cur += cmd[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unbalanced ${quote} in: ${cmd}`);
  if (inWord) out.push(cur);
  return out;
}

export interface RestartOutcome {
  ran: boolean;
  /** Why it did not run (too soon after the last one). */
  skipped?: string;
  exitCode?: number;
  output?: string;
  lastRestart?: string;
}

export async function restartReceiver(argv: string[], opts: { stateFile?: string; minIntervalMs: number; timeoutMs: number }): Promise<RestartOutcome> {
  const now = Date.now();
  let last: string | undefined;
  if (opts.stateFile) {
    try {
      last = (JSON.parse(await readFile(opts.stateFile, 'utf8')) as { lastRestart?: string }).lastRestart;
    } catch {
      // first time
    }
    if (last && now - Date.parse(last) < opts.minIntervalMs) {
      return { ran: false, skipped: `last restart at ${last}, less than ${Math.round(opts.minIntervalMs / 60_000)} min ago`, lastRestart: last };
    }
    await writeJsonAtomic(opts.stateFile, { lastRestart: new Date(now).toISOString() });
  }
  // Loaded when needed: execa is about 100 files, most runs never start a program.
  const { execa } = await import('execa');
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: opts.timeoutMs, all: true, stdin: 'ignore' });
  return {
    ran: true,
    exitCode: r.exitCode ?? (r.timedOut ? 124 : 1),
    output: String(r.all ?? '').slice(-2000),
    lastRestart: new Date(now).toISOString(),
  };
}
