/**
 * Strict reads for the owner of a file or folder, for whom "not there yet" is normal: only
 * ENOENT means absent; any other failure (permissions, I/O, a file where a folder belongs) is
 * thrown, so that a damaged site is reported instead of looking empty.
 */
import { readdir, readFile } from 'node:fs/promises';

function absent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/** A file's text, or undefined when it does not exist. */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (absent(err)) return undefined;
    throw err;
  }
}

/** A folder's entry names (unsorted), or none when it does not exist. */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (absent(err)) return [];
    throw err;
  }
}

/** Entries of a folder that are not hidden (temp names, locks). */
export async function countEntries(dir: string, suffix?: string): Promise<number> {
  const names = await readdirIfExists(dir);
  return names.filter((n) => !n.startsWith('.') && (suffix === undefined || n.endsWith(suffix))).length;
}
