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
