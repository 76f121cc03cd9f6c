import { basename, dirname } from 'node:path';
import { collect, createProgram, parseDuration, parseIntOption } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { isValidAet, loadConfig, optStringArray } from '../lib/config/index.js';
import { UsageError, errorMessage } from '../lib/errors.js';
import { EventWriter, FifoWriter, formatFionaLine, type BaseEvent } from '../lib/events/index.js';
import { startReceiver } from '../lib/receive/receiver.js';

const HELP = `
Receives DICOM instances (C-STORE, any storage SOP class, any standard transfer syntax, kept
as sent) and answers C-ECHO. Each instance streams into <site>/.arrived/ and is renamed to
<site>/archive/<Study>/<Series>/<SOP>.dcm only when complete and checked; the sender's
C-STORE response comes after that. Bad instances go to <site>/quarantine/ with a reason file
and the sender gets a failure status.

Events (NDJSON on stdout): listening, association (accepted/rejected/released/aborted/...),
stored (one per instance), quarantined, echo, error. With --pipe also FIONA's pipe lines
"callingAET,calledAET,callerIP,dir,filename" into a FIFO.

Config keys: DATADIR (or site), DICOMPORT (or port), DICOMAETITLE (or aet), allow,
maxAssociations. Options given here override them.

SIGTERM/SIGINT: stop listening, finish and answer the instances in flight, abort idle
associations, exit 0. A second signal aborts at once (partial instances are quarantined).

Examples:
  fiona-receive --site /data/site --port 11112 --aet FIONA
  fiona-receive --site /data/site --port 0 --allow SCANNER1,PACS | fiona-classify --site /data/site
  fiona-receive --config /etc/fiona/config.json --pipe /data/site/state/pipe`;

interface ReceiveOptions {
  config?: string;
  site?: string;
  port?: number;
  host?: string;
  aet?: string;
  allow?: string[];
  alsoCalled?: string[];
  pipe?: string;
  maxAssociations?: number;
  fsync?: boolean;
  idleTimeout: string;
  grace: string;
  quiet?: boolean;
}

function splitList(values: string[] | undefined): string[] | undefined {
  if (!values) return undefined;
  return values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-receive', 'DICOM storage receiver (C-STORE and C-ECHO SCP) that loses nothing.', HELP)
    .option('--site <dir>', 'site folder (config DATADIR)')
    .option('--port <n>', 'TCP port, 0 picks a free one (config DICOMPORT; default 11112)', parseIntOption('--port', 0, 65535))
    .option('--host <addr>', 'address to listen on (default: all interfaces)')
    .option('--aet <aet>', 'our AE title; the called AE title must match (config DICOMAETITLE; default FIONA)')
    .option('--also-called <aets>', 'more called AE titles to answer to, comma separated, repeatable (config alsoCalled; FIONA: one per project, for routing by incomingAet)', collect)
    .option('--allow <aets>', 'calling AE titles allowed to send, comma separated, repeatable (default: any)', collect)
    .option('--pipe <fifo>', "also write FIONA pipe lines to this FIFO (created if missing)")
    .option('--max-associations <n>', 'associations at once; more are rejected (default 16)', parseIntOption('--max-associations', 1, 1000))
    .option('--fsync', 'fsync every file and folder before answering the sender (slower, survives power loss)')
    .option('--idle-timeout <duration>', 'abort an association silent this long, 0 = never', '5m')
    .option('--grace <duration>', 'on SIGTERM, wait this long for instances in flight', '30s')
    .option('-q, --quiet', 'no association log lines on stderr (errors still)');
  program.parse(argv);
  const o = program.opts<ReceiveOptions>();
  const log = createLogger('fiona-receive', o.quiet);

  const config = loadConfig(o.config);
  const site = o.site ?? config.site;
  if (!site) throw new UsageError('no site folder: give --site DIR (or DATADIR in the config file)');
  const aet = o.aet ?? config.aet;
  if (!isValidAet(aet)) throw new UsageError(`--aet: not a valid AE title (1-16 printable characters, no backslash): ${JSON.stringify(aet)}`);
  const allow = splitList(o.allow) ?? config.allow;
  for (const a of allow ?? []) if (!isValidAet(a)) throw new UsageError(`--allow: not a valid AE title: ${JSON.stringify(a)}`);
  const alsoCalled = splitList(o.alsoCalled) ?? optStringArray(config.raw, 'alsoCalled');
  for (const a of alsoCalled ?? []) if (!isValidAet(a)) throw new UsageError(`--also-called: not a valid AE title: ${JSON.stringify(a)}`);
  const idleTimeoutMs = o.idleTimeout === '0' ? 0 : parseDuration(o.idleTimeout);
  const graceMs = parseDuration(o.grace);

  const events = new EventWriter(process.stdout, (err) => log.warn(`stdout closed (${err.message}); events are no longer written there`));
  let fifo: FifoWriter | undefined;
  if (o.pipe) {
    try {
      fifo = await FifoWriter.open(o.pipe);
    } catch (err) {
      throw new UsageError(`--pipe ${o.pipe}: ${errorMessage(err)}`);
    }
  }

  const onEvent = (e: BaseEvent): void => {
    events.write(e);
    switch (e.event) {
      case 'stored':
        if (fifo) {
          const path = String(e.path);
          fifo.writeLine(formatFionaLine({ calling: String(e.calling), called: String(e.called), peer: String(e.peer), dir: dirname(path), file: basename(path) }));
        }
        break;
      case 'association':
        if (e.state === 'rejected') log.warn(`rejected ${String(e.calling)}@${String(e.peer)} -> ${String(e.called)}: ${String(e.reason)}`);
        else if (e.state === 'accepted') log.info(`association ${String(e.association)} from ${String(e.calling)}@${String(e.peer)}`);
        else log.info(`association ${String(e.association)} ${String(e.state)}: ${String(e.stored)} stored, ${String(e.failed)} failed${e.reason ? ` (${String(e.reason)})` : ''}`);
        break;
      case 'quarantined':
        log.warn(`quarantined ${String(e.path)}: ${String(e.reason)}`);
        break;
      case 'error':
        log.error(String(e.message));
        break;
      default:
        break;
    }
  };

  // Signals are caught from here on, before the port opens: a SIGTERM that comes while the
  // receiver starts must still end in an orderly stop, never in Node's default exit.
  let signalled: NodeJS.Signals | undefined;
  let onSecondSignal: (() => void) | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn(`${signal} again: aborting what is in flight`);
      onSecondSignal?.();
      return;
    }
    signalled = signal;
    wake?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const receiver = await startReceiver({
    site,
    port: o.port ?? config.port,
    host: o.host,
    aet,
    allow,
    alsoCalled,
    maxAssociations: o.maxAssociations ?? config.maxAssociations,
    fsync: Boolean(o.fsync),
    idleTimeoutMs,
    onEvent,
  });
  onSecondSignal = () => receiver.forceStop();
  log.info(`listening on port ${receiver.port} as ${aet}, site ${receiver.layout.root}`);

  if (!signalled) await new Promise<void>((resolve) => (wake = resolve));
  log.info(`${String(signalled)}: finishing instances in flight, then stopping`);
  try {
    await receiver.stop(graceMs);
  } catch (err) {
    log.error(`while stopping: ${errorMessage(err)}`);
  }

  if (fifo) {
    if (fifo.dropped > 0) log.warn(`${fifo.dropped} pipe lines were dropped (no reader kept up with ${o.pipe})`);
    fifo.close();
  }
  return 0;
}
