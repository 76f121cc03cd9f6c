import { resolve } from 'node:path';
import { createLogger, createProgress, type Progress } from '../lib/cli/output.js';
import { createProgram, parseDuration, parseIntOption } from '../lib/cli/program.js';
import { checkAet, isObject, loadConfig, optInt } from '../lib/config/config.js';
import { isValidUid } from '../lib/dicom/uid.js';
import { UnavailableError, UsageError } from '../lib/errors.js';
import { EventWriter, makeEvent } from '../lib/events/index.js';
import { parsePacs } from '../lib/export/pacs.js';
import { pull, PullError } from '../lib/pull/pull.js';

const HELP = `
Finds the study with C-FIND (by --study, --accession or --patient-id; a patient ID may
match several studies: all are pulled), then retrieves it:
  --method move (default)  C-MOVE to our AE title; fiona listens on --port for the C-STOREs
                           (the PACS must know our AE title at this host and port)
  --method get             C-GET: the C-STOREs come back on the same association
Instances land in the site folder --out as fiona-receive stores them:
  <out>/archive/<Study>/<Series>/<SOP>.dcm   bytes exactly as the PACS sent them,
behind a File Meta group; incomplete or unusable instances go to <out>/quarantine/.

Output: NDJSON on stdout: "found", "pull-started", a "stored" event per instance,
"pulled" per study (completed/failed/warning counts from the PACS and what was stored),
then "pull-summary" (or --json: one report). Exit 1 when an instance failed, 3 when the
PACS cannot be reached or refuses, 2 for bad options or a study the PACS does not have.

Examples:
  fiona-pull --from PACS@pacs.example.org:104 --aet FIONA --port 11113 --study 1.2.3.4 --out /data/pulled
  fiona-pull --from PACS@10.0.0.5:104 --method get --accession A123456 --out ./study
  fiona-pull --from ORTHANC@127.0.0.1:4242 --patient-id 0123456 --method get --out ./p --json`;

interface Opts {
  from?: string;
  study?: string;
  accession?: string;
  patientId?: string;
  out?: string;
  aet?: string;
  destAet?: string;
  port?: number;
  method: string;
  listen?: string;
  timeout?: number;
  fsync: boolean;
  json?: boolean;
  quiet?: boolean;
  config?: string;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-pull', 'Retrieve a study from a PACS (C-FIND, then C-MOVE or C-GET) into a site, byte for byte.', HELP)
    .option('--from <AET@HOST:PORT>', 'the PACS (config pull.pacs)')
    .option('--study <uid>', 'Study Instance UID')
    .option('--accession <number>', 'find the study by accession number')
    .option('--patient-id <id>', 'find the studies of this patient ID')
    .option('--out <dir>', 'site folder the instances land in (archive/<Study>/<Series>/<SOP>.dcm)')
    .option('--aet <aet>', 'our AE title (calling, and the C-MOVE destination) (default: config aet, FIONA)')
    .option('--dest-aet <aet>', 'C-MOVE: the destination AE title, if not --aet')
    .option('--port <n>', 'C-MOVE: port to receive on (default: config pull.port, else the config port)', parseIntOption('--port', 1, 65535))
    .option('--method <move|get>', 'C-MOVE (default) or C-GET', 'move')
    .option('--listen <address>', 'C-MOVE: address to listen on (default: all)')
    .option('--timeout <duration>', 'give up on a silent PACS after this long (default 2m)', parseDuration)
    .option('--no-fsync', 'do not fsync each instance before answering the PACS')
    .option('--json', 'print one JSON report instead of events')
    .option('--quiet', 'no log lines on stderr (errors still)');
  program.parse(argv);
  const o = program.opts<Opts>();
  const log = createLogger('fiona-pull', o.quiet);
  const config = loadConfig(o.config);
  const sect = isObject(config.raw.pull) ? config.raw.pull : {};

  const fromText = o.from ?? (typeof sect.pacs === 'string' ? sect.pacs : undefined);
  if (!fromText) throw new UsageError('--from AET@HOST:PORT is required (or pull.pacs in the config)');
  const pacs = parsePacs(fromText);
  checkAet('--from', pacs.aet);
  const keys = [o.study, o.accession, o.patientId].filter((x) => x !== undefined);
  if (keys.length !== 1) throw new UsageError('give exactly one of --study, --accession, --patient-id');
  if (o.study !== undefined && !isValidUid(o.study)) throw new UsageError(`--study: not a valid UID: ${o.study}`);
  if (o.accession !== undefined && (o.accession.length > 16 || /[\\\x00-\x1f]/.test(o.accession))) throw new UsageError('--accession: at most 16 characters, no backslash');
  if (o.patientId !== undefined && (o.patientId.length > 64 || /[\\\x00-\x1f]/.test(o.patientId))) throw new UsageError('--patient-id: at most 64 characters, no backslash');
  if (!o.out) throw new UsageError('--out DIR is required');
  if (o.method !== 'move' && o.method !== 'get') throw new UsageError(`--method must be move or get, got ${o.method}`);
  const aet = o.aet ?? config.aet;
  checkAet('--aet', aet);
  if (o.destAet !== undefined) checkAet('--dest-aet', o.destAet);
  const port = o.port ?? optInt(sect, 'port', 1, 65535, 'pull.port') ?? config.port;

  const events = new EventWriter(process.stdout);
  let bar: Progress | undefined;
  let stored = 0;
  const timeoutMs = o.timeout ?? 120_000;
  try {
    const result = await pull({
      pacs,
      callingAet: aet,
      method: o.method,
      moveDestination: o.destAet,
      out: resolve(o.out),
      port,
      listenHost: o.listen,
      query: { studyUid: o.study, accession: o.accession, patientId: o.patientId },
      fsync: o.fsync,
      timeouts: { idleMs: timeoutMs, associateMs: Math.min(timeoutMs, 30_000) },
      onEvent: (e) => {
        if (e.event === 'found') {
          const total = (e.studies as Array<{ instances?: number }>).reduce((n, s) => n + (s.instances ?? 0), 0);
          bar = createProgress('pull', total || undefined);
        }
        if (e.event === 'stored') {
          stored++;
          bar?.tick();
        }
        if (!o.json) events.write(e);
      },
    });
    bar?.done();
    const summary = { studies: result.studies.length, completed: result.completed, failed: result.failed, warning: result.warning, stored: result.files.length };
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ ...summary, method: o.method, pacs: pacs.aet, details: result.studies.map((s) => ({ study: s.study, expected: s.expected, ...s.counts, stored: s.files.length, quarantined: s.quarantined })) }, null, 2)}\n`);
    } else {
      events.write(makeEvent('pull-summary', summary));
    }
    log.info(`${result.files.length} instance(s) stored in ${o.out} (${result.completed} completed, ${result.failed} failed, ${result.warning} warning, as the PACS counted)`);
    for (const s of result.studies) {
      if (s.expected !== undefined && s.files.length < s.expected) log.warn(`study ${s.study}: the PACS listed ${s.expected} instances, ${s.files.length} arrived`);
    }
    return result.failed > 0 || result.studies.some((s) => s.expected !== undefined && s.files.length < s.expected) ? 1 : 0;
  } catch (err) {
    bar?.done();
    if (err instanceof PullError) {
      events.write(makeEvent('pull-failed', { reason: err.message, stored }));
      if (err.permanent) throw new UsageError(err.message);
      throw new UnavailableError(err.message);
    }
    throw err;
  }
}
