import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * fsync a directory so that a rename into it survives a power cut. In a module of its own,
 * without node:crypto, so the DICOM file thread (dicom/publish.ts) can import it without
 * loading what atomic.ts needs (some 10-20 ms of that thread's start-up).
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, constants.O_RDONLY);
    await fh.sync();
  } catch (err) {
    if (!dirSyncUnsupported(err)) throw err;
  } finally {
    await fh?.close();
  }
}

/**
 * Errors that mean "this file system (or OS) does not sync folders", after which the rename
 * is still atomic and nothing better can be done (PostgreSQL's fsync_fname ignores the same).
 * Any other failure (EIO, EMFILE, a folder gone) is thrown: a file must not be reported
 * durable when its folder's sync failed.
 */
export function dirSyncUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EBADF' || code === 'EISDIR' || code === 'EACCES';
}
