import { describe, expect, it } from 'vitest';
import { type Needle, findNeedle } from '../../src/lib/deid/leak.js';

/** The plain search (every needle, every occurrence, written out again): what findNeedle must agree with. */
function reference(haystack: string, needles: Needle[], base = 0): { label: string; offset: number } | undefined {
  const w = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2e || c >= 0xc0;
  for (const n of needles) {
    const ws = w(n.text.charCodeAt(0));
    const we = w(n.text.charCodeAt(n.text.length - 1));
    for (let at = haystack.indexOf(n.text); at >= 0; at = haystack.indexOf(n.text, at + 1)) {
      if ((!ws || !w(haystack.charCodeAt(at - 1))) && (!we || !w(haystack.charCodeAt(at + n.text.length)))) return { label: n.label, offset: base + at };
    }
  }
  return undefined;
}

/** A small seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('leak check search', () => {
  it('finds exactly what searching every needle finds (random haystacks and needles, words and not)', () => {
    const r = rng(12345);
    // Few letters, so that needles occur often, inside words and as whole words.
    const alphabet = ['a', 'b', '1', '2', '.', ' ', '^', '-', '\0', 'é', 'ÿ', '+'];
    const pick = (n: number): string => Array.from({ length: n }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
    let hits = 0;
    for (let round = 0; round < 3000; round++) {
      const haystack = pick(Math.floor(r() * 200));
      const needles = Array.from({ length: 1 + Math.floor(r() * 14) }, (_, k) => {
        // Half the needles cut from the haystack (so they occur), half made up.
        const start = Math.floor(r() * haystack.length);
        const text = r() < 0.5 && haystack.length > 0 ? haystack.slice(start, start + 1 + Math.floor(r() * 6)) : pick(1 + Math.floor(r() * 5));
        return { label: `n${k}`, text };
      });
      const want = reference(haystack, needles, 7);
      expect(findNeedle(haystack, needles, 7), JSON.stringify({ haystack, needles: needles.map((n) => n.text) })).toEqual(want);
      if (want) hits++;
    }
    // Both outcomes were exercised plenty.
    expect(hits).toBeGreaterThan(300);
    expect(hits).toBeLessThan(2700);
  });
});
