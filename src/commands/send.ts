import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { Option } from 'commander';
import { createProgram, durationOption, parseIntOption } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { loadConfig } from '../lib/config/config.js';
import { UsageError } from '../lib/errors.js';
// Modules by name, not the index files: each tool run pays for loading what it imports, and
// a dicom:// run needs neither the outbox, the SFTP code, the stdin reader nor the site locks.
import { EventWriter } from '../lib/events/writer.js';
import { makeEvent, type BaseEvent } from '../lib/events/types.js';
import { DEFAULT_PARALLEL, parseDestination } from '../lib/transport/destination.js';
import { deliver, type DeliverHooks } from '../lib/transport/deliver.js';
import { expandPaths } from '../lib/transport/files.js';
import type { RetryPolicy } from '../lib/transport/retry.js';
import type { FileResult, SendFile, Transport } from '../lib/transport/types.js';
import type { VerifyMode } from '../lib/transport/sftp.js';

const HELP = `
Destinations:
  dicom://CALLED@HOST:PORT?calling=AET   C-STORE of each file's original bytes (port 104 by default)
  sftp://USER@HOST:PORT/DIR              upload as <name>.part, verify, rename (port 22 by default)

Input: files and folders as arguments; or --outbox DIR (cron: outbox/ -> sent/ | failed/);
or, with neither, paths / events with a "path" / FIONA pipe lines on stdin.

Output: NDJSON on stdout: "sent" or "send-failed" per file, "send-retry" before each retry
round, "delivered" / "delivery-failed" / "delivery-pending" per outbox item, and a final
"send-summary". Exit 1 when any file was not delivered.

Examples:
  fiona-send --to 'dicom://RESEARCH@pacs.example.org:104?calling=FIONA' /data/anon/1.2.3
  fiona-send --to sftp://fiona@dc.example.org/incoming --identity ~/.ssh/id_ed25519 \\
             --known-hosts ~/.ssh/known_hosts --outbox /var/fiona/outbox --max-attempts 30`;

interface SendOptions {
  to: string;
  outbox?: string;
  sent?: string;
  failed?: string;
  identity?: string;
  knownHosts?: string;
  verify: VerifyMode;
  md5File?: boolean;
  associations: number;
  parallel: number;
  retries: number;
  retryDelay: number;
  maxDelay: number;
  maxAttempts?: number;
  minAge: number;
  maxItems?: number;
  timeout: number;
  site?: string;
  calling?: string;
  quiet?: boolean;
  config?: string;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-send', 'Deliver DICOM files or archives to a PACS (C-STORE) or a data centre (SFTP), verified, with retries.', HELP)
    .requiredOption('--to <url>', 'destination: dicom://CALLED@HOST:PORT?calling=AET or sftp://USER@HOST:PORT/DIR')
    .argument('[paths...]', 'files and folders to send')
    .option('--outbox <dir>', 'send every item of this folder; move it to sent/ or failed/ (cron mode)')
    .option('--sent <dir>', 'where delivered outbox items go (default: <outbox>/../sent)')
    .option('--failed <dir>', 'where undeliverable outbox items go, with <name>.reason.json (default: <outbox>/../failed)')
    .option('--identity <file>', 'SSH private key for sftp:// (key authentication only)')
    .option('--known-hosts <file>', 'known_hosts with the server key; unknown or changed keys are refused (default: ~/.ssh/known_hosts)')
    .addOption(new Option('--verify <mode>', 'sftp check before publishing: sha256 (openssl on the server), md5sum, size, readback, or auto (sha256, else md5sum, else size)').choices(['auto', 'sha256', 'md5sum', 'size', 'readback']).default('auto'))
    .option('--md5-file', 'sftp: also write <name>.md5 (md5sum format) beside each file')
    .option('--associations <n>', 'dicom: associations in parallel (a PACS may limit them; storescp without --fork takes one at a time)', parseIntOption('--associations', 1, 64), 1)
    .option('--parallel <n>', 'sftp: files uploaded at the same time over the one connection', parseIntOption('--parallel', 1, 64), DEFAULT_PARALLEL)
    .option('--retries <n>', 'retries per file after the first attempt', parseIntOption('--retries', 0, 1000), 3)
    .addOption(durationOption('--retry-delay <duration>', 'wait before the first retry; doubles each time', '2s'))
    .addOption(durationOption('--max-delay <duration>', 'longest wait between retries', '5m'))
    .option('--max-attempts <n>', 'outbox: attempts over all runs before an item goes to failed/ (default: 1 + retries)', parseIntOption('--max-attempts', 1, 1_000_000))
    .addOption(durationOption('--min-age <duration>', 'outbox: leave items younger than this for the next run', '0s'))
    .option('--max-items <n>', 'outbox: at most this many items per run', parseIntOption('--max-items', 1))
    .addOption(durationOption('--timeout <duration>', 'network: give up on a peer silent for this long', '60s'))
    .option('--site <dir>', 'record deliveries of this site\'s studies for fiona-cleanup (default: the config\'s site)')
    .option('--calling <aet>', 'dicom: calling AE title when the URL has none (default: the config\'s AE title)')
    .option('-q, --quiet', 'no progress lines on stderr');
  program.parse(argv);
  const o = program.opts<SendOptions>();
  const paths = program.args;
  const config = loadConfig(o.config);
  const log = createLogger('fiona-send', o.quiet);

