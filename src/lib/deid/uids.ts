import { createHmac } from 'node:crypto';
import { isValidUid } from '../dicom/uid.js';
import { UsageError } from '../errors.js';

/**
 * Keyed, repeatable UID pseudonyms. A new UID is derived from the original with
 * HMAC-SHA256 under the project's secret (and the project's name, so two projects that
 * share a secret by mistake still get different UIDs). The same UID, secret and project
 * give the same new UID in any later run, on any machine; without the secret nobody can
 * recompute the mapping from a guessed original (which plain hashing, as CTP and dcm4che
 * do, allows).
 *
 * Form: `2.25.` + the decimal of a 128-bit UUID built from the HMAC (PS3.5 B.2; version 8,
 * "custom", RFC 9562), at most 44 characters; or, with a project UID root, the root + "."
 * + as many decimal digits of the HMAC as fit in 64 characters.
 */
export interface UidMapper {
  map(uid: string): string;
  readonly root?: string;
}

/** A root must leave room for at least this many digits (about 80 bits). */
const MIN_DIGITS = 24;

export function checkUidRoot(root: string): string {
  const r = root.trim().replace(/\.$/, '');
  if (!isValidUid(r)) throw new UsageError(`uidRoot: not a valid UID root: ${JSON.stringify(root)}`);
  if (r.length > 64 - 1 - MIN_DIGITS) {
    throw new UsageError(`uidRoot: ${r} is too long (${r.length} characters); at most ${64 - 1 - MIN_DIGITS} leave room for ${MIN_DIGITS} digits of the keyed hash`);
  }
  return r;
}

/** Entries per generation of the UID cache (at most twice this many are held: well under 1 MB). */
export const UID_CACHE_GENERATION = 2048;

export function createUidMapper(secret: Uint8Array, project: string, root?: string): UidMapper {
  const checkedRoot = root === undefined ? undefined : checkUidRoot(root);
  // Two generations of a bounded cache: the UIDs that repeat (study, series, frame of
  // reference: thousands of files each) stay in it, the SOP Instance UIDs (each seen once)
  // pass through. One unbounded-until-100,000 map held every SOP UID of a batch: about
  // 200 bytes each, 19 MB at 100,000 files, memory that grew with the input.
  let cache = new Map<string, string>();
  let previous = new Map<string, string>();
  const digest = (uid: string): Buffer =>
    createHmac('sha256', secret).update('fiona-uid\0').update(project).update('\0').update(uid).digest();
  return {
    root: checkedRoot,
    map(uid: string): string {
      // Padding (NUL or space) is not part of the UID; an original with and without it is one UID.
      // Decoded UIDs come trimmed: a printable character at both ends leaves nothing to strip.
      const key = isBare(uid) ? uid : uid.replace(/[\0 ]+$/, '').trim();
      let out = cache.get(key);
      if (out !== undefined) return out;
      out = previous.get(key);
      if (out === undefined) {
        const h = digest(key);
        out = checkedRoot === undefined ? uuidUid(h) : rootedUid(checkedRoot, h);
      }
      if (cache.size >= UID_CACHE_GENERATION) {
        previous = cache;
        cache = new Map();
      }
      cache.set(key, out);
      return out;
    },
  };
}

/** Whether a UID starts and ends with a printable ASCII character (nothing for trim or the padding rule to remove). */
function isBare(uid: string): boolean {
  const first = uid.charCodeAt(0);
  const last = uid.charCodeAt(uid.length - 1);
  return first > 0x20 && first < 0x7f && last > 0x20 && last < 0x7f;
}

/** 2.25.<decimal of a version-8 UUID made of the first 16 bytes of the hash>. */
export function uuidUid(hash: Uint8Array): string {
  const b = Buffer.from(hash.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x80; // version 8
  b[8] = (b[8]! & 0x3f) | 0x80; // variant 10
  return `2.25.${BigInt(`0x${b.toString('hex')}`).toString(10)}`;
}

/** root.<digits>: the whole 256-bit hash in decimal, cut to fit 64 characters (never a leading zero). */
export function rootedUid(root: string, hash: Uint8Array): string {
  const digits = BigInt(`0x${Buffer.from(hash).toString('hex')}`).toString(10);
  const room = 64 - root.length - 1;
  return `${root}.${digits.slice(0, room).replace(/^0+/, '') || '1'}`;
}
