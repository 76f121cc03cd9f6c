import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeJsonAtomic } from './atomic.js';
import { sanitizePathPart } from './sanitize.js';

export interface QuarantineRecord {
  /** Where the bytes are now. */
  path: string;
  reason: string;
}

/**
 * Move a bad file into quarantine/ beside a <name>.reason.json. The name is made unique and
 * safe; the original name is recorded in the reason file, not trusted as a path.
 * With `copy` the source stays where it was (for files the caller does not own).
 */
export async function quarantineFile(
  quarantineDir: string,
  source: string,
  reason: string,
  details: Record<string, unknown> = {},
  copy = false,
): Promise<QuarantineRecord> {
  await mkdir(quarantineDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const name = `${stamp}_${randomBytes(3).toString('hex')}_${sanitizePathPart(basename(source), 'file', 100)}`;
  const target = join(quarantineDir, name);
  if (copy) {
    await copyFile(source, target);
  } else {
    try {
      await rename(source, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await copyFile(source, target);
      await rm(source, { force: true });
    }
  }
  await writeJsonAtomic(`${target}.reason.json`, {
    reason,
    original: source,
    time: new Date().toISOString(),
    ...details,
  });
  return { path: target, reason };
}
