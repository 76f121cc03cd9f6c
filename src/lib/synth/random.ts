import { createHash } from 'node:crypto';

/**
 * Everything fiona-synth writes is derived from the seed through these functions, never
 * from the clock or Math.random, so the same options give byte-identical files.
 * Each value is keyed by a path of parts (seed, patient, study, ...), so adding a series
 * does not change the patients or studies generated before it.
 */

function digest(parts: ReadonlyArray<string | number>): Buffer {
  // NUL separates the parts so ("1", "23") and ("12", "3") differ.
  return createHash('sha256').update(parts.join('\u0000')).digest();
}

/** A 32-bit unsigned hash of the parts. */
export function hash32(...parts: Array<string | number>): number {
  return digest(parts).readUInt32BE(0);
}

/**
 * A DICOM UID under the 2.25 root (ISO/IEC 9834-8: a UUID written as one decimal integer).
 * The 128 bits come from the hash, with the UUID version set to 8 (custom) and the RFC 4122
 * variant, so the UID is a well-formed UUID. At most 2.25. + 39 digits = 44 characters.
 */
export function uidFor(...parts: Array<string | number>): string {
  const b = Buffer.from(digest(['uid', ...parts]).subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${b.toString('hex')}`).toString(10)}`;
}

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG; plenty for synthetic headers. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A string of n decimal digits, the first one not zero. */
  digits(n: number): string {
    let s = String(this.int(1, 9));
    for (let i = 1; i < n; i++) s += String(this.int(0, 9));
    return s;
  }
}

/** A generator keyed by the parts (e.g. seed, 'patient', 3). */
export function rngFor(...parts: Array<string | number>): Rng {
  return new Rng(hash32(...parts));
}
