import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir } from './fsync-dir.js';

// In its own module (no node:crypto there, for the DICOM file thread); re-exported for the callers that import it from here.
export { fsyncDir };

/** A temporary name beside the target, hidden, so no reader mistakes it for a finished file. */
export function tempNameFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Write a new file and fsync it; on failure nothing is left behind. */
export async function writeSyncedFile(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(path, { force: true });
    throw err;
  }
  await fh.close();
}

/**
 * Write a whole file atomically: temp name, fsync, rename, fsync of the folder.
 * A crash leaves either the old file or the new one, never half of one.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const syncFolder = await writeFileVisible(target, data, options);
  await syncFolder();
}

/**
 * writeFileAtomic with the folder fsync left to the caller (returned), for a caller that
 * must act right after the file becomes visible (detect-study writes its event then).
 */
export async function writeFileVisible(target: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<() => Promise<void>> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempNameFor(target);
  await writeSyncedFile(tmp, data, options.mode);
  try {
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return () => fsyncDir(dirname(target));
}

export async function writeJsonAtomic(target: string, value: unknown): Promise<void> {
  await writeFileAtomic(target, `${JSON.stringify(value, null, 2)}\n`);
}

/** Move a finished file into place (same filesystem), creating the folder and syncing it. */
export async function publish(tmp: string, target: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  await rename(tmp, target);
  await fsyncDir(dirname(target));
}
