import { describe, expect, it } from 'vitest';
import { encodeText } from '../../src/lib/dicom/charset.js';
import { encodeValueFor } from '../../src/lib/dicom/encode.js';
import { decodeStrings } from '../../src/lib/dicom/values.js';
import { CHARSET_VRS, padByte } from '../../src/lib/dicom/vr.js';

/**
 * Text values are encoded by a loop up to 64 characters and by Buffer's writer above
 * (encode.ts). Both must give what the encoding gave before them: the values joined with
 * backslashes, in the character set for the VRs it applies to (Latin-1 otherwise), padded
 * to even length with NUL for UI and a space for the rest. Lengths cross the 64 boundary.
 */
function reference(vr: string, values: string[], charsets: string[]): Buffer {
  const joined = values.join('\\');
  const bytes = Buffer.from(CHARSET_VRS.has(vr) ? encodeText(joined, charsets) : Buffer.from(joined, 'latin1'));
  return bytes.length % 2 ? Buffer.concat([bytes, Buffer.from([padByte(vr)])]) : bytes;
}

/** Text of `n` characters from `alphabet`, cycled. */
const textOf = (n: number, alphabet: string): string => Array.from({ length: n }, (_, k) => alphabet[k % alphabet.length]).join('');

const CASES: Array<[vr: string, max: number, alphabet: string]> = [
  ['UI', 64, '1.2.3'],
  ['CS', 16, 'ORIGINAL_ 1'],
  ['SH', 16, 'Ab c'],
  ['LO', 64, 'Brain scan '],
  ['PN', 200, 'Doe^Jane='],
  ['LT', 300, 'free text \\ with a backslash '],
  ['UT', 300, 'more text '],
  ['UC', 300, 'unlimited '],
  ['UR', 300, 'http://x/'],
];

describe('text values up to and beyond 64 characters', () => {
  for (const [vr, max, alphabet] of CASES) {
    it(`${vr}: every length, one value and several, as before`, () => {
      for (let n = 0; n <= Math.min(max, 140); n++) {
        // Spaces at either end are the value's own: written as they are.
        const one = n % 3 === 1 && vr !== 'UI' ? ` ${textOf(n - 1, alphabet)}` : textOf(n, alphabet);
        const got = encodeValueFor(vr, one, { charsets: [], littleEndian: true });
        expect(Buffer.from(got).equals(reference(vr, [one], [])), `${vr} ${n}`).toBe(true);
        expect(got.length % 2).toBe(0);
        if (['LT', 'UT', 'UR'].includes(vr)) continue;
        const many = [one, '', textOf(n % 7, alphabet).trim()];
        const got2 = encodeValueFor(vr, many, { charsets: [], littleEndian: true });
        expect(Buffer.from(got2).equals(reference(vr, many, [])), `${vr} ${n} several`).toBe(true);
        // Decoded back: the values, padding removed (an all-empty value is no value).
        const back = decodeStrings(got2, 0, got2.length, vr, { littleEndian: true, charsets: [] });
        expect(back, `${vr} ${n} decoded`).toEqual(many.map((v) => v.trim()));
      }
    });
  }

  it('non-ASCII text: Latin-1 bytes, or the character set where the VR has one', () => {
    for (const n of [1, 2, 63, 64, 65, 66, 100]) {
      const t = textOf(n, 'M\xfcller\xe9 ');
      const sets: Array<[string, string[]]> = [
        ['LO', []], ['LO', ['ISO_IR 100']], ['LO', ['ISO_IR 192']], ['PN', ['ISO_IR 192']], ['UT', ['ISO_IR 192']],
        // No character set applies: each character's low byte, short or long.
        ['CS', ['ISO_IR 192']], ['UR', ['ISO_IR 192']], ['UR', []],
      ];
      for (const [vr, charsets] of sets) {
        if (vr === 'CS' && n > 16) continue;
        if (vr === 'LO' && n > 64) continue;
        const got = encodeValueFor(vr, t, { charsets, littleEndian: true });
        expect(Buffer.from(got).equals(reference(vr, [t], charsets)), `${vr} ${charsets} ${n}`).toBe(true);
      }
    }
  });

  it('decodes a value of padding as no value, and keeps empty values between backslashes', () => {
    const dec = (s: string, vr = 'LO'): string[] => decodeStrings(Buffer.from(s, 'latin1'), 0, s.length, vr, { littleEndian: true, charsets: [] });
    expect(dec('  ')).toEqual([]);
    expect(dec('\0\0', 'UI')).toEqual([]);
    expect(dec('A\\\\B ')).toEqual(['A', '', 'B']);
    expect(dec('\\ ')).toEqual(['', '']);
    expect(dec(' A ')).toEqual(['A']);
    expect(dec(' A\\B ', 'LT')).toEqual([' A\\B']);
    expect(dec('1.2.3\0', 'UI')).toEqual(['1.2.3']);
  });
});