  const dest = parseDestination(o.to, { callingAet: o.calling ?? config.aet });
  if (o.outbox && paths.length > 0) throw new UsageError('give either paths or --outbox, not both');
  const site = o.site ?? config.site;
  // The site's archive folder, for recording deliveries: loaded only when there is a site.
  const archive = site ? (await import('../lib/site/layout.js')).siteLayout(site).archive : undefined;

  let transport: Transport;
  if (dest.kind === 'sftp') {
    const { openTransport } = await import('../lib/transport/open.js');
    if (!o.identity) throw new UsageError('sftp:// needs --identity KEY (key authentication only)');
    if (!existsSync(o.identity)) throw new UsageError(`--identity ${o.identity}: no such file`);
    const knownHosts = o.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
    if (!existsSync(knownHosts)) throw new UsageError(`--known-hosts ${knownHosts}: no such file (host keys are always checked)`);
    transport = openTransport(dest, {
      sftp: { identity: o.identity, knownHosts, verify: o.verify, md5File: o.md5File, parallel: o.parallel, connectMs: o.timeout },
    });
  } else {
    const { DicomTransport } = await import('../lib/transport/dicom.js');
    transport = new DicomTransport(dest, { associations: o.associations, connectMs: Math.min(o.timeout, 15_000), associateMs: o.timeout, idleMs: o.timeout });
  }

