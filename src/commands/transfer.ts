import { fionaVersion } from '../lib/version.js';
import { Option } from 'commander';
import { collect, createProgram, durationOption, parseIntOption } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { loadConfig } from '../lib/config/config.js';
import { EXIT, UnavailableError, UsageError } from '../lib/errors.js';
import { EventWriter, makeEvent } from '../lib/events/index.js';
import { openSources, sourceOptionsFromConfig } from '../lib/route/open.js';
import { siteLayout } from '../lib/site/layout.js';
import { RequestStore } from '../lib/transfer/requests.js';
import { TransferRunner, type TransferOutcome } from '../lib/transfer/runner.js';
import { listStatus } from '../lib/transfer/status.js';

const HELP = `
Works off the transfer requests fiona-route wrote (<site>/state/requests/), oldest first:
de-identifies each study with its project's rules (the project's "rules" file for
fiona-anonymize), the request's pseudonym as PatientID and PatientName and, as FIONA did,
"EventName:<event>" in (0040,2001), (0040,1002), (0008,0090) and the project name in
(0008,0080); drops what the project's features say; sends the rest to the project's
destination (dicom:// or sftp://, through the fiona-send library); records the result in
<site>/state/transfers/<id>.json (done with the mapped StudyInstanceUID, times and counts,
or failed with the reason and the attempt count), and in REDCap when --redcap is given.

A failed attempt is retried by later runs (wait doubling from --retry-delay) up to
--max-attempts; then the request moves to <site>/state/requests/failed/ and stays there
until --retry-failed. Overlapping cron runs share the queue (one lock per request); a run
killed at any point loses nothing, and its resend duplicates nothing (keyed UIDs).

Events (NDJSON on stdout): transferred, transfer-failed (with willRetry), transfer-pending.

Examples:
  * * * * *  fiona-transfer --site /data/site --routes /etc/fiona/routes.json     # cron
  fiona-transfer --site /data/site --routes routes.json --watch --interval 10s
  fiona-transfer --site /data/site --list
  fiona-transfer --site /data/site --routes routes.json --retry-failed`;

interface Opts {
  site?: string;
  routes?: string;
  redcap?: string;
  tokenFile?: string;
  once?: boolean;
  watch?: boolean;
  interval: number;
  maxAttempts: number;
  retryDelay: number;
  identity?: string;
  knownHosts?: string;
  associations: number;
  retryFailed?: boolean | string;
  request?: string[];
  list?: boolean;
  json?: boolean;
  quiet?: boolean;
  config?: string;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-transfer', 'De-identify and send the queued studies to their research projects, and record the results.', HELP)
    .option('--site <dir>', 'the site folder (config: site / DATADIR)')
    .option('--routes <file>', 'routing rules file with the projects (config: routes)')
    .option('--redcap <url>', 'REDCap API URL: projects from DataTransferProjects, results to Incoming (config: redcap.url)')
    .option('--token-file <file>', 'REDCap API tokens, mode 0600 (config: redcap.tokenFile)')
    .option('--once', 'transfer at most one request, then exit')
    .option('--watch', 'keep running: look for due requests every --interval until SIGTERM')
    .addOption(durationOption('--interval <duration>', 'with --watch: pause between looks', '10s'))
    .option('--max-attempts <n>', 'attempts before a request fails for good', parseIntOption('--max-attempts', 1, 1000), 5)
    .addOption(durationOption('--retry-delay <duration>', 'wait before the 2nd attempt; doubles each time, at most 1h', '1m'))
    .option('--identity <file>', 'SSH key for sftp:// projects that name none')
    .option('--known-hosts <file>', 'known_hosts for sftp:// projects that name none')
    .option('--associations <n>', 'dicom://: associations in parallel per study', parseIntOption('--associations', 1, 16), 1)
    .option('--retry-failed', 'put requests that failed for good back in the queue (all, or those given with --request), then work the queue')
    .option('--request <id>', 'with --retry-failed: only this request (repeatable)', collect)
    .option('--list', 'print the queue, failed requests and last results, then exit')
    .option('--json', 'with --list: one JSON report on stdout')
    .addOption(new Option('-q, --quiet', 'only warnings and errors on stderr'));
  program.parse(argv);
  const o = program.opts<Opts>();
  const log = createLogger('fiona-transfer', o.quiet);
  const config = loadConfig(o.config);
  const siteDir = o.site ?? config.site;
  if (!siteDir) throw new UsageError('--site DIR is required (or site / DATADIR in the config)');
  const site = siteLayout(siteDir);
  const store = new RequestStore(site);

