import type { ChalkInstance } from 'chalk';

/**
 * Human output goes to stderr, machine output (NDJSON events, --json reports) to stdout.
 * Colour and progress only when stderr is a terminal and NO_COLOR is unset.
 */
export function colourEnabled(stream: NodeJS.WriteStream = process.stderr): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR === '0') return false;
  return Boolean(stream.isTTY);
}

/** The styles the tools use; plain text when colour is off. */
type Style = (text: string) => string;
export interface Colour {
  dim: Style;
  yellow: Style;
  red: Style;
}

const plain: Colour = { dim: (t) => t, yellow: (t) => t, red: (t) => t };

// chalk is loaded only when stderr is a terminal that takes colour: in pipelines and cron
// (nearly every run) it would be ~8 ms of start-up for nothing.
const chalk: ChalkInstance | undefined = colourEnabled() ? (await import('chalk')).default : undefined;

export function makeColour(stream: NodeJS.WriteStream = process.stderr): Colour {
  return chalk && colourEnabled(stream) ? chalk : plain;
}

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A logger for a command: lines prefixed with the tool name on stderr. */
export function createLogger(tool: string, quiet = false): Logger {
  const c = makeColour();
  const write = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  return {
    info: (m) => {
      if (!quiet) write(`${c.dim(tool + ':')} ${m}`);
    },
    warn: (m) => write(`${c.yellow(tool + ': warning:')} ${m}`),
    error: (m) => write(`${c.red(tool + ': error:')} ${m}`),
  };
}

export interface Progress {
  tick(n?: number): void;
  done(): void;
}

/** A one-line progress bar on stderr; silent unless stderr is a TTY. */
export function createProgress(label: string, total?: number): Progress {
  if (!process.stderr.isTTY || !colourEnabled()) return { tick: () => {}, done: () => {} };
  let count = 0;
  let last = 0;
  const draw = (): void => {
    const width = 30;
    const bar =
      total && total > 0
        ? '#'.repeat(Math.round((count / total) * width)).padEnd(width, '.')
        : '';
    const of = total ? `/${total}` : '';
    process.stderr.write(`\r${label} ${bar} ${count}${of}`);
  };
  return {
    tick(n = 1) {
      count += n;
      const now = Date.now();
      if (now - last > 100) {
        last = now;
        draw();
      }
    },
    done() {
      draw();
      process.stderr.write('\n');
    },
  };
}
