import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEvents, runTool } from '../helpers/cli.js';
import { intoArchive, synth } from '../classify/helpers.js';

export type Ev = Record<string, unknown>;

/**
 * A site with classified studies: fiona-synth writes them, they are copied into archive/
 * as the receiver stores them, and fiona-classify links and classifies them. Returns the
 * `classified` events grouped by study, in order.
 */
export async function classifiedSite(site: string, synthDir: string, args: string[]): Promise<Map<string, Ev[]>> {
  const files = await synth(synthDir, args);
  const archived = await intoArchive(files, site);
  const r = await runTool('fiona-classify', ['--site', site], { input: `${archived.join('\n')}\n` });
  if (r.exitCode !== 0) throw new Error(`fiona-classify failed: ${String(r.stderr)}`);
  const byStudy = new Map<string, Ev[]>();
  for (const e of parseEvents(r.stdout)) {
    const s = String(e.study);
    byStudy.set(s, [...(byStudy.get(s) ?? []), e]);
  }
  return byStudy;
}

/** The event as if it happened now (detect-study takes arrival times from events). */
export function now(e: Ev): string {
  return JSON.stringify({ ...e, time: new Date().toISOString() });
}

export async function manifest(site: string, study: string): Promise<Ev> {
  return JSON.parse(await readFile(join(site, 'studies', `${study}.json`), 'utf8')) as Ev;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
