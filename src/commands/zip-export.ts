import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger, createProgress, type Progress } from '../lib/cli/output.js';
import { collect, createProgram, parseIntOption } from '../lib/cli/program.js';
import { isObject, loadConfig, optInt, optString } from '../lib/config/config.js';
import { UnavailableError, UsageError } from '../lib/errors.js';
import { EventWriter, makeEvent } from '../lib/events/index.js';
import { makeAnonymizer, type DeidSettings } from '../lib/export/deid.js';
import { ExportQueue } from '../lib/export/queue/state.js';
import { newToken, processQueue } from '../lib/export/queue/process.js';
import { ExportError, runExport } from '../lib/export/run.js';
import { rulesWithRoutedPseudonym } from '../lib/export/participant.js';
import { isValidUid } from '../lib/dicom/uid.js';
import type { ExportSource } from '../lib/export/source.js';
import type { MailSettings } from '../lib/export/mail.js';
import { pacsSource, parsePacs, type PacsOptions } from '../lib/export/pacs.js';

const HELP = `
Modes:
  one-off   --study UID --site DIR   the study from the site archive (archive/<UID>/)
            --folder DIR             every DICOM file under a folder
            --study UID --from PACS  pulled from a PACS first (C-MOVE or C-GET, see fiona-pull)
  queue     --jobs FILE              FIONA's prepared_downloads_list.jobs (JSON lines: project,
                                     patientid, studyinstanceuid, accessionnumber, exportType,
                                     event, email, password, ...); --once takes one job and exits

Each export: de-identified by fiona-anonymize's library (the project's rules plus the same
options as fiona-anonymize), laid out as <Project>/<PatientID>/<StudyDate>_<StudyTime>[_<event>]/
<NNNN>_<SeriesDescription>/, a fiona.txt manifest, with --nifti a nifti/ folder (dcm2niix),
zipped to <out>/<project>_<token>.zip.part, read back and checked, renamed to .zip, with
<name>.zip.md5 (md5sum -b). Names carry no identifying value.

Queue state (results.jsonl, per-job progress, locks, temp folders) lives in --state
(default <site>/state/export, else <jobs file>.state); the jobs file is never rewritten.

Output: NDJSON events on stdout (export-started, exported, mailed, export-done,
export-retry, export-failed, export-summary); logs and a progress bar on stderr.

Examples:
  fiona-zip-export --project DEMO --secret-file demo.key --study 1.2.3 --site /data/site --out /export
  fiona-zip-export --jobs /var/www/.../prepared_downloads_list.jobs --site /data/site \\
      --out /export2/Export/files --smtp smtp://mail.example.org:25 --mail-from fiona@example.org \\
      --link-base https://fiona.example.org/download/ --once
  fiona-zip-export --folder ./study --project DEMO --secret-file demo.key --nifti \\
      --password-file pw.txt --out /tmp/out`;

interface Opts {
  out?: string;
  jobs?: string;
  once?: boolean;
  state?: string;
  results?: string;
  maxAttempts?: number;
  study?: string;
  site?: string;
  folder?: string;
  project?: string;
  secretFile?: string;
  patientId?: string;
  patientName?: string;
  option: string[];
  dateShift?: string;
  set: string[];
  event?: string;
  nifti?: boolean;
  level?: number;
  passwordFile?: string;
  from?: string;
  aet?: string;
  port?: number;
  method?: string;
  smtp?: string;
  mailFrom?: string;
  linkBase?: string;
  measurements?: string;
  dcm2niix?: string;
  json?: boolean;
  quiet?: boolean;
  config?: string;
}

