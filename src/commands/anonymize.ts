import { constants, statSync } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Option } from 'commander';
import { createLogger, createProgress } from '../lib/cli/output.js';
import { collect, createProgram, parseIntOption } from '../lib/cli/program.js';
import { loadConfig } from '../lib/config/index.js';
import { type BatchOutcome, runBatch } from '../lib/deid/batch.js';
import { type InputUnit, filesOf, stdinUnits } from '../lib/deid/inputs.js';
import { MappingRecorder } from '../lib/deid/mapping.js';
import { PROFILE_OPTIONS, PROFILES, optionCliName } from '../lib/deid/options.js';
import { tuneJitForBatch } from '../lib/deid/jit.js';
import { type StartedWorkers, createAnonymizerPool, defaultThreads, startWorkers } from '../lib/deid/pool.js';
import {
  type ProjectRules, defaultProjectRules, finishRules, loadProjectRules, parseDateShift, parseOptions, parseOverride, secretNeededFor, tagOf,
} from '../lib/deid/project.js';
import { RefusedError } from '../lib/deid/refused.js';
import { checkPseudonym, loadPseudonymTable } from '../lib/deid/pseudonyms.js';
import { loadSecret } from '../lib/deid/secret.js';
import { checkUidRoot } from '../lib/deid/uids.js';
import { ConfigError, EXIT, UnavailableError, UsageError } from '../lib/errors.js';
import { makeEvent } from '../lib/events/types.js';
import { EventWriter, corkPerTurn } from '../lib/events/writer.js';
import { siteLayout } from '../lib/site/layout.js';

const EXTRA_HELP = `
Profile: DICOM PS3.15 (2024b) Basic Application Level Confidentiality Profile, with options
(--option NAME, repeatable, or "options" in the project rules):
  ${PROFILE_OPTIONS.map(optionCliName).join('\n  ')}

Output: OUT/<Study>/<Series>/<Modality>.<SOP>.dcm, all UIDs replaced by keyed pseudonyms
(HMAC-SHA256 with the project's secret): the same input, project and secret give the same
output in any later run. An "anonymized" event per instance on stdout, then a summary.
Instances that cannot be released (unreadable, no SOP Instance UID, burned-in annotation,
patient not in the pseudonym table, leak check) are reported as "quarantined" (copied with
a reason file to --quarantine DIR, or <site>/quarantine/anonymize with --site); exit 1.

Input: files and folders as arguments, or on stdin: events (stored, classified,
study-complete), plain paths, FIONA pipe lines.

Examples:
  openssl rand -hex 32 > /etc/fiona/secrets/abcd.key; chmod 600 /etc/fiona/secrets/abcd.key
  fiona-anonymize --out /data/research --project abcd --mapping /data/abcd-mapping.json /data/site/archive/1.2.3
  fiona-anonymize --out out --secret-file abcd.key --option retain-longitudinal-modified-dates \\
      --patient-id ABCD_001 --patient-name ABCD_001 --set InstitutionName=ABCD study/
  fiona-detect-study --site /data/site | fiona-anonymize --site /data/site --project abcd --out /data/research`;

/** Files in flight with one anonymizing thread (the anonymizer's buffer pools keep as many). */
const IN_FLIGHT = 48;

/**
 * Input bytes in flight at most: 48 files of 130 KB, 32 of 1 MB (inputs up to 1 MiB are held
 * whole while in flight; larger ones stream). With 48 files of 983 KB the peak RSS was
 * 155 MB (188-195 MB before the buffer pools dropped buffers too small to serve again).
 */
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;

interface Opts {
  config?: string;
  out?: string;
  project?: string;
  profile?: string;
  option: string[];
  patientId?: string;
  patientName?: string;
  pseudonymTable?: string;
  secretFile?: string;
  dateShift?: string;
  uidRoot?: string;
  set: string[];
  keep: string[];
  remove: string[];
  mapping?: string;
  site?: string;
  quarantine?: string;
  threads?: number;
  fsync: boolean;
  ioThread: boolean;
  pass?: boolean;
  quiet?: boolean;
}

