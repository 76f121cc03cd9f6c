import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { filesUnder } from '../helpers/files.js';

/** Every .dcm file under dir, sorted, as paths relative to dir. */
export async function listDicom(dir: string): Promise<string[]> {
  return (await filesUnder(dir)).filter((f) => f.endsWith('.dcm')).map((f) => relative(dir, f));
}

/** All files under dir with their bytes, for byte-for-byte comparison. */
export async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of await listDicom(dir)) out.set(f, await readFile(join(dir, f)));
  return out;
}
