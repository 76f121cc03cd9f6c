import { existsSync } from 'node:fs';
import { Option } from 'commander';
import { createProgram, parseDuration } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { runCleanup } from '../lib/cleanup/run.js';
import { loadConfig } from '../lib/config/config.js';
import { UsageError } from '../lib/errors.js';
import { EventWriter, makeEvent } from '../lib/events/index.js';
import { formatBytes, parseThreshold, type Threshold } from '../lib/health/disk.js';
import { siteLayout } from '../lib/site/index.js';

const HELP = `
A study may go when its newest instance arrived before --older-than, fiona-detect-study does
not hold it open, no transfer of it is queued or running, and (with --require delivered,
the default) it was delivered: a record in <site>/state/delivered/<Study>.ndjson (written by
fiona-send for the site's studies, or by another tool after an export) or a finished
fiona-transfer. Oldest first; with --keep-free, only until that much space is free.

Removed per study: archive/<Study>/, raw/<Study>/, the participants/ links to it, and
studies/<Study>.json. Output: NDJSON "removed" (or "would-remove" with --dry-run) and "kept"
per old study, then "cleanup-summary". Exit 1 when --keep-free could not be reached.

Examples:
  fiona-cleanup --site /var/fiona --older-than 30d --dry-run
  fiona-cleanup --site /var/fiona --older-than 14d --keep-free 20%`;

interface CleanupCliOptions {
  config?: string;
  site?: string;
  olderThan: number;
  keepFree?: string;
  require: 'delivered' | 'nothing';
  dryRun?: boolean;
  quiet?: boolean;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-cleanup', 'Remove old, delivered studies from the site, oldest first, until the free-space target holds.', HELP)
    .option('--site <dir>', 'the site folder (default: the config\'s site / DATADIR)')
    .requiredOption('--older-than <duration>', 'only studies whose newest instance is older than this (e.g. 30d)', parseDuration)
    .option('--keep-free <size>', 'stop once this much is free (percent of the disk or a size, e.g. 20% or 500G)')
    .addOption(new Option('--require <what>', 'what a study needs before it may go').choices(['delivered', 'nothing']).default('delivered'))
    .option('--dry-run', 'list what would be removed; change nothing')
    .option('-q, --quiet', 'no summary line on stderr');
  program.parse(argv);
  const o = program.opts<CleanupCliOptions>();
  const config = loadConfig(o.config);
  const site = o.site ?? config.site;
  if (!site) throw new UsageError('--site DIR is required (or "site"/"DATADIR" in the config)');
  if (!existsSync(site)) throw new UsageError(`--site ${site}: no such folder`);
  if (o.olderThan <= 0) throw new UsageError('--older-than must be more than 0');
  let keepFree: Threshold | undefined;
  if (o.keepFree) {
    try {
      keepFree = parseThreshold(o.keepFree);
    } catch (err) {
      throw new UsageError(`--keep-free: ${(err as Error).message}`);
    }
  }
  const log = createLogger('fiona-cleanup', o.quiet);
  const out = new EventWriter(process.stdout);
  const report = await runCleanup(
    { layout: siteLayout(site), olderThanMs: o.olderThan, keepFree, policy: o.require === 'nothing' ? 'none' : 'delivered', dryRun: Boolean(o.dryRun) },
    { onStudy: (s) => out.write(makeEvent(s.action, { ...s, action: undefined })) },
  );
  if (report.locked) {
    log.info('another fiona-cleanup is running on this site; nothing done');
    out.write(makeEvent('cleanup-skipped', { site, reason: 'another fiona-cleanup holds the lock' }));
    return 0;
  }
  const removed = report.studies.filter((s) => s.action !== 'kept');
  const kept = report.studies.filter((s) => s.action === 'kept');
  out.write(makeEvent('cleanup-summary', {
    site,
    dryRun: Boolean(o.dryRun),
    removed: removed.length,
    kept: kept.length,
    finishedFromEarlierRun: report.finished,
    bytes: report.bytes,
    freeBefore: report.freeBefore,
    freeAfter: report.freeAfter,
    total: report.total,
    targetMet: report.targetMet,
  }));
  log.info(`${o.dryRun ? 'would remove' : 'removed'} ${removed.length} stud${removed.length === 1 ? 'y' : 'ies'} (${formatBytes(report.bytes)}), kept ${kept.length} old one(s); ${formatBytes(report.freeAfter)} free`);
  if (!report.targetMet) {
    log.warn(`--keep-free ${o.keepFree} not reached: nothing more may be removed`);
    return 1;
  }
  return 0;
}