/** The project's rules with the command line on top (the command line wins). */
function buildRules(o: Opts, configRaw: Record<string, unknown>): ProjectRules {
  const rules = o.project ? loadProjectRules(o.project, configRaw) : defaultProjectRules('default');
  if (o.profile !== undefined && !(PROFILES as readonly string[]).includes(o.profile)) {
    throw new UsageError(`--profile: unknown profile ${JSON.stringify(o.profile)} (known: ${PROFILES.join(', ')})`);
  }
  try {
    for (const opt of parseOptions('--option', o.option)) rules.options.add(opt);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message.replace(/^config: /, ''));
    throw err;
  }
  if (o.patientId !== undefined) rules.patientId = checkPseudonym('--patient-id', o.patientId);
  if (o.patientName !== undefined) rules.patientName = checkPseudonym('--patient-name', o.patientName);
  if (o.pseudonymTable !== undefined) rules.pseudonymTable = resolve(o.pseudonymTable);
  if (o.secretFile !== undefined) rules.secretFile = resolve(o.secretFile);
  if (o.uidRoot !== undefined) rules.uidRoot = checkUidRoot(o.uidRoot);
  if (o.dateShift !== undefined) {
    rules.dateShift = parseDateShift('--date-shift', o.dateShift);
    // A date shift is what the modified-dates option means.
    if (!rules.options.has('retainLongitudinalFullDates')) rules.options.add('retainLongitudinalModifiedDates');
  }
  const overrides = o.set.map((s) => parseOverride(s, '--set'));
  const tags = new Set(overrides.map((s) => s.tag));
  rules.set = [...rules.set.filter((s) => !tags.has(s.tag)), ...overrides];
  rules.keep = [...rules.keep, ...o.keep.map((t) => tagOf('--keep', t))];
  rules.remove = [...rules.remove, ...o.remove.map((t) => tagOf('--remove', t))];
  rules.keep = rules.keep.filter((t) => !rules.remove.includes(t));
  return finishRules(rules);
}

