import { lstat, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Files under the given paths, for backfill: folders are walked depth-first in name order;
 * hidden names (in-flight temp files) and symlinks are skipped (raw/ and participants/ are
 * link trees; following them would classify a file twice), as are the `skip` folders.
 * Entry types come from readdir, so a folder of 10,000 files costs one call, not 10,000 lstats.
 */
export async function* walkFiles(paths: string[], skip: ReadonlySet<string> = new Set()): AsyncGenerator<string> {
  for (const p of paths) {
    const abs = resolve(p);
    if (skip.has(abs)) continue;
    let st;
    try {
      st = await lstat(abs);
    } catch {
      yield abs; // let the caller report the missing file
      continue;
    }
    if (st.isFile()) yield abs;
    else if (st.isDirectory()) yield* walkDir(abs, skip);
  }
}

async function* walkDir(dir: string, skip: ReadonlySet<string>): AsyncGenerator<string> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (skip.has(path)) continue;
    if (e.isFile()) yield path;
    else if (e.isDirectory()) yield* walkDir(path, skip);
  }
}
