import { PassThrough, type Readable } from 'node:stream';
import { createProgram, parseIntOption } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { loadConfig, optString } from '../lib/config/config.js';
import { EXIT, UsageError, errorMessage } from '../lib/errors.js';
import { EventWriter, readInput } from '../lib/events/index.js';
import { ensureSite } from '../lib/site/index.js';
import {
  Classifier,
  Pool,
  RuleFileError,
  UNKNOWN_CONNECTION,
  defaultRulesPath,
  jobFromInput,
  loadRules,
  openFifoForReading,
  walkFiles,
  type RuleSet,
} from '../lib/classify/index.js';

const HELP = `
Input (one per line on stdin, or from --pipe FIFO):
  {"event":"stored","path":...}     events from fiona-receive
  /abs/path/to/file.dcm             plain paths
  CALLING,CALLED,IP,DIR,FILE        FIONA's pipe lines
With FILE or DIR arguments, classifies those instead (backfill) and exits.

For each instance: links raw/<Study>/<Series>/<SOP> -> the file and
participants/<PatientID>/<StudyDate>_<StudyTime> -> raw/<Study>, updates
raw/<Study>/<Series>.json (ClassifyType from the rules) and writes a
"classified" event. Unreadable or non-DICOM files of the site are moved to
quarantine/ (a "quarantined" event); files outside the site are left in place.
SIGHUP reloads the rule file; SIGTERM or SIGINT finish what is in flight.

Examples:
  fiona-receive --site /data/site | fiona-classify --site /data/site
  fiona-classify --site /data/site /data/site/archive     # backfill
  fiona-classify --rules my-rules.json --check            # check a rule file
`;

interface Options {
  site?: string;
  rules?: string;
  pipe?: string;
  pass?: boolean;
  check?: boolean;
  jobs: number;
  quiet?: boolean;
  config?: string;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-classify', "Classify DICOM instances into the site's series layout with FIONA's rules", HELP)
    .option('--site <dir>', 'the site folder (config: site or DATADIR)')
    .option('--rules <file>', `classifyRules.json (config: classifyRules; default: ${defaultRulesPath()})`)
    .option('--pipe <fifo>', 'read input lines from this named pipe (created if missing) instead of stdin')
    .option('--pass', 'copy input events of other kinds to stdout')
    .option('--check', 'check the rule file, print its warnings, and exit')
    .option('--jobs <n>', 'files read at once', parseIntOption('--jobs', 1, 64), 8)
    .option('-q, --quiet', 'no per-file messages on stderr, only warnings and errors')
    .argument('[paths...]', 'files or folders to classify (backfill)');
  program.parse(argv);
  const opts = program.opts<Options>();
  const paths = program.args;
  const log = createLogger('fiona-classify', opts.quiet);
  const config = loadConfig(opts.config);
  const rulesPath = opts.rules ?? optString(config.raw, 'classifyRules') ?? defaultRulesPath();

  const rules = await readRules(rulesPath);
  for (const w of rules.warnings) log.warn(`${rulesPath}: ${w}`);
  if (opts.check) {
    log.info(`${rulesPath}: ${rules.entries.length} entries, ${rules.types.length} types: ${rules.types.join(', ')}`);
    return EXIT.OK;
  }
  const siteDir = opts.site ?? config.site;
  if (!siteDir) throw new UsageError('no site folder: give --site DIR (or "site" in the config)');
  if (opts.pipe && paths.length > 0) throw new UsageError('give either --pipe or paths to backfill, not both');
  const layout = await ensureSite(siteDir);

  const out = new EventWriter(process.stdout, () => log.warn('stdout closed; events are no longer written'));
  // A stream writes each series JSON within 100 ms of an instance (the next tool waits on the
  // events); a backfill has no one waiting and writes less often (every 1 s or 4096 instances).
  const batching = paths.length > 0 ? { flushDelayMs: 1000, flushBatch: 4096 } : { flushDelayMs: 100, flushBatch: 256 };
  const classifier = new Classifier({ layout, rules, emit: (e) => out.write(e), warn: (m) => log.warn(m), ...batching });
  const pool = new Pool(opts.jobs);
  let input: Readable | undefined;
  // Lines are read through a pass-through so a stop can end the stream cleanly (readline
  // waits for 'end'; destroying stdin or a FIFO socket would leave it waiting forever).
  const lines = new PassThrough();
  let stopping = false;
  const onHup = (): void => {
    readRules(rulesPath).then(
      (r) => {
        classifier.setRules(r);
        log.info(`rules reloaded from ${rulesPath}: ${r.entries.length} entries`);
      },
      (err) => log.error(`rules not reloaded, keeping the old ones: ${errorMessage(err)}`),
    );
  };
  const onStop = (): void => {
    stopping = true;
    input?.unpipe(lines);
    lines.end();
  };
  process.on('SIGHUP', onHup);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  try {
    if (paths.length > 0) {
      const skip = new Set([layout.raw, layout.participants, layout.quarantine, layout.state, layout.studies, layout.arrived]);
      for await (const file of walkFiles(paths, skip)) {
        if (stopping) break;
        await pool.add(() => classifier.process({ path: file, conn: UNKNOWN_CONNECTION }));
      }
    } else {
      input = opts.pipe ? await openFifoForReading(opts.pipe) : process.stdin;
      if (opts.pipe) log.info(`reading ${opts.pipe}`);
      if (!stopping) input.pipe(lines);
      for await (const item of readInput(lines)) {
        const outcome = jobFromInput(item);
        if (outcome.kind === 'warn') log.warn(outcome.message);
        else if (outcome.kind === 'other') {
          if (opts.pass) out.write(outcome.event);
        } else await pool.add(() => classifier.process(outcome.job));
      }
    }
    await pool.drain();
    await classifier.flushAll();
  } finally {
    process.off('SIGHUP', onHup);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    input?.destroy();
  }
  const s = classifier.stats;
  log.info(`classified ${s.classified}, quarantined ${s.quarantined}, failed ${s.failed}`);
  return s.quarantined + s.failed > 0 ? EXIT.ITEMS_FAILED : EXIT.OK;
}

async function readRules(path: string): Promise<RuleSet> {
  try {
    return await loadRules(path);
  } catch (err) {
    if (err instanceof RuleFileError) throw new UsageError(err.message);
    throw err;
  }
}
