import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { AnonymizeResult, Anonymizer } from '../../src/lib/deid/anonymizer.js';
import { nextOrStop, runBatch } from '../../src/lib/deid/batch.js';
import type { InputUnit } from '../../src/lib/deid/inputs.js';
import { UID_CACHE_GENERATION, createUidMapper } from '../../src/lib/deid/uids.js';
import { defaultProjectRules } from '../../src/lib/deid/project.js';

/**
 * Memory must not grow with the batch (issue #5): what the batch loop and the UID mapper keep
 * per file must be gone once the file is done. The anonymizer here is a stand-in that
 * answers at once: what is under test is the batch's own bookkeeping (the real anonymizer's
 * memory is measured by bench/anonymize.bench.mjs on 4,000 vs 40,000 files).
 */

// A full collection on demand, to see what the batch still holds.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function answering(onFile: (path: string) => void): Anonymizer {
  return {
    rules: defaultProjectRules('test'),
    async anonymizeFile(input: string): Promise<AnonymizeResult> {
      onFile(input);
      return { status: 'quarantined', source: input, reason: 'test' };
    },
  };
}

describe('batch memory', () => {
  it('keeps no finished input unit alive while the batch goes on (a signal is given, as fiona-anonymize does)', async () => {
    const total = 3000;
    const early: WeakRef<object>[] = [];
    async function* units(): AsyncGenerator<InputUnit> {
      for (let k = 0; k < total; k++) {
        // A unit and its path as the walker makes them: each a new object and string.
        const u: InputUnit = { kind: 'file', path: `/in/${k}/${'x'.repeat(40)}.dcm` };
        if (k < 500 && k % 10 === 0) early.push(new WeakRef(u));
        // A walker waits for the disk now and then: the event loop turns (and V8 lets go
        // of the objects a WeakRef was just made for only between turns).
        if (k % 100 === 0) await new Promise((r) => setImmediate(r));
        yield u;
      }
    }
    const stop = new AbortController();
    let alive = -1;
    let listenersMidway = -1;
    let seen = 0;
    const anonymizer = answering(() => {
      seen++;
      if (seen === total - 100) {
        // Well after the early units were done: none may still be reachable.
        gc();
        alive = early.filter((w) => w.deref() !== undefined).length;
        listenersMidway = getEventListeners(stop.signal, 'abort').length;
      }
    });
    const summary = await runBatch(units(), { anonymizer, outDir: '/nowhere', inFlight: 16, signal: stop.signal, onOutcome: () => {} });
    expect(summary.quarantined).toBe(total);
    expect(early.length).toBe(50);
    // Before the fix every unit stayed reachable (a reaction per unit on a promise that never settled).
    expect(alive).toBe(0);
    // At most the one listener of the unit being waited for.
    expect(listenersMidway).toBeLessThanOrEqual(1);
    expect(getEventListeners(stop.signal, 'abort').length).toBe(0);
  });

  it('nextOrStop gives "stop" at the abort while the iterator still waits, and leaves no listener behind', async () => {
    const stop = new AbortController();
    let release: () => void = () => {};
    const hanging: AsyncIterator<number> = {
      next: () => new Promise<IteratorResult<number>>((resolve) => (release = () => resolve({ value: 1, done: false }))),
    };
    const p = nextOrStop(hanging, stop.signal);
    expect(getEventListeners(stop.signal, 'abort').length).toBe(1);
    stop.abort();
    await expect(p).resolves.toBe('stop');
    release();
    await new Promise((r) => setImmediate(r));
    expect(getEventListeners(stop.signal, 'abort').length).toBe(0);
    // Already aborted: no wait at all.
    await expect(nextOrStop(hanging, stop.signal)).resolves.toBe('stop');

    const fresh = new AbortController();
    const items = [1, 2, 3][Symbol.iterator]();
    const it: AsyncIterator<number> = { next: async () => items.next() };
    const got: number[] = [];
    for (;;) {
      const r = await nextOrStop(it, fresh.signal);
      if (r === 'stop' || r.done) break;
      got.push(r.value);
    }
    expect(got).toEqual([1, 2, 3]);
    expect(getEventListeners(fresh.signal, 'abort').length).toBe(0);
  });

  it('a UID maps the same however many UIDs came between (the bounded cache rotates, the answers do not change)', () => {
    const secret = Buffer.from('0123456789abcdef0123456789abcdef');
    const a = createUidMapper(secret, 'P1');
    const study = '1.2.826.0.1.3680043.8.498.1';
    const first = a.map(study);
    const n = UID_CACHE_GENERATION * 3 + 7;
    const firstPass: string[] = [];
    for (let k = 0; k < n; k++) {
      firstPass.push(a.map(`1.2.826.0.1.3680043.8.498.2.${k}`));
      // The study's UID comes back between the instances, as in a real batch.
      if (k % 100 === 0) expect(a.map(study)).toBe(first);
    }
    const fresh = createUidMapper(secret, 'P1');
    for (let k = n - 1; k >= 0; k -= 97) expect(a.map(`1.2.826.0.1.3680043.8.498.2.${k}`)).toBe(fresh.map(`1.2.826.0.1.3680043.8.498.2.${k}`));
    expect(new Set(firstPass).size).toBe(n);
    expect(fresh.map(study)).toBe(first);
  });
});

describe('batch bytes in flight', () => {
  /** Files of `size` bytes answered after a timer; the most ever in flight at once. */
  async function mostInFlight(size: number, inFlightBytes: number | undefined): Promise<{ most: number; mostAfterFirst: number }> {
    let running = 0;
    let most = 0;
    let mostAfterFirst = 0;
    let doneOnce = false;
    const anonymizer: Anonymizer = {
      rules: defaultProjectRules('test'),
      async anonymizeFile(input: string): Promise<AnonymizeResult> {
        running++;
        most = Math.max(most, running);
        if (doneOnce) mostAfterFirst = Math.max(mostAfterFirst, running);
        await new Promise((r) => setTimeout(r, 1));
        running--;
        doneOnce = true;
        const ids = { study: '1.2', series: '1.2.3', sop: input };
        return { status: 'anonymized', source: input, path: input, ...ids, original: ids, bytes: size, warnings: [] };
      },
    };
    async function* units(): AsyncGenerator<InputUnit> {
      for (let k = 0; k < 200; k++) yield { kind: 'file', path: `/in/${k}.dcm` };
    }
    const summary = await runBatch(units(), { anonymizer, outDir: '/nowhere', inFlight: 48, inFlightBytes, onOutcome: () => {} });
    expect(summary.anonymized).toBe(200);
    return { most, mostAfterFirst };
  }

  it('holds fewer large files in flight: 32 MB of 1 MB files is 32, and the first ones are 16 at most', async () => {
    const r = await mostInFlight(1024 * 1024, 32 * 1024 * 1024);
    expect(r.most).toBeLessThanOrEqual(32);
    expect(r.mostAfterFirst).toBe(32);
  });

  it('keeps the file count for small files, and at least 4 files for huge ones', async () => {
    expect((await mostInFlight(130 * 1024, 32 * 1024 * 1024)).mostAfterFirst).toBe(48);
    expect((await mostInFlight(64 * 1024 * 1024, 32 * 1024 * 1024)).mostAfterFirst).toBe(4);
    expect((await mostInFlight(64 * 1024 * 1024, undefined)).most).toBe(48);
  });
});
