import { createProgram, parseDuration } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { loadConfig } from '../lib/config/config.js';
import { EXIT, UnavailableError, UsageError } from '../lib/errors.js';
import { EventWriter, readInput } from '../lib/events/index.js';
import { ensureSite, readLockInfo, tryLock } from '../lib/site/index.js';
import { StudyDetector, arrivalFromInput, type ExecSpec } from '../lib/study/index.js';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';

const HELP = `
Reads "classified" (or "stored") events on stdin. When a study has had no new
instance for the quiet period, writes studies/<Study>.json (series, counts,
types, first and last arrival) and a "study-complete" event. Instances that
come after that give a "study-updated" event saying what changed.

--exec CMD ARGS... must come last: everything after it is the command and its
arguments; the manifest path is appended, and FIONA_STUDY, FIONA_MANIFEST,
FIONA_EVENT, FIONA_SITE are set. No shell is involved.

State lives in <site>/state/detect-study.json and the manifests; after a
restart (also after kill -9) no complete study is lost or reported twice.

Examples:
  fiona-receive --site S | fiona-classify --site S | fiona-detect-study --site S
  fiona-detect-study --site S --quiet 30s --exec /usr/local/bin/on-study
  fiona-detect-study --site S --scan        # cron: report what is complete, exit
`;

interface Options {
  site?: string;
  quiet: string;
  scan?: boolean;
  pass?: boolean;
  execUpdates?: boolean;
  config?: string;
}

/** Split off `--exec CMD ARGS...` (it takes the rest of the command line). */
export function splitExec(argv: string[]): { argv: string[]; exec?: string[] } {
  const i = argv.indexOf('--exec', 2);
  if (i < 0) return { argv };
  const exec = argv.slice(i + 1);
  if (exec.length === 0) throw new UsageError('--exec needs a command');
  return { argv: argv.slice(0, i), exec };
}

export async function main(rawArgv: string[]): Promise<number> {
  const { argv, exec } = splitExec(rawArgv);
  const program = createProgram('fiona-detect-study', 'Decide when a study is complete (no new instance for a quiet period) and report it', HELP)
    .option('--site <dir>', 'the site folder (config: site or DATADIR)')
    .option('--quiet <duration>', 'quiet period after the last instance (e.g. 15s, 2m)', '15s')
    .option('--scan', 'cron mode: look at the site, report what is complete, and exit')
    .option('--exec <cmd...>', 'run CMD ARGS... per reported study, manifest path appended (must come last)')
    .option('--exec-updates', 'also run the --exec command for study-updated')
    .option('--pass', 'copy input events of other kinds to stdout')
    .usage('[options] [--exec CMD ARGS...]');
  program.parse(argv);
  const opts = program.opts<Options>();
  if (program.args.length > 0) throw new UsageError(`unexpected argument: ${program.args[0]}`);
  const log = createLogger('fiona-detect-study');
  const quietMs = parseDuration(opts.quiet);
  const config = loadConfig(opts.config);
  const siteDir = opts.site ?? config.site;
  if (!siteDir) throw new UsageError('no site folder: give --site DIR (or "site" in the config)');
  const layout = await ensureSite(siteDir);
  const execSpec: ExecSpec | undefined = exec ? { command: exec[0]!, args: exec.slice(1), updates: Boolean(opts.execUpdates) } : undefined;

  const lockFile = join(layout.state, 'detect-study.lock');
  const lock = await tryLock(lockFile);
  if (!lock) {
    const holder = await readLockInfo(lockFile);
    const who = holder ? `pid ${holder.pid} on ${holder.host}` : 'another process';
    if (opts.scan) {
      log.info(`${who} is watching this site (${lockFile}); nothing to do`);
      return EXIT.OK;
    }
    throw new UnavailableError(`fiona-detect-study is already running for ${layout.root} (${who})`);
  }
  const out = new EventWriter(process.stdout, () => log.warn('stdout closed; events are no longer written'));
  const detector = new StudyDetector({ layout, quietMs, emit: (e) => out.write(e), warn: (m) => log.warn(m), exec: execSpec });
  let stopping = false;
  // Read through a pass-through so SIGTERM can end the line stream (readline waits for 'end').
  const lines = new PassThrough();
  const onStop = (): void => {
    stopping = true;
    detector.stop();
    process.stdin.unpipe(lines);
    lines.end();
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  try {
    await detector.start();
    if (opts.scan) {
      const n = await detector.scanOnce();
      const open = detector.openStudies.length;
      log.info(`${n} ${n === 1 ? 'study' : 'studies'} reported${open ? `, ${open} still receiving` : ''}`);
    } else {
      if (!stopping) process.stdin.pipe(lines);
      for await (const item of readInput(lines)) {
        const o = arrivalFromInput(item);
        if (o.kind === 'arrival') detector.arrival(o.study, o.time);
        else if (o.kind === 'warn') log.warn(o.message);
        else if (opts.pass) out.write(o.event);
      }
      if (!stopping) await detector.drain();
    }
  } finally {
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.stdin.destroy();
    await detector.close();
    await lock.release();
  }
  return detector.stats.execFailed > 0 ? EXIT.ITEMS_FAILED : EXIT.OK;
}
