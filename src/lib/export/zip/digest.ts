import { createHash, type Hash } from 'node:crypto';

/**
 * What the writer remembers of each entry for the read-back check, in 12 bytes per entry
 * plus one running hash of the names: the CRC-32 and size of the source data, by position.
 * A list of entry objects would cost a kilobyte or more per entry, which for a 10 GB study
 * of 80,000 instances is most of the memory budget.
 */
export class EntryDigest {
  private crcs = new Uint32Array(1024);
  private sizes = new Float64Array(1024);
  private readonly names: Hash = createHash('sha256');
  private namesDigest?: string;
  count = 0;

  add(name: string, crc: number, size: number): void {
    if (this.namesDigest !== undefined) throw new Error('EntryDigest: already finished');
    if (this.count === this.crcs.length) {
      const crcs = new Uint32Array(this.count * 2);
      crcs.set(this.crcs);
      this.crcs = crcs;
      const sizes = new Float64Array(this.count * 2);
      sizes.set(this.sizes);
      this.sizes = sizes;
    }
    this.crcs[this.count] = crc >>> 0;
    this.sizes[this.count] = size;
    this.count++;
    this.names.update(name).update('\0');
  }

  crc(i: number): number {
    return this.crcs[i]!;
  }

  size(i: number): number {
    return this.sizes[i]!;
  }

  /** The hash of every name in order (fixed once asked for). */
  namesHash(): string {
    this.namesDigest ??= this.names.digest('hex');
    return this.namesDigest;
  }
}

/** The same running hash, computed by the verifier over the names it reads. */
export function namesHasher(): { add(name: string): void; hex(): string } {
  const h = createHash('sha256');
  return {
    add: (name) => void h.update(name).update('\0'),
    hex: () => h.digest('hex'),
  };
}
