import { Command, CommanderError, Option } from 'commander';
import { EXIT, FionaError, errorMessage } from '../errors.js';
import { createLogger } from './output.js';
import { fionaVersion } from '../version.js';

const EXIT_CODES_HELP = `
Exit codes:
  0  ok
  1  some items failed (the rest were done)
  2  usage or config error
  3  a peer or resource unavailable`;

/**
 * A commander program with the options and help every fiona command shares:
 * --version, --config FILE (also FIONA_CONFIG), and the exit code table. A command whose
 * exit codes are not fiona's (fiona-heartbeat's are Nagios's) passes its own table, or ''
 * when extraHelp already explains them.
 */
export function createProgram(name: string, description: string, extraHelp = '', exitCodesHelp = EXIT_CODES_HELP): Command {
  const program = new Command(name);
  program
    .description(description)
    .version(fionaVersion(), '-V, --version')
    .option('--config <file>', 'config file (default: $FIONA_CONFIG, then /etc/fiona/config.json)')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .addHelpText('after', `${extraHelp}${exitCodesHelp}\n\nSee man ${name}(1).`)
    .exitOverride();
  return program;
}

/**
 * Run a command's main function and turn what it throws into the documented exit code.
 * A command's main returns its exit code (0 or 1); errors carry 2 or 3.
 */
export async function runMain(
  name: string,
  main: (argv: string[]) => Promise<number>,
  argv: string[] = process.argv,
): Promise<void> {
  const log = createLogger(name);
  // `fiona-x --help | head` closes stdout early: that is the reader's choice, not a crash.
  // Tools that stream events also watch stdout themselves (EventWriter).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') log.error(`stdout: ${err.message}`);
  });
  let code: number;
  try {
    code = await main(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      code = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.OK : EXIT.USAGE;
      if (err.exitCode === 0) code = EXIT.OK;
    } else if (err instanceof FionaError) {
      log.error(err.message);
      code = err.exitCode;
    } else {
      log.error(errorMessage(err));
      if (process.env.FIONA_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
      code = EXIT.ITEMS_FAILED;
    }
  }
  process.exitCode = code;
}

/** Collect a repeatable option into an array (commander's reducer). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parse an integer option, naming the option in the error. */
export function parseIntOption(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value)) throw new FionaError(`${name}: not an integer: ${value}`, EXIT.USAGE);
    const n = Number(value);
    if (n < min || n > max) throw new FionaError(`${name}: ${n} is outside ${min}..${max}`, EXIT.USAGE);
    return n;
  };
}

/** Parse a duration like 15s, 2m, 1h, 30d, or plain seconds. Returns milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new FionaError(`not a duration: ${value} (use e.g. 500ms, 15s, 2m, 1h, 30d)`, EXIT.USAGE);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1000;
  return Math.round(n * factor);
}

/**
 * A duration option (parsed by parseDuration into milliseconds) whose default shows in
 * --help as written (e.g. "5s"), not in milliseconds.
 */
export function durationOption(flags: string, description: string, def?: string): Option {
  const o = new Option(flags, description).argParser(parseDuration);
  return def === undefined ? o : o.default(parseDuration(def), def);
}
