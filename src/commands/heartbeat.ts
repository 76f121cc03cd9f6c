import { resolve } from 'node:path';
import { CommanderError, Option } from 'commander';
import { collect, createProgram, durationOption, parseIntOption } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { isValidAet, loadConfig } from '../lib/config/config.js';
import { UsageError } from '../lib/errors.js';
import { parseThreshold, type Threshold } from '../lib/health/disk.js';
import { splitCommand } from '../lib/health/restart.js';
import { formatNagios, runHeartbeat } from '../lib/health/run.js';
import { nagiosExit } from '../lib/health/types.js';

const HELP = `
Checks: the receiver answers C-ECHO (a dead one refuses, a hung one times out); free space
of the site's disk; queue depths (outboxes and their failed/, the site's transfer queue,
--queue folders); stuck work (locks and running transfers older than --stuck); the age of
the newest arrival.

Output: one Nagios status line (with performance data) and a line per check on stdout, or
with --json a report {state, time, checks: [{name, state, message, data}], restart}.

Exit status follows the Nagios plugin convention, NOT the other fiona tools':
  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for a usage or config error).

Examples:
  fiona-heartbeat --site /var/fiona --outbox /var/fiona/outbox
  fiona-heartbeat --config /etc/fiona/config.json --json
  fiona-heartbeat --site /var/fiona --restart 'systemctl restart fiona-receive'`;

interface HeartbeatCliOptions {
  config?: string;
  site?: string;
  host: string;
  port?: number;
  aet?: string;
  calling: string;
  echo: boolean;
  timeout: number;
  warnFree: string;
  critFree: string;
  outbox: string[];
  queue: string[];
  warnQueue: number;
  critQueue: number;
  stuck: number;
  warnArrivalAge?: number;
  critArrivalAge?: number;
  restart?: string;
  restartInterval: number;
  restartWait: number;
  json?: boolean;
}

export async function main(argv: string[]): Promise<number> {
  const log = createLogger('fiona-heartbeat');
  try {
    return await run(argv);
  } catch (err) {
    // Nagios: a check that cannot run is UNKNOWN (3), whatever went wrong.
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      return 3;
    }
    log.error(err instanceof Error ? err.message : String(err));
    return 3;
  }
}

async function run(argv: string[]): Promise<number> {
  // Nagios's exit codes, not fiona's: HELP explains them instead of the shared table.
  const program = createProgram(
    'fiona-heartbeat',
    'Check that the gateway is alive: receiver, disk, queues, stuck work, arrivals (Nagios exit codes).',
    HELP,
    '',
  )
    .option('--site <dir>', 'the site folder (default: the config\'s site / DATADIR)')
    .option('--host <host>', 'where the receiver listens', '127.0.0.1')
    .option('--port <n>', 'the receiver\'s port (default: the config\'s port / DICOMPORT)', parseIntOption('--port', 1, 65535))
    .option('--aet <aet>', 'the receiver\'s AE title (default: the config\'s AE title / DICOMAETITLE)')
    .option('--calling <aet>', 'our AE title for the C-ECHO', 'HEARTBEAT')
    .option('--no-echo', 'do not check the receiver')
    .addOption(durationOption('--timeout <duration>', 'C-ECHO deadline: connect, associate, answer', '5s'))
    .option('--warn-free <size>', 'WARNING below this free space (percent or size, e.g. 20% or 50G)', '20%')
    .option('--crit-free <size>', 'CRITICAL below this free space', '10%')
    .addOption(new Option('--outbox <dir>', 'an outbox to watch (its sibling failed/ too); repeatable').argParser(collect).default([], 'none'))
    .addOption(new Option('--queue <dir>', 'another queue folder to count; repeatable').argParser(collect).default([], 'none'))
    .option('--warn-queue <n>', 'WARNING at this many waiting items', parseIntOption('--warn-queue', 1), 100)
    .option('--crit-queue <n>', 'CRITICAL at this many waiting items', parseIntOption('--crit-queue', 1), 1000)
    .addOption(durationOption('--stuck <duration>', 'WARNING for a lock or running transfer older than this', '2h'))
    .addOption(durationOption('--warn-arrival-age <duration>', 'WARNING when the newest arrival is older (off by default: nights and weekends are quiet)'))
    .addOption(durationOption('--crit-arrival-age <duration>', 'CRITICAL when the newest arrival is older'))
    .option('--restart <command>', 'run this when the receiver does not answer (split into words, no shell)')
    .addOption(durationOption('--restart-interval <duration>', 'at most one restart in this time (needs --site for its state)', '10m'))
    .addOption(durationOption('--restart-wait <duration>', 'wait this long after a restart before asking again', '3s'))
    .option('--json', 'print the report as JSON');
  program.parse(argv);
  const o = program.opts<HeartbeatCliOptions>();
  const config = loadConfig(o.config);
  const site = o.site ?? config.site;
  const aet = o.aet ?? config.aet;
  if (!isValidAet(aet)) throw new UsageError(`--aet: not a valid AE title: ${aet}`);
  if (!isValidAet(o.calling)) throw new UsageError(`--calling: not a valid AE title: ${o.calling}`);
  let warn: Threshold;
  let crit: Threshold;
  try {
    warn = parseThreshold(o.warnFree);
    crit = parseThreshold(o.critFree);
  } catch (err) {
    throw new UsageError(`--warn-free/--crit-free: ${(err as Error).message}`);
  }
  let restart;
  if (o.restart) {
    const words = splitCommand(o.restart);
    if (words.length === 0) throw new UsageError('--restart: empty command');
    restart = { argv: words, minIntervalMs: o.restartInterval, waitMs: o.restartWait, timeoutMs: 120_000 };
  }
  const report = await runHeartbeat({
    site: site ? resolve(site) : undefined,
    receiver: o.echo ? { host: o.host, port: o.port ?? config.port, calledAet: aet, callingAet: o.calling } : undefined,
    timeoutMs: o.timeout,
    disk: { warn, crit },
    outboxes: o.outbox.map((d) => resolve(d)),
    queues: o.queue.map((d) => resolve(d)),
    queueLimits: { warn: o.warnQueue, crit: o.critQueue },
    stuckMs: o.stuck,
    arrival: { warnMs: o.warnArrivalAge, critMs: o.critArrivalAge },
    restart,
  });
  process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatNagios(report));
  return nagiosExit(report.state);
}
