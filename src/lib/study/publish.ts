import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir, tempNameFor } from '../site/atomic.js';

/**
 * An atomic write whose folder sync is left to the caller. The manifest is the record that
 * a study was reported; the event is written right after the rename and the folder synced
 * after that, so a kill -9 cannot fall between "manifest visible" and "event written" for
 * longer than two system calls (a folder fsync can take milliseconds).
 */
export async function writeVisible(target: string, text: string): Promise<() => Promise<void>> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempNameFor(target);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return () => fsyncDir(dirname(target));
}