function readPassword(file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--password-file ${file}: ${(err as Error).message}`);
  }
  const pw = text.replace(/[\r\n]+$/, '');
  if (pw.length < 8) throw new UsageError(`--password-file ${file}: the password is shorter than 8 characters`);
  return Buffer.from(pw, 'utf8');
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-zip-export', 'Export de-identified studies as verified ZIP archives (one-off or from FIONA\'s job queue).', HELP)
    .option('--out <dir>', 'where archives are published (config export.out)')
    .option('--jobs <file>', 'queue mode: FIONA jobs file (JSON lines) (config export.jobs)')
    .option('--once', 'queue mode: process one job, then exit')
    .option('--state <dir>', 'queue mode: state folder (default <site>/state/export or <jobs>.state)')
    .option('--results <file>', 'queue mode: results file (default <state>/results.jsonl)')
    .option('--max-attempts <n>', 'queue mode: attempts per job before it fails (default 3)', parseIntOption('--max-attempts', 1, 1000))
    .option('--study <uid>', 'one-off: Study Instance UID (with --site or --from)')
    .option('--site <dir>', 'the site whose archive holds the studies (config site/DATADIR)')
    .option('--folder <dir>', 'one-off: export every DICOM file under this folder')
    .option('--project <name|file>', 'project rules, as fiona-anonymize finds them (one-off: required)')
    .option('--secret-file <file>', 'the project secret for keyed pseudonyms (as fiona-anonymize)')
    .option('--patient-id <id>', 'pseudonym for PatientID (queue: a job\'s patientid wins; from a site, default: the pseudonym fiona-route gave the study)')
    .option('--patient-name <name>', 'pseudonym for PatientName (default: the patient id)')
    .option('--option <name>', 'PS3.15 profile option, repeatable (as fiona-anonymize)', collect, [])
    .option('--date-shift <days|auto>', 'date shift (as fiona-anonymize)')
    .option('--set <tag=value>', 'tag override, repeatable (as fiona-anonymize)', collect, [])
    .option('--event <name>', 'one-off: imaging event, appended to the study folder')
    .option('--nifti', 'also convert each series with dcm2niix into nifti/')
    .option('--level <n>', 'ZIP compression: 0 store, 1-9 deflate (default 1)', parseIntOption('--level', 0, 9))
    .option('--password-file <file>', 'AES-256 encrypt the archive with the password in this file')
    .option('--from <AET@HOST:PORT>', 'pull studies from this PACS instead of the site (config export.pacs)')
    .option('--aet <aet>', 'our AE title towards the PACS (default: config aet, FIONA)')
    .option('--port <n>', 'C-MOVE: the port we receive on, which the PACS knows for --aet (config export.port)', parseIntOption('--port', 1, 65535))
    .option('--method <move|get>', 'retrieve with C-MOVE (default) or C-GET')
    .option('--smtp <url>', 'SMTP server for the mails (smtp://host:port) (config smtp.url)')
    .option('--mail-from <address>', 'sender of the mails (config smtp.from)')
    .option('--link-base <url>', 'download links are <url><archive name> (config export.linkBase)')
    .option('--measurements <file>', 'execMeasurements.json to update (default <state>/execMeasurements.json)')
    .option('--dcm2niix <path>', 'the dcm2niix program (default: dcm2niix on PATH)')
    .option('--json', 'one-off: print a JSON report on stdout instead of events')
    .option('--quiet', 'no log lines on stderr (errors still)');
  program.parse(argv);
  const o = program.opts<Opts>();
  const log = createLogger('fiona-zip-export', o.quiet);
  const config = loadConfig(o.config);
  const exp = isObject(config.raw.export) ? config.raw.export : {};
  const smtp = isObject(config.raw.smtp) ? config.raw.smtp : {};
  const version = program.version() ?? '0';

  const out = o.out ?? optString(exp, 'out', 'export.out');
  if (!out) throw new UsageError('--out is required (or export.out in the config)');
  const jobs = o.jobs ?? (o.study || o.folder ? undefined : optString(exp, 'jobs', 'export.jobs'));
  const site = o.site ?? config.site;
  const level = o.level ?? optInt(exp, 'level', 0, 9, 'export.level') ?? 1;
  const passwordFile = o.passwordFile ?? optString(exp, 'passwordFile', 'export.passwordFile');
  const password = passwordFile ? readPassword(passwordFile) : undefined;
  const fromText = o.from ?? optString(exp, 'pacs', 'export.pacs');
  const pacs: PacsOptions | undefined = fromText
    ? {
        ...parsePacs(fromText),
        callingAet: o.aet ?? config.aet,
        receivePort: o.port ?? optInt(exp, 'port', 0, 65535, 'export.port') ?? 0,
        method: o.method === undefined ? 'move' : o.method === 'move' || o.method === 'get' ? o.method : (() => {
          throw new UsageError(`--method must be move or get, got ${o.method}`);
        })(),
      }
    : undefined;
  // Where studies come from: an explicit --from wins over everything, an explicit --site over
  // a PACS from the config (queue and one-off alike).
  const fromPacs = pacs !== undefined && (o.from !== undefined || o.site === undefined);
  const deid: Omit<DeidSettings, 'project'> = {
    secretFile: o.secretFile,
    patientId: o.patientId,
    patientName: o.patientName,
    options: o.option,
    dateShift: o.dateShift,
    set: o.set,
  };
  try {
    await mkdir(out, { recursive: true });
  } catch (err) {
    throw new UnavailableError(`cannot create --out ${out}: ${(err as Error).message}`);
  }
  const events = new EventWriter(process.stdout);
  let bar: Progress | undefined;
  let barStage = '';
  const onProgress = (stage: string, done: number, total?: number): void => {
    if (stage !== barStage) {
      bar?.done();
      bar = createProgress(stage, total);
      barStage = stage;
    }
    bar?.tick(1);
    if (done === total) {
      bar?.done();
      bar = undefined;
      barStage = '';
    }
  };

  if (jobs) {
    if (o.study || o.folder) throw new UsageError('--jobs (queue mode) and --study/--folder (one-off) exclude each other');
    const stateDir = o.state ?? optString(exp, 'state', 'export.state') ?? (site ? join(resolve(site), 'state', 'export') : `${resolve(jobs)}.state`);
    const queue = new ExportQueue({
      jobsFile: resolve(jobs),
      stateDir,
      resultsFile: o.results,
      maxAttempts: o.maxAttempts ?? optInt(exp, 'maxAttempts', 1, 1000, 'export.maxAttempts') ?? 3,
    });
    const smtpUrl = o.smtp ?? optString(smtp, 'url', 'smtp.url');
    const mail: MailSettings | undefined = smtpUrl
      ? { url: smtpUrl, from: o.mailFrom ?? optString(smtp, 'from', 'smtp.from') ?? 'fiona@localhost' }
      : undefined;
    if (!existsSync(jobs)) log.info(`no jobs file yet at ${jobs}: nothing to do`);
    const summary = await processQueue({
      queue,
      once: o.once === true,
      outDir: resolve(out),
      level,
      password,
      nifti: o.nifti === true,
      deid,
      configRaw: config.raw,
      sourceFor: (job) => {
        if (pacs && fromPacs) return pacsSource(pacs, { studyUid: job.studyinstanceuid, accession: job.accessionnumber }, version);
        if (!site) throw new ExportError('no source: give --site DIR (or --from PACS)', true);
        return { kind: 'site', site };
      },
      mail,
      linkBase: o.linkBase ?? optString(exp, 'linkBase', 'export.linkBase'),
      measurementsFile: o.measurements ?? optString(exp, 'measurements', 'export.measurements') ?? join(stateDir, 'execMeasurements.json'),
      fionaVersion: version,
      dcm2niix: o.dcm2niix,
      emit: (e) => events.write(e),
      log: (m) => log.info(m),
      onProgress,
    });
    events.write(makeEvent('export-summary', { ...summary }));
    log.info(`${summary.done} done, ${summary.failed} failed, ${summary.retry} to retry, ${summary.busy} held by other runs`);
    return summary.failed > 0 || summary.retry > 0 ? 1 : 0;
  }

  // One-off.
  if (!o.project) throw new UsageError('--project is required for a one-off export');
  if (o.study && !isValidUid(o.study)) throw new UsageError(`--study: not a valid UID: ${o.study}`);
  let source: ExportSource;
  if (o.folder) {
    if (o.study) throw new UsageError('--folder and --study exclude each other');
    source = { kind: 'folder', dir: resolve(o.folder) };
  } else if (o.study && pacs && fromPacs) {
    source = pacsSource(pacs, { studyUid: o.study }, version);
  } else if (o.study) {
    if (!site) throw new UsageError('--study needs --site DIR (or --from PACS)');
    source = { kind: 'site', site };
  } else {
    throw new UsageError('say what to export: --jobs FILE, --study UID (with --site or --from), or --folder DIR');
  }
  const { rules, routed } = await rulesWithRoutedPseudonym({ ...deid, project: o.project }, config.raw, source.kind === 'site' ? source.site : undefined, o.study);
  if (routed !== undefined) log.info(`PatientID ${routed}: the pseudonym fiona-route gave this study in ${rules.name} (--patient-id to choose another)`);
  const ctx = makeAnonymizer(rules, { version });
  const token = newToken();
  const name = `${rules.name}_${token}`;
  const workDir = await mkdtemp(join(tmpdir(), 'fiona-export-'));
  try {
    const outcome = await runExport({
      project: rules.name,
      studyUid: o.study,
      exportType: o.nifti ? 'NIFTI' : 'DICOM',
      event: o.event,
      nifti: o.nifti === true,
      source,
      deid: ctx,
      outDir: resolve(out),
      name,
      level,
      password,
      workDir,
      fionaVersion: version,
      dcm2niix: o.dcm2niix,
      onProgress,
    });
    const report = {
      path: outcome.archive.path,
      md5: outcome.archive.md5,
      md5File: outcome.archive.md5Path,
      bytes: outcome.archive.bytes,
      entries: outcome.archive.entries,
      series: outcome.series.length,
      instances: outcome.instances,
      notReleased: outcome.notReleased,
      nifti: outcome.nifti?.map((r) => ({ series: r.series, status: r.status, reason: r.reason })),
      encrypted: password !== undefined,
      seconds: outcome.seconds,
      stages: outcome.stages,
    };
    if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else events.write(makeEvent('exported', report));
    log.info(`${outcome.archive.path}: ${outcome.instances} instances in ${outcome.series.length} series, ${(outcome.archive.bytes / 1e6).toFixed(1)} MB, ${outcome.seconds} s`);
    const held = outcome.notReleased.reduce((n, r) => n + r.count, 0);
    if (held > 0) log.warn(`${held} instance(s) not released (see fiona.txt in the archive)`);
    return held > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof ExportError) {
      events.write(makeEvent('export-failed', { reason: err.message }));
      if (/^disk full|^read-only|^permission/.test(err.message)) throw new UnavailableError(err.message);
      log.error(err.message);
      return 1;
    }
    throw err;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

