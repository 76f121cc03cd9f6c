import { describe, expect, it } from 'vitest';
import { BufferPool, MemorySink } from '../../src/lib/deid/output.js';

describe('BufferPool', () => {
  it('serves the next file of a batch, a few bytes larger, with the buffer the last one gave back', () => {
    const pool = new BufferPool(32 * 1024, 4, true);
    const a = pool.acquire(134_358);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    pool.release(a);
    expect(pool.acquire(134_430)).toBe(a);
  });

  it('when full, keeps the larger buffers rather than the small ones of the first files', () => {
    const pool = new BufferPool(1024, 2);
    const small = [pool.acquire(1000), pool.acquire(1000)];
    const big = pool.acquire(200_000);
    for (const s of small) pool.release(s);
    pool.release(big);
    expect(pool.acquire(150_000)).toBe(big);
  });
});

describe('MemorySink', () => {
  const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
  const joined = (parts: Uint8Array[]): number[] => parts.flatMap((p) => [...p]);

  it('gives the output in order: one part, or the kept piece between the bytes around it, with no empty last part', () => {
    const pool = new BufferPool(64);
    const plain = new MemorySink(pool, 8);
    plain.accept(bytes(1, 2));
    expect(plain.parts().map((p) => p.length)).toEqual([2]);

    const last = new MemorySink(pool, 8);
    last.accept(bytes(1, 2));
    last.keep(bytes(9, 9, 9));
    expect(last.parts().map((p) => p.length)).toEqual([2, 3]);
    expect(joined(last.parts())).toEqual([1, 2, 9, 9, 9]);
    expect(last.size).toBe(5);

    const middle = new MemorySink(pool, 8);
    middle.accept(bytes(1));
    middle.keep(bytes(9));
    middle.accept(bytes(3, 4));
    expect(joined(middle.parts())).toEqual([1, 9, 3, 4]);
    expect(middle.parts()).toHaveLength(3);

    const empty = new MemorySink(pool, 8);
    expect(empty.parts()).toHaveLength(1);
  });
});

describe('BufferPool, files growing past its buffers', () => {
  const isOneOf = (b: Buffer, list: Buffer[]): boolean => list.some((x) => x === b);

  it('drops a free buffer too small for the file (the pool does not grow by the files in flight each time they get larger)', () => {
    const pool = new BufferPool(32 * 1024, 64);
    const inFlight = 8;
    const first = Array.from({ length: inFlight }, () => pool.acquire(982_814));
    for (const b of first) pool.release(b);
    const later = Array.from({ length: inFlight }, () => pool.acquire(1_100_000));
    for (const b of later) {
      expect(isOneOf(b, first)).toBe(false);
      pool.release(b);
    }
    // Only the larger buffers are left: the next files take them, none is allocated, and a
    // small file gets one of them too.
    const again = Array.from({ length: inFlight }, () => pool.acquire(1_100_000));
    expect(again.every((b) => isOneOf(b, later))).toBe(true);
    expect(new Set(again).size).toBe(inFlight);
    for (const b of again) pool.release(b);
    // Nothing of the first, too small buffers is kept.
    const all = Array.from({ length: 2 * inFlight }, () => pool.acquire(1));
    expect(all.some((b) => isOneOf(b, first))).toBe(false);
  });

  it('serves files a few bytes past a 16 KB step with the buffers of the files before them', () => {
    const pool = new BufferPool(32 * 1024, 64);
    const a = pool.acquire(982_814);
    pool.release(a);
    expect(pool.acquire(983_296)).toBe(a);
  });
});
