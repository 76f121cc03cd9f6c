import { readFileSync, statSync } from 'node:fs';
import { UsageError } from '../errors.js';

/**
 * The per-project secret behind every keyed pseudonym (UIDs, derived patient IDs, date
 * offsets). Lose it and later studies of a patient no longer line up with earlier ones;
 * leak it and the pseudonyms can be recomputed from guessed originals. Make one with
 * `openssl rand -hex 32 > project.key; chmod 600 project.key`.
 */
export interface Secret {
  bytes: Buffer;
  file: string;
  /** Set when the file can be read by other users (the command warns). */
  worldReadable: boolean;
}

export const MIN_SECRET_BYTES = 16;

export function loadSecret(file: string): Secret {
  let raw: Buffer;
  let mode: number;
  try {
    mode = statSync(file).mode;
    raw = readFileSync(file);
  } catch (err) {
    throw new UsageError(`secret file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message} (make one with: openssl rand -hex 32 > ${file}; chmod 600 ${file})`);
  }
  // A trailing newline from `echo` or an editor is not part of the secret.
  const bytes = Buffer.from(raw.toString('latin1').replace(/[\r\n]+$/, ''), 'latin1');
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new UsageError(`secret file ${file}: ${bytes.length} bytes is too short; at least ${MIN_SECRET_BYTES} (use: openssl rand -hex 32 > ${file})`);
  }
  return { bytes, file, worldReadable: (mode & 0o004) !== 0 };
}
