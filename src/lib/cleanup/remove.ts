/**
 * Removing a study: first its archive folder is renamed out of the way (atomic: an instance
 * arriving now for the same study makes a fresh folder and survives), then its raw/ tree,
 * its participants/ links and its manifest go, then the renamed folder is deleted. A run
 * killed part way leaves the renamed folder in state/cleanup/trash/, which the next run
 * empties first; a study whose archive is gone but whose links remain is finished too.
 */
import { mkdir, readdir, readlink, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fsyncDir } from '../site/atomic.js';
import type { SiteLayout } from '../site/layout.js';
import { deliveredDir } from '../transport/records.js';

export function trashDir(layout: SiteLayout): string {
  return join(layout.state, 'cleanup', 'trash');
}

/** participants/<PatientID>/<when> links that point at raw/<Study>. */
export async function participantLinks(layout: SiteLayout, study: string): Promise<string[]> {
  const target = join(layout.raw, study);
  const out: string[] = [];
  let patients: string[];
  try {
    patients = await readdir(layout.participants);
  } catch {
    return out;
  }
  for (const p of patients) {
    let links: string[];
    try {
      links = await readdir(join(layout.participants, p));
    } catch {
      continue;
    }
    for (const l of links) {
      const link = join(layout.participants, p, l);
      try {
        const to = await readlink(link);
        if (resolve(dirname(link), to) === target) out.push(link);
      } catch {
        // not a link
      }
    }
  }
  return out;
}

/** What belongs to a study besides its archive folder. */
export async function studyPaths(layout: SiteLayout, study: string): Promise<string[]> {
  return [join(layout.raw, study), join(layout.studies, `${study}.json`), ...(await participantLinks(layout, study))];
}

export async function removeStudy(layout: SiteLayout, study: string): Promise<string[]> {
  const removed: string[] = [];
  const trash = trashDir(layout);
  await mkdir(trash, { recursive: true });
  const archive = join(layout.archive, study);
  const parked = join(trash, `${study}.${Date.now()}`);
  try {
    await rename(archive, parked);
    await fsyncDir(layout.archive);
    removed.push(archive);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  removed.push(...(await finishRemoval(layout, study, parked)));
  return removed;
}

/**
 * The rest of a removal once the archive folder is parked (by removeStudy now, or by a run
 * that was killed): the study's other paths, then the parked folder last, so a kill before
 * the end leaves it in the trash for the next run.
 */
async function finishRemoval(layout: SiteLayout, study: string, parked: string): Promise<string[]> {
  const removed: string[] = [];
  if (await exists(join(layout.archive, study))) {
    // An instance of this study arrived while it was being removed: keep what points at it,
    // remove only the links into the parked (old) files.
    await rm(parked, { recursive: true, force: true });
    removed.push(...(await removeDanglingLinks(join(layout.raw, study))));
    return removed;
  }
  for (const p of await studyPaths(layout, study)) {
    await rm(p, { recursive: true, force: true });
    removed.push(p);
    // An emptied participants/<PatientID>/ folder goes too.
    if (p.startsWith(layout.participants)) await rmdir(dirname(p)).catch(() => undefined);
  }
  await rm(join(deliveredDir(layout.root), `${study}.ndjson`), { force: true });
  await rm(parked, { recursive: true, force: true });
  return removed;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Symbolic links under dir whose target is gone. */
async function removeDanglingLinks(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await removeDanglingLinks(p)));
    else if (e.isSymbolicLink() && !(await exists(p))) {
      await rm(p, { force: true });
      out.push(p);
    }
  }
  return out;
}

/** Finish removals a killed run left behind. */
export async function emptyTrash(layout: SiteLayout): Promise<string[]> {
  const trash = trashDir(layout);
  let names: string[];
  try {
    names = await readdir(trash);
  } catch {
    return [];
  }
  const done: string[] = [];
  for (const n of names) {
    const study = n.replace(/\.\d+$/, '');
    await finishRemoval(layout, study, join(trash, n));
    done.push(study);
  }
  return done;
}
