import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** Every .dcm file under dir, sorted, as paths relative to dir. */
export async function listDicom(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.dcm'))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** All files under dir with their bytes, for byte-for-byte comparison. */
export async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of await listDicom(dir)) out.set(f, await readFile(join(dir, f)));
  return out;
}
