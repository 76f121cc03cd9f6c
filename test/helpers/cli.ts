import { execa, type Options, type Result } from 'execa';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Path of a fiona executable in bin/ (runs the built dist/, as users do). */
export function binPath(tool: string): string {
  return `${ROOT}bin/${tool}`;
}

/** Run a fiona tool to completion; never throws on a non-zero exit (tests assert the code). */
export async function runTool(tool: string, args: string[], opts: Options = {}): Promise<Result> {
  return execa(binPath(tool), args, { reject: false, env: { NO_COLOR: '1', ...opts.env }, ...opts }) as Promise<Result>;
}

/** Parse NDJSON stdout into event objects. */
export function parseEvents(stdout: unknown): Array<Record<string, unknown>> {
  return String(stdout ?? '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
