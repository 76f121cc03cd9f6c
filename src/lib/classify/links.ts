import { mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { tempNameFor } from '../site/atomic.js';
import type { SiteLayout } from '../site/layout.js';
import { sanitizePathPart } from '../site/sanitize.js';

/**
 * The site's link trees (FIONA's layout):
 *   raw/<Study>/<Series>/<SOP>                      -> the archived file
 *   participants/<PatientID>/<StudyDate>_<StudyTime> -> raw/<Study>
 * Links are relative when the target is inside the site, so a site folder can be moved.
 * UIDs are checked by the caller; PatientID, date and time are sanitised here.
 */

/** Create the symlink (and its folder when missing); false when something is already at `link`. */
async function createSymlink(link: string, target: string): Promise<boolean> {
  try {
    await symlink(target, link);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await mkdir(dirname(link), { recursive: true });
      return createSymlink(link, target);
    }
    if (code !== 'EEXIST') throw err;
    return false;
  }
}

/** Where the link at `path` points; undefined when it is not a link (a plain file or folder). */
async function currentTarget(path: string): Promise<string | undefined> {
  return readlink(path).catch(() => undefined);
}

/** A symlink whose target is `target`; an existing link elsewhere is replaced atomically. */
export async function ensureSymlink(link: string, target: string): Promise<'created' | 'exists' | 'replaced'> {
  if (await createSymlink(link, target)) return 'created';
  // A plain file or folder there is replaced below only if it is a file.
  if ((await currentTarget(link)) === target) return 'exists';
  const tmp = tempNameFor(link);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return 'replaced';
}

/** Target text for a link at `link` pointing to `target`: relative inside the site, else absolute. */
export function linkTarget(layout: SiteLayout, link: string, target: string): string {
  const inside = target === layout.root || target.startsWith(layout.root + sep);
  return inside ? relative(dirname(link), target) : target;
}

export function instanceLinkPath(layout: SiteLayout, study: string, series: string, sop: string): string {
  return join(layout.raw, study, series, sop);
}

export async function linkInstance(layout: SiteLayout, study: string, series: string, sop: string, file: string): Promise<string> {
  const link = instanceLinkPath(layout, study, series, sop);
  await ensureSymlink(link, linkTarget(layout, link, file));
  return link;
}

/**
 * participants/<PatientID>/<StudyDate>_<StudyTime> -> raw/<Study>. When that name already
 * points at another study (two studies of a patient started the same second, or values
 * missing), the study UID is appended rather than re-pointing the existing link.
 */
export async function linkParticipant(
  layout: SiteLayout,
  study: string,
  patientId: string | undefined,
  studyDate: string | undefined,
  studyTime: string | undefined,
): Promise<string> {
  const patient = sanitizePathPart(patientId, 'unknown', 64);
  const when = `${sanitizePathPart(studyDate, 'unknown', 16)}_${sanitizePathPart(studyTime, 'unknown', 32)}`;
  const studyDir = join(layout.raw, study);
  const first = join(layout.participants, patient, when);
  const target = linkTarget(layout, first, studyDir);
  if ((await createSymlink(first, target)) || (await currentTarget(first)) === target) return first;
  const second = `${first}_${study}`;
  await ensureSymlink(second, linkTarget(layout, second, studyDir));
  return second;
}
