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
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}