  const out = new EventWriter(process.stdout);
  const policy: RetryPolicy = { retries: o.retries, initialDelayMs: o.retryDelay, maxDelayMs: o.maxDelay };
  const abort = new AbortController();
  const stop = (sig: string): void => {
    log.warn(`${sig}: finishing the transfers in flight, then stopping`);
    abort.abort();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  const tally = { files: 0, sent: 0, warnings: 0, failed: 0, bytes: 0, alreadyThere: 0 };
  const start = Date.now();
  const studiesSent = new Map<string, number>();
  const sourceOf = new Map<SendFile, BaseEvent | undefined>();
  const hooks: DeliverHooks = {
    onResult: (r: FileResult) => {
      tally.files++;
      if (r.ok) {
        tally.sent++;
        tally.bytes += r.bytes ?? 0;
        if (r.warning) tally.warnings++;
        if (r.details.alreadyThere) tally.alreadyThere++;
        const study = studyForRecord(r, sourceOf.get(r.file), archive);
        if (study) studiesSent.set(study, (studiesSent.get(study) ?? 0) + 1);
        out.write(makeEvent('sent', {
          path: r.file.path,
          name: r.file.name,
          to: transport.url,
          status: r.warning ? 'warning' : 'ok',
          ...(r.warning ? { warning: r.warning } : {}),
          bytes: r.bytes ?? 0,
          attempts: r.attempts,
          ...r.details,
        }));
      } else {
        tally.failed++;
        log.error(`${r.file.path}: ${r.reason}`);
        out.write(makeEvent('send-failed', { path: r.file.path, name: r.file.name, to: transport.url, reason: r.reason, attempts: r.attempts, ...r.details }));
      }
    },
    onRetry: (info) => {
      log.warn(`${info.files} file(s) not delivered (${info.reason}); retry ${info.retry} of ${policy.retries} in ${(info.delayMs / 1000).toFixed(1)} s`);
      out.write(makeEvent('send-retry', { to: transport.url, ...info }));
    },
  };

  let itemsFailed = 0;
  let extraFailures = 0;
  try {
    if (o.outbox) {
      const outbox = resolve(o.outbox);
      if (!existsSync(outbox)) throw new UsageError(`--outbox ${outbox}: no such folder`);
      const { runOutbox } = await import('../lib/transport/outbox.js');
      const report = await runOutbox(
        transport,
        {
          outbox,
          sent: resolve(o.sent ?? join(dirname(outbox), 'sent')),
          failed: resolve(o.failed ?? join(dirname(outbox), 'failed')),
          policy,
          maxAttempts: o.maxAttempts,
          minAgeMs: o.minAge,
          maxItems: o.maxItems,
        },
        {
          ...hooks,
          onItem: (item) => {
            const kind = item.state === 'delivered' ? 'delivered' : item.state === 'failed' ? 'delivery-failed' : 'delivery-pending';
            if (item.state !== 'delivered') itemsFailed++;
            if (item.state === 'failed') log.error(`${item.item}: moved to ${item.path}: ${item.reason}`);
            out.write(makeEvent(kind, { item: item.item, path: item.path, to: transport.url, files: item.files, bytes: item.bytes, attempts: item.attempts, ...(item.reason ? { reason: item.reason } : {}) }));
          },
        },
        abort.signal,
      );
      if (report.locked) {
        log.info(`another fiona-send is working on ${outbox}; nothing to do`);
        out.write(makeEvent('send-skipped', { outbox, reason: 'another fiona-send holds the outbox lock' }));
        return 0;
      }
    } else if (paths.length > 0) {
      const { files, errors } = await expandPaths(paths);
      for (const e of errors) {
        extraFailures++;
        log.error(`${e.path}: ${e.reason}`);
        out.write(makeEvent('send-failed', { path: e.path, to: transport.url, reason: e.reason, attempts: 0 }));
      }
      if (files.length === 0 && errors.length === 0) log.warn('nothing to send');
      await deliver(transport, files, policy, hooks, abort.signal);
    } else {
      if (process.stdin.isTTY) throw new UsageError('nothing to send: give paths, --outbox DIR, or paths/events on stdin');
      const { deliverStream } = await import('../lib/transport/stream.js');
      await deliverStream(
        process.stdin,
        {
          deliverBatch: async (files, sources) => {
            for (const [f, e] of sources) sourceOf.set(f, e);
            await deliver(transport, files, policy, hooks, abort.signal);
          },
          onOther: ({ text, reason }) => {
            if (text !== undefined) log.warn(`stdin: ignored: ${reason}: ${text.slice(0, 200)}`);
          },
          onUnreadable: (path, reason) => {
            extraFailures++;
            log.error(`${path}: ${reason}`);
            out.write(makeEvent('send-failed', { path, to: transport.url, reason, attempts: 0 }));
          },
        },
        { signal: abort.signal },
      );
    }
  } finally {
    await transport.close();
  }

  if (site && studiesSent.size > 0) {
    const { recordDelivery } = await import('../lib/transport/records.js');
    for (const [study, files] of studiesSent) {
      await recordDelivery(site, { study, to: transport.url, tool: 'fiona-send', kind: 'sent', files }).catch((err: Error) =>
        log.warn(`could not record the delivery of study ${study}: ${err.message}`),
      );
    }
  }
  const seconds = (Date.now() - start) / 1000;
  out.write(makeEvent('send-summary', { to: transport.url, ...tally, failed: tally.failed + extraFailures, itemsNotDelivered: itemsFailed, seconds }));
  log.info(`${tally.sent} sent${tally.warnings ? ` (${tally.warnings} with warnings)` : ''}, ${tally.failed + extraFailures} failed, ${(tally.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s`);
  return tally.failed + extraFailures + itemsFailed > 0 ? 1 : 0;
}

/** The site study a delivered file belongs to: from its event's sourceStudy, or its own StudyInstanceUID when the site archives it. */
function studyForRecord(r: FileResult, source: BaseEvent | undefined, archive: string | undefined): string | undefined {
  if (!archive) return undefined;
  if (typeof source?.sourceStudy === 'string') return source.sourceStudy;
  const study = r.details.study;
  if (typeof study === 'string' && /^[0-9.]{1,64}$/.test(study) && existsSync(join(archive, study))) return study;
  return undefined;
}
