import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every regular file under dir (recursive; symbolic links not followed nor listed), sorted.
 * A missing dir is an error, so a test cannot pass by looking in the wrong place.
 */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort();
}
