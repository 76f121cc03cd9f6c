import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import { siteLayout } from '../site/layout.js';

/**
 * Where the DICOM of an export comes from: the site's archive (archive/<Study>/...), a
 * folder given on the command line, or a PACS (pulled into the job's temp folder first by
 * the caller's `pull`, which is fiona-pull's library).
 */
export type ExportSource =
  | { kind: 'site'; site: string }
  | { kind: 'folder'; dir: string }
  | { kind: 'pacs'; describe: string; pull: (dest: string) => Promise<string[]> };

export class SourceError extends Error {
  constructor(message: string, readonly permanent: boolean) {
    super(message);
    this.name = 'SourceError';
  }
}

/** Every regular file under dir (symlinks followed to files), sorted folder by folder, one at a time. */
export async function* walkFiles(dir: string): AsyncGenerator<string> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.name.startsWith('.')) continue; // temp names of writers in progress
    if (e.isDirectory()) yield* walkFiles(p);
    else if (e.isFile()) yield p;
    else if (e.isSymbolicLink()) {
      const st = await stat(p).catch(() => undefined);
      if (st?.isFile()) yield p;
    }
  }
}

/** How many files walkFiles will give (a first pass that keeps nothing, for progress). */
async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const _ of walkFiles(dir)) n++;
  return n;
}

/**
 * For the manifest: where the data came from, without paths (a site's folders are named
 * after UIDs and a user's folder may be named after the patient).
 */
export function describeSource(s: ExportSource): string {
  if (s.kind === 'site') return 'the site archive';
  if (s.kind === 'folder') return 'a folder of DICOM files';
  return s.describe;
}

/** The input files of an export (streamed) and how many; throws SourceError (permanent when the study is not there). */
export async function collectInputs(s: ExportSource, studyUid: string | undefined, pullDir: string): Promise<{ files: AsyncIterable<string> | string[]; total: number }> {
  if (s.kind === 'pacs') {
    const files = await s.pull(pullDir);
    if (files.length === 0) throw new SourceError('the PACS returned no instance of the study', true);
    return { files, total: files.length };
  }
  let dir: string;
  if (s.kind === 'site') {
    if (!studyUid) throw new SourceError('a site export needs the Study Instance UID (an accession number alone needs --from PACS)', true);
    if (!isPathSafeUid(studyUid)) throw new SourceError('the Study Instance UID is not a valid UID', true);
    dir = join(siteLayout(s.site).archive, studyUid);
  } else {
    dir = s.dir;
  }
  let total: number;
  try {
    total = await countFiles(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SourceError(s.kind === 'site' ? 'the study is not in the site archive' : `no such folder: ${dir}`, true);
    }
    throw err;
  }
  if (total === 0) throw new SourceError(s.kind === 'site' ? 'the study folder in the site archive is empty' : `no files in ${dir}`, true);
  return { files: walkFiles(dir), total };
}
