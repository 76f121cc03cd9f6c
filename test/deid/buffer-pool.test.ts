import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/lib/deid/output.js';

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
