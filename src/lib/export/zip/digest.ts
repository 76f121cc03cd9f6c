import { createHash, type Hash } from 'node:crypto';

/**
 * What the writer remembers of each entry for the read-back check, in 12 bytes per entry
 * plus one running hash of the names: the CRC-32 and size of the source data, by position.
 * A list of entry objects would cost a kilobyte or more per entry, which for a 10 GB study
 * of 80,000 instances is most of the memory budget.
 */
export class EntryDigest {
  private crcs = new Uint32Array(1024);
  private sizes: Float64Array = new Float64Array(1024);
  /** Where each entry's data start in the file and how many bytes the MD5 thread CRC'd there. */
  private starts: Float64Array = new Float64Array(1024);
  private lengths: Float64Array = new Float64Array(1024);
  private readonly names: Hash = createHash('sha256');
  private namesDigest?: string;
  count = 0;

  add(name: string, crc: number, size: number, dataStart = -1, checkedLength = 0): void {
    if (this.namesDigest !== undefined) throw new Error('EntryDigest: already finished');
    if (this.count === this.crcs.length) {
      const crcs = new Uint32Array(this.count * 2);
      crcs.set(this.crcs);
      this.crcs = crcs;
      this.sizes = grow(this.sizes);
      this.starts = grow(this.starts);
      this.lengths = grow(this.lengths);
    }
    this.crcs[this.count] = crc >>> 0;
    this.sizes[this.count] = size;
    this.starts[this.count] = dataStart;
    this.lengths[this.count] = checkedLength;
    this.count++;
    this.names.update(name).update('\0');
  }

  crc(i: number): number {
    return this.crcs[i]!;
  }

  size(i: number): number {
    return this.sizes[i]!;
  }

  /** Where entry i's data start (-1: unknown). */
  dataStart(i: number): number {
    return this.starts[i]!;
  }

  /** How many bytes from dataStart(i) were CRC'd as read back (see ZipResult.diskCrcs). */
  checkedLength(i: number): number {
    return this.lengths[i]!;
  }

  /** The hash of every name in order (fixed once asked for). */
  namesHash(): string {
    this.namesDigest ??= this.names.digest('hex');
    return this.namesDigest;
  }
}

function grow(a: Float64Array): Float64Array {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/** The same running hash, computed by the verifier over the names it reads. */
export function namesHasher(): { add(name: string): void; hex(): string } {
  const h = createHash('sha256');
  return {
    add: (name) => void h.update(name).update('\0'),
    hex: () => h.digest('hex'),
  };
}
