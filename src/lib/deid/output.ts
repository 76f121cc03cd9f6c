import { bufferSizeFor } from '../dicom/file-thread.js';
import type { ByteSink } from '../dicom/write.js';

/**
 * Buffers reused from file to file. A batch of thousands of small files allocating a fresh
 * buffer per file leaves garbage outside the JavaScript heap faster than the collector looks
 * at it (hundreds of MB); with a pool, memory is the buffers of the files in flight.
 */

export class BufferPool {
  private readonly free: Buffer[] = [];
  /**
   * `shared`: buffers over SharedArrayBuffers, which another thread (the output writer) sees
   * without a copy when they are posted to it.
   */
  constructor(
    private readonly minSize: number,
    private readonly keep = 32,
    private readonly shared = false,
  ) {}

  acquire(size: number): Buffer {
    let smallest = -1;
    for (let k = this.free.length - 1; k >= 0; k--) {
      if (this.free[k]!.length >= size) return this.free.splice(k, 1)[0]!;
      if (smallest < 0 || this.free[k]!.length < this.free[smallest]!.length) smallest = k;
    }
    // None fits: the smallest free buffer goes (the new one takes its place), so the pool
    // does not grow by one buffer per file in flight each time the files get a little
    // larger. Kept, they never served again: 983 KB inputs just above a rounding step (the
    // second half of a batch) allocated 48 more buffers beside the 48 too small ones, 96 MB
    // of input buffers for 48 files in flight.
    if (smallest >= 0) this.free.splice(smallest, 1);
    // Rounded up, with room to spare: files of a batch differ by a few bytes, and a buffer
    // sized to one exactly would not serve the next one a little larger (a new allocation
    // per file, the old one left to a collector that, in an I/O thread which allocates
    // little, seldom runs).
    const n = Math.max(bufferSizeFor(size), this.minSize);
    return this.shared ? Buffer.from(new SharedArrayBuffer(n)) : Buffer.allocUnsafe(n);
  }

  release(b: Buffer): void {
    if (this.free.length < this.keep) {
      this.free.push(b);
      return;
    }
    // Full: keep the larger buffers (small ones left from the first files would otherwise
    // crowd out the ones the batch needs, and every file would allocate again).
    let smallest = 0;
    for (let k = 1; k < this.free.length; k++) if (this.free[k]!.length < this.free[smallest]!.length) smallest = k;
    if (this.free[smallest]!.length < b.length) this.free[smallest] = b;
  }
}

/**
 * The core's synchronous byte sink, copying what it is given into one pooled buffer (for
 * outputs small enough to check in memory). Copying is not optional for accept(): the
 * pieces may be views of a block the core reuses for the next file. What comes through
 * keep() (the pixel data value, a view of the caller's input buffer, valid while the
 * caller holds it) is kept by reference: the output is then its parts, not one buffer.
 * Call release() when the bytes are no longer needed.
 */
export class MemorySink implements ByteSink {
  private buf: Buffer;
  /** Bytes copied into buf. */
  private used = 0;
  /** Pieces kept by reference, and where in buf's bytes they go. */
  private readonly kept: Array<{ at: number; bytes: Uint8Array }> = [];
  /** The output's length (copied and kept). */
  size = 0;

  /** `expected`: about how many bytes will come (the input's size), to allocate once. */
  constructor(
    private readonly pool: BufferPool,
    expected: number,
  ) {
    this.buf = pool.acquire(expected + 16 * 1024);
  }

  accept(chunk: Uint8Array): void {
    if (this.used + chunk.length > this.buf.length) {
      const bigger = this.pool.acquire(Math.max(this.buf.length * 2, this.used + chunk.length));
      this.buf.copy(bigger, 0, 0, this.used);
      this.pool.release(this.buf);
      this.buf = bigger;
    }
    this.buf.set(chunk, this.used);
    this.used += chunk.length;
    this.size += chunk.length;
  }

  keep(bytes: Uint8Array): void {
    this.kept.push({ at: this.used, bytes });
    this.size += bytes.length;
  }

  /**
   * The output in order: views of the pooled buffer and the pieces kept by reference (valid
   * until release(), and while the kept pieces' owner holds them). One part when nothing was
   * kept; no empty last part after a kept piece (the pixel data usually ends the file, and
   * an empty piece costs the writer one more system call: libuv writes it alone).
   */
  parts(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let from = 0;
    for (const k of this.kept) {
      out.push(this.buf.subarray(from, k.at), k.bytes);
      from = k.at;
    }
    if (this.kept.length === 0 || this.used > from) out.push(this.buf.subarray(from, this.used));
    return out;
  }

  release(): void {
    this.pool.release(this.buf);
  }
}