  if (o.list) {
    const status = await listStatus(store);
    if (o.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    else process.stdout.write(status.lines.join('\n') + (status.lines.length ? '\n' : ''));
    return EXIT.OK;
  }
  if (o.once && o.watch) throw new UsageError('--once and --watch exclude each other');

  const sources = await openSources(sourceOptionsFromConfig({ routes: o.routes, redcap: o.redcap, tokenFile: o.tokenFile }, config), site.state);
  sources.warnings.forEach((w) => log.warn(w));
  for (const line of await sources.checkTokens()) log.info(line);
  const rules = await sources.rules.load();
  if (o.retryFailed) {
    const n = await store.requeueFailed(o.request);
    log.info(`${n} failed request${n === 1 ? '' : 's'} queued again`);
  }

  const out = new EventWriter(process.stdout, () => log.warn('stdout closed; events are no longer written'));
  const runner = new TransferRunner({
    site,
    rules,
    store,
    sink: sources.incoming,
    maxAttempts: o.maxAttempts,
    retryDelayMs: o.retryDelay,
    sftp: { identity: o.identity, knownHosts: o.knownHosts },
    associations: o.associations,
    version: fionaVersion(),
    log,
  });

  let failed = 0;
  let pending: string | undefined;
  const report = (x: TransferOutcome): void => {
    const r = x.result;
    const q = x.request;
    if (x.status === 'skipped') {
      log.info(`request ${x.id}: skipped (${x.reason})`);
      return;
    }
    const base = { study: q?.study, request: x.id, project: q?.project, pseudonym: q?.pseudonym, eventName: q?.event };
    if (x.status === 'done') {
      log.info(`${q!.study} -> ${q!.project}: done, ${r!.instances ?? 0} instances in ${r!.series ?? 0} series as ${r!.mappedStudyUid ?? '(nothing sent)'}${r!.skipped?.length ? `, ${r!.skipped.length} skipped` : ''}${x.requeued ? '; new data arrived meanwhile, queued again' : ''}`);
      out.write(makeEvent('transferred', {
        ...base, mappedStudy: r!.mappedStudyUid, to: r!.destination, series: r!.series, instances: r!.instances, bytes: r!.bytes,
        skipped: r!.skipped ?? [], attempts: r!.attempts, requeued: x.requeued || undefined,
      }));
    } else if (x.status === 'report-pending') {
      pending = x.reason;
      log.error(`${q!.study} -> ${q!.project}: ${x.reason}`);
      out.write(makeEvent('transfer-pending', { ...base, mappedStudy: r!.mappedStudyUid, reason: x.reason }));
    } else {
      failed++;
      const willRetry = x.status === 'retry';
      const what = willRetry ? `attempt ${r?.attempts} failed, next at ${r?.nextAttempt}` : `failed for good after ${r?.attempts ?? 0} attempt(s)`;
      log.error(`${q?.study ?? x.id} -> ${q?.project ?? '?'}: ${what}: ${x.reason}`);
      out.write(makeEvent('transfer-failed', { ...base, error: x.reason, attempts: r?.attempts, willRetry, nextAttempt: r?.nextAttempt }));
    }
  };

  if (!o.watch) {
    for (const x of await runner.run({ once: o.once })) report(x);
  } else {
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    log.info(`watching ${store.requests} every ${o.interval} ms`);
    while (!stop.signal.aborted) {
      for (const x of await runner.run({ signal: stop.signal })) report(x);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.interval);
        stop.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  if (pending) throw new UnavailableError(`the study was sent, but ${pending.replace(/^sent, but /, '')}; the next run records it`);
  return failed > 0 ? EXIT.ITEMS_FAILED : EXIT.OK;
}
