import { Option } from 'commander';
import { collect, createProgram } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { loadConfig } from '../lib/config/config.js';
import { EXIT, UnavailableError, UsageError } from '../lib/errors.js';
import { EventWriter, makeEvent, readInput } from '../lib/events/index.js';
import { isPathSafeUid } from '../lib/dicom/uid.js';
import { AutoIdStore } from '../lib/route/autoid.js';
import { openSources, sourceOptionsFromConfig } from '../lib/route/open.js';
import { Router, type StudyRouting } from '../lib/route/router.js';
import { listManifests, studyFromInput, studyOfManifest } from '../lib/route/inputs.js';
import { siteLayout } from '../lib/site/layout.js';

const HELP = `
Reads study-complete / study-updated events (fiona-detect-study) on stdin, or with --scan
every completed study of the site, and writes one transfer request per matching
(study, project, pseudonym, event) under <site>/state/requests/ for fiona-transfer.
A key is queued once, and again when new series arrived after its last transfer.
A study no rule takes is reported (event study-unrouted, <site>/state/unrouted/), never dropped.

Rules: --routes FILE (JSON, see examples/routes.json) and/or REDCap projects with FIONA's
field names (--redcap URL --token-file F). An invalid rule refuses the whole run (exit 2),
naming the entry.

Events written (NDJSON on stdout):
  {"event":"transfer-request","study":…,"request":…,"project":…,"pseudonym":…,"eventName":…,"via":[…],"action":"queued|updated","path":…}
  {"event":"study-unrouted","study":…,"reasons":[…]}

Examples:
  fiona-detect-study --site /data/site | fiona-route --site /data/site --routes /etc/fiona/routes.json
  fiona-route --site /data/site --routes routes.json --scan          # from cron
  fiona-detect-study --site /data/site --exec fiona-route --site /data/site --routes routes.json
  fiona-route --routes routes.json --check                           # validate the rules`;

interface Opts {
  site?: string;
  routes?: string;
  redcap?: string;
  tokenFile?: string;
  scan?: boolean;
  study?: string[];
  check?: boolean;
  dryRun?: boolean;
  pass?: boolean;
  quiet?: boolean;
  config?: string;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-route', 'Decide which research project each arrived study goes to, and queue its transfer.', HELP)
    .argument('[studies...]', 'study manifests (<site>/studies/<Study>.json) or StudyInstanceUIDs to route, e.g. from fiona-detect-study --exec')
    .option('--site <dir>', 'the site folder (config: site / DATADIR)')
    .option('--routes <file>', 'routing rules file, JSON (config: routes)')
    .option('--redcap <url>', 'REDCap API URL: rules from its Routing/CouplingList/DataTransferProjects projects, arrivals to Incoming (config: redcap.url)')
    .option('--token-file <file>', 'REDCap API tokens, mode 0600: role=token lines (routing, coupling, projects, incoming) or one token (config: redcap.tokenFile)')
    .option('--scan', 'route every completed study (<site>/studies/*.json) instead of reading stdin; for cron')
    .option('--study <uid>', 'route this study (repeatable)', collect)
    .option('--check', 'load and validate the rules, print a summary on stderr, and exit')
    .option('--dry-run', 'decide and print events, write nothing')
    .option('--pass', 'pass input events this tool does not handle through to stdout')
    .addOption(new Option('-q, --quiet', 'only warnings and errors on stderr'));
  program.parse(argv);
  const o = program.opts<Opts>();
  const positional = program.args;
  const log = createLogger('fiona-route', o.quiet);
  const config = loadConfig(o.config);
  const siteDir = o.site ?? config.site;
  if (!siteDir && !o.check) throw new UsageError('--site DIR is required (or site / DATADIR in the config)');
  const site = siteLayout(siteDir ?? '.');
  const sources = await openSources(sourceOptionsFromConfig({ routes: o.routes, redcap: o.redcap, tokenFile: o.tokenFile }, config), site.state);
  sources.warnings.forEach((w) => log.warn(w));
  for (const line of await sources.checkTokens()) log.info(line);
  const rules = await sources.rules.load();
  log.info(`rules from ${rules.origin}: ${rules.routes.length} routes, ${rules.coupling.length} coupling entries, ${rules.projects.size} projects`);
  if (o.check) {
    for (const p of rules.projects.values()) {
      log.info(`project ${p.name}: ${p.active ? 'active' : 'inactive'}, to ${p.destination}${p.autoId ? `, automatic IDs ${p.autoId.pattern}` : ''}${p.features.size ? `, ${[...p.features].join(', ')}` : ''}`);
    }
    return EXIT.OK;
  }

  const out = new EventWriter(process.stdout, () => log.warn('stdout closed; events are no longer written'));
  const router = new Router({ site, rules, autoIds: AutoIdStore.forState(site.state), sink: sources.incoming, dryRun: o.dryRun });
  let failed = 0;
  let sinkFailed: string | undefined;

  const report = (r: StudyRouting): void => {
    if (r.status === 'missing') {
      failed++;
      log.error(`study ${r.study}: ${r.problems.join('; ')}`);
      return;
    }
    if (r.status === 'unrouted') {
      log.warn(`study ${r.study} goes nowhere: ${r.problems.join('; ')}`);
      out.write(makeEvent('study-unrouted', { study: r.study, reasons: r.problems }));
    } else {
      r.problems.forEach((p) => log.warn(`study ${r.study}: ${p}`));
    }
    for (const { match, outcome } of r.requests) {
      if (outcome.action === 'queued' || outcome.action === 'updated') {
        const q = outcome.request;
        log.info(`study ${r.study} -> ${match.project} as ${match.pseudonym}${match.event ? ` (${match.event})` : ''}: ${outcome.action} (${match.via})`);
        out.write(makeEvent('transfer-request', {
          study: r.study,
          request: q.id,
          project: q.project,
          pseudonym: q.pseudonym,
          eventName: q.event,
          via: q.via,
          action: outcome.action,
          reason: q.reason,
          path: o.dryRun ? undefined : router.store.requestPath(q.id),
        }));
      } else {
        log.info(`study ${r.study} -> ${match.project}: ${outcome.action === 'already-queued' ? 'already queued' : `already ${outcome.result.status}, nothing new`}`);
      }
    }
    if (r.sinkError) {
      sinkFailed = r.sinkError;
      log.error(r.sinkError);
    }
  };

  const routeOne = async (uid: string): Promise<void> => report(await router.routeStudy(uid));

  const named: string[] = [...(o.study ?? [])];
  for (const a of positional) {
    const uid = isPathSafeUid(a) ? a : studyOfManifest(a, site);
    if (!uid) throw new UsageError(`${a}: neither a StudyInstanceUID nor a manifest under ${site.studies}`);
    named.push(uid);
  }
  for (const uid of named) {
    if (!isPathSafeUid(uid)) throw new UsageError(`--study: not a valid StudyInstanceUID: ${uid}`);
    await routeOne(uid);
  }
  if (o.scan) {
    for (const uid of await listManifests(site)) await routeOne(uid);
  } else if (named.length === 0) {
    for await (const item of readInput(process.stdin)) {
      const uid = studyFromInput(item, site);
      if (uid) {
        await routeOne(uid);
      } else if (item.kind === 'invalid') {
        log.warn(`input line ${item.line}: ${item.reason}`);
      } else if (o.pass && item.kind === 'event') {
        out.write(item.event);
      }
    }
  }
  if (sinkFailed) throw new UnavailableError(`arrivals were queued locally, but ${sinkFailed}`);
  return failed > 0 ? EXIT.ITEMS_FAILED : EXIT.OK;
}

