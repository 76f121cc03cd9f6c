import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir, tempNameFor, writeFileAtomic, writeSyncedFile } from '../site/atomic.js';
import { readTextIfExists } from '../site/if-exists.js';

/**
 * Files only the gateway may read (keys, pseudonym mappings): folder 0700, file 0600,
 * written with temp name + fsync + rename like every other state file.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

export async function writePrivateFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await ensurePrivateDir(dirname(target));
  await writeFileAtomic(target, data, { mode: 0o600 });
}

/** Read a secret key file, creating it (32 random bytes, hex) on first use. */
export async function loadOrCreateKey(path: string): Promise<Buffer> {
  const read = async (): Promise<Buffer | undefined> => {
    const text = (await readTextIfExists(path))?.trim();
    if (text === undefined) return undefined;
    if (!/^[0-9a-f]{64}$/.test(text)) throw new Error(`${path} is not a 64-digit hex key`);
    return Buffer.from(text, 'hex');
  };
  const existing = await read();
  if (existing) return existing;
  await ensurePrivateDir(dirname(path));
  const tmp = tempNameFor(path);
  await writeSyncedFile(tmp, `${randomBytes(32).toString('hex')}\n`, 0o600);
  try {
    // link() fails when the key exists: two first runs at once agree on one key.
    await link(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  const key = await read();
  if (!key) throw new Error(`cannot create the key ${path}`);
  return key;
}
