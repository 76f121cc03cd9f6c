import { opendir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { isPathSafeUid } from '../dicom/uid.js';
// The events barrel pulls in the FIFO writer (and execa): import only what is read here.
import { readInput } from '../events/reader.js';
import type { BaseEvent } from '../events/types.js';
import { siteLayout } from '../site/layout.js';

/**
 * What fiona-anonymize reads: files and folders named on the command line, or lines on
 * stdin (events from fiona-receive / fiona-classify / fiona-detect-study, plain paths,
 * FIONA pipe lines). A study-complete event stands for every instance of the study in the
 * site's archive.
 */
export type InputUnit =
  | { kind: 'file'; path: string }
  | { kind: 'other'; event: BaseEvent }
  | { kind: 'invalid'; text: string; reason: string };

/** Every regular file under a folder, in name order; hidden names (temp files, .arrived) are skipped. */
export async function* walkFiles(dir: string): AsyncGenerator<string> {
  const d = await opendir(dir);
  const names: Array<{ name: string; isDir: boolean; isFile: boolean }> = [];
  for await (const e of d) {
    if (e.name.startsWith('.')) continue;
    names.push({ name: e.name, isDir: e.isDirectory(), isFile: e.isFile() || e.isSymbolicLink() });
  }
  names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const n of names) {
    const p = join(dir, n.name);
    if (n.isDir) yield* walkFiles(p);
    else if (n.isFile) yield p;
  }
}

/** A command-line argument: a file, or a folder walked recursively. */
export async function* filesOf(arg: string): AsyncGenerator<InputUnit> {
  const p = resolve(arg);
  let s;
  try {
    s = await stat(p);
  } catch (err) {
    yield { kind: 'invalid', text: arg, reason: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    return;
  }
  if (s.isDirectory()) {
    for await (const f of walkFiles(p)) yield { kind: 'file', path: f };
  } else yield { kind: 'file', path: p };
}

/** The instances a study-complete event stands for: <site>/archive/<Study>/. */
export async function* studyFiles(event: BaseEvent, site?: string): AsyncGenerator<InputUnit> {
  const study = typeof event.study === 'string' ? event.study : '';
  if (!isPathSafeUid(study)) {
    yield { kind: 'invalid', text: JSON.stringify(event), reason: 'study-complete event without a valid "study" UID' };
    return;
  }
  // The manifest lives at <site>/studies/<Study>.json; without --site, that tells the site.
  const root = site ?? (typeof event.manifest === 'string' ? dirname(dirname(event.manifest)) : undefined);
  if (!root) {
    yield { kind: 'invalid', text: JSON.stringify(event), reason: 'study-complete event: give --site to find the study\'s instances' };
    return;
  }
  const dir = join(siteLayout(root).archive, study);
  try {
    for await (const f of walkFiles(dir)) yield { kind: 'file', path: f };
  } catch (err) {
    yield { kind: 'invalid', text: JSON.stringify(event), reason: `cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

const PATH_EVENTS = new Set(['stored', 'classified', 'path']);

/** Units from stdin lines. */
export async function* stdinUnits(stream: Readable, site?: string): AsyncGenerator<InputUnit> {
  for await (const item of readInput(stream)) {
    switch (item.kind) {
      case 'path':
      case 'fiona':
        yield* filesOf(item.path);
        break;
      case 'invalid':
        yield { kind: 'invalid', text: item.text, reason: `line ${item.line}: ${item.reason}` };
        break;
      case 'event': {
        const e = item.event;
        if (e.event === 'study-complete') yield* studyFiles(e, site);
        else if (PATH_EVENTS.has(e.event) && typeof e.path === 'string') yield { kind: 'file', path: resolve(e.path) };
        else yield { kind: 'other', event: e };
        break;
      }
    }
  }
}