async function checkWritable(dir: string, what: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    throw new UnavailableError(`${what} ${dir} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  tuneJitForBatch();
  const program = createProgram(
    'fiona-anonymize',
    'De-identify DICOM instances by the PS3.15 confidentiality profile and a project\'s rules, with keyed, repeatable pseudonyms.',
    EXTRA_HELP,
  )
    .argument('[input...]', 'DICOM files or folders (default: read events or paths from stdin)')
    .option('--out <dir>', 'output folder (required)')
    .option('--project <name|file>', 'project rules: a name (config "projects", $FIONA_PROJECTS_DIR, /etc/fiona/projects, rules/projects) or a .json file')
    .addOption(new Option('--profile <name>', 'de-identification profile').choices([...PROFILES]))
    .option('--option <name>', 'profile option (repeatable), e.g. retain-longitudinal-modified-dates', collect, [])
    .option('--patient-id <id>', 'pseudonym for PatientID (else the pseudonym table, else derived from the secret)')
    .option('--patient-name <name>', 'pseudonym for PatientName (default: the PatientID pseudonym)')
    .option('--pseudonym-table <file>', 'CSV (originalID,pseudonymID[,pseudonymName]) or JSON table of patient pseudonyms')
    .option('--secret-file <file>', 'the project\'s secret (at least 16 bytes; make one with openssl rand -hex 32)')
    .option('--date-shift <days|auto>', 'shift dates by DAYS (e.g. -42) or by a per-patient offset from the secret (auto); implies retain-longitudinal-modified-dates')
    .option('--uid-root <root>', 'new UIDs under this root instead of 2.25')
    .option('--set <tag=value>', 'set an attribute at top level after de-identification (keyword or gggg,eeee; repeatable)', collect, [])
    .option('--keep <tag>', 'keep this attribute (at any depth) whatever the profile says (repeatable)', collect, [])
    .option('--remove <tag>', 'remove this attribute (at any depth) (repeatable)', collect, [])
    .option('--mapping <file>', 'write FIONA\'s mapping.json (original -> new Study and Series UIDs), merged into an existing file')
    .option('--site <dir>', 'the site: CHECKBURNEDINFO classes from raw/, quarantine/anonymize, study-complete events')
    .option('--quarantine <dir>', 'copy instances that are not released here, with a reason file')
    .option('--threads <n>', 'anonymizing threads (default: one less than the cores, at least 1, at most 8); with 2 or more, worker threads each read, anonymize and write their files and this thread hands out paths', parseIntOption('--threads', 1, 64))
    .option('--no-fsync', 'do not fsync outputs (faster; a power cut may lose the last files written)')
    .option('--no-io-thread', 'with --threads 1: read the inputs and write the outputs in the anonymizing thread, not in a second thread (for a machine with no core to spare)')
    .option('--pass', 'pass events this tool does not handle through to stdout')
    .option('-q, --quiet', 'no summary line on stderr');
  program.parse(argv);
  const o = program.opts<Opts>();
  if (!o.out) throw new UsageError('--out DIR is required');
  const threads = o.threads ?? defaultThreads();
  // The worker threads start now: their start-up (a Node environment, the anonymizer's
  // modules) overlaps this thread's (config, rules, secret). One file named alone is done
  // here, with no worker to start.
  const inputs = program.args;
  const oneFile = isOneFile(inputs);
  const workers = threads >= 2 && !oneFile ? startWorkers(threads) : undefined;
  try {
    return await run(program.version(), o, inputs, workers, threads, oneFile);
  } finally {
    // Workers a failed start-up left unused (a usage error) must not keep the process alive.
    for (const w of workers?.workers ?? []) void w.terminate();
  }
}

/** True when the inputs are one regular file (not a folder, not stdin). */
function isOneFile(inputs: string[]): boolean {
  if (inputs.length !== 1) return false;
  try {
    return statSync(inputs[0]!).isFile();
  } catch {
    return false;
  }
}

async function run(version: string | undefined, o: Opts, inputs: string[], workers: StartedWorkers | undefined, requested: number, oneFile: boolean): Promise<number> {
  const config = loadConfig(o.config);
  const log = createLogger('fiona-anonymize', o.quiet);
  const site = o.site ?? config.site;
  const siteDir = site ? resolve(site) : undefined;
  const rules = buildRules(o, config.raw);

  const pseudonymTable = rules.pseudonymTable ? loadPseudonymTable(rules.pseudonymTable) : undefined;
  let secret: Uint8Array | undefined;
  if (rules.secretFile) {
    const s = loadSecret(rules.secretFile);
    if (s.worldReadable) log.warn(`secret file ${s.file} can be read by other users: chmod 600 it`);
    secret = s.bytes;
  } else {
    const need = secretNeededFor(rules, pseudonymTable !== undefined);
    if (need) throw new UsageError(`a secret is required (${need}): give --secret-file FILE or "secretFile" in the project rules (make one with: openssl rand -hex 32 > FILE; chmod 600 FILE)`);
  }

  const outDir = resolve(o.out!);
  await checkWritable(outDir, 'output folder');
  const quarantineDir = o.quarantine ? resolve(o.quarantine) : site ? join(siteLayout(site).quarantine, 'anonymize') : undefined;
  if (quarantineDir) await checkWritable(quarantineDir, 'quarantine folder');

  let pool;
  try {
    pool = await createAnonymizerPool(
      // One file is done here: no thread to start for it.
      { rules, secret, pseudonymTable, quarantineDir, site: siteDir, fsync: o.fsync, ioThread: o.ioThread && !oneFile ? undefined : false, version },
      workers ? requested : 1,
      (m) => log.warn(m),
      workers,
    );
  } catch (err) {
    if (err instanceof RefusedError) throw new UsageError(err.message);
    throw err;
  }

  const events = new EventWriter(process.stdout);
  const corkTurn = corkPerTurn(process.stdout);
  const mapping = o.mapping ? new MappingRecorder() : undefined;
  if (inputs.length === 0 && process.stdin.isTTY) throw new UsageError('no input: give files or folders, or pipe events or paths on stdin');
  const units: AsyncIterable<InputUnit> =
    inputs.length > 0
      ? (async function* () {
          for (const a of inputs) yield* filesOf(a);
        })()
      : stdinUnits(process.stdin, siteDir);
  const progress = createProgress('anonymize');
  const onOutcome = (r: BatchOutcome): void => {
    progress.tick();
    corkTurn.cork();
    if (r.status === 'anonymized') {
      events.write(makeEvent('anonymized', { source: r.source, path: r.path, study: r.study, series: r.series, sop: r.sop, project: rules.name }));
      for (const w of r.warnings) log.warn(`${r.source}: ${w}`);
    } else if (r.status === 'quarantined') {
      events.write(makeEvent('quarantined', { source: r.source, path: r.path ?? r.source, reason: r.reason, tool: 'fiona-anonymize' }));
      log.warn(`not released: ${r.source}: ${r.reason}`);
    } else {
      events.write(makeEvent('anonymize-failed', { source: r.source, reason: r.reason }));
      log.error(`${r.source}: ${r.reason}`);
    }
  };
  // SIGINT/SIGTERM: take no more inputs, finish what is in flight, write the mapping and the
  // summary. A second signal ends at once (no half file is ever under a final name).
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop.signal.aborted) {
      corkTurn.flush();
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    }
    log.warn(`${sig}: finishing the instances in flight, then stopping`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let summary;
  try {
    summary = await runBatch(units, {
      signal: stop.signal,
      anonymizer: pool,
      outDir,
      // Enough for the I/O thread to have outputs queued while this thread renders the next
      // ones (with 16 the two took turns, each idle while the other worked: 48 was faster
      // in 6 of 7 alternating rounds, see io-thread.ts), or for each worker to have its next
      // files at hand when it answers. Each file in flight holds its input and output
      // buffers (about 0.4 MB for a 256x256 image).
      inFlight: Math.max(IN_FLIGHT, pool.threads * 16),
      inFlightBytes: Math.max(IN_FLIGHT_BYTES, pool.threads * 16 * 1024 * 1024),
      mapping,
      onOutcome,
      onOther: (e) => {
        if (o.pass) events.write(e);
      },
      onInvalid: (u) => {
        log.warn(`ignored input ${JSON.stringify(u.text.slice(0, 200))}: ${u.reason}`);
      },
    });
  } finally {
    progress.done();
    await pool.close();
  }
  if (mapping && o.mapping) await mapping.save(resolve(o.mapping));
  const rate = summary.seconds > 0 ? summary.anonymized / summary.seconds : 0;
  events.write(
    makeEvent('anonymize-summary', {
      project: rules.name,
      anonymized: summary.anonymized,
      quarantined: summary.quarantined,
      failed: summary.failed,
      ignored: summary.invalid,
      seconds: Number(summary.seconds.toFixed(3)),
      filesPerSecond: Number(rate.toFixed(1)),
      ...(summary.interrupted ? { interrupted: true } : {}),
    }),
  );
  log.info(
    `${summary.anonymized} anonymized, ${summary.quarantined} quarantined, ${summary.failed} failed, ${summary.invalid} ignored in ${summary.seconds.toFixed(1)} s (${rate.toFixed(0)} files/s, ${pool.threads} thread${pool.threads === 1 ? '' : 's'})`,
  );
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // An open stdin (a pipe whose writer is still there) would keep the process alive.
  if (summary.interrupted) process.stdin.destroy();
  return summary.quarantined + summary.failed > 0 || summary.interrupted ? EXIT.ITEMS_FAILED : EXIT.OK;
}
