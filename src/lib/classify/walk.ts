import { lstat, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Files under the given paths, for backfill: folders are walked depth-first in name order;
 * hidden names (in-flight temp files) and symlinks are skipped (raw/ and participants/ are
 * link trees; following them would classify a file twice), as are the `skip` folders.
 */
export async function* walkFiles(paths: string[], skip: ReadonlySet<string> = new Set()): AsyncGenerator<string> {
  for (const p of paths) yield* walkOne(resolve(p), skip, true);
}

async function* walkOne(path: string, skip: ReadonlySet<string>, top: boolean): AsyncGenerator<string> {
  if (skip.has(path)) return;
  let st;
  try {
    st = await lstat(path);
  } catch {
    if (top) yield path; // let the caller report the missing file
    return;
  }
  if (st.isFile()) {
    yield path;
    return;
  }
  if (!st.isDirectory()) return;
  const names = (await readdir(path)).filter((n) => !n.startsWith('.')).sort();
  for (const n of names) yield* walkOne(join(path, n), skip, false);
}
