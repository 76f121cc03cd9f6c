import { describe, expect, it } from 'vitest';
import { decodeText, encodeText } from '../../src/lib/dicom/charset.js';
import { encodeValue, encodeValueFor, formatDS } from '../../src/lib/dicom/encode.js';
import { CHARSET_EXAMPLES } from './fixtures.js';

const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

describe('encodeValue padding rules (PS3.5 6.2)', () => {
  it('pads UI with NUL and other text with space, to even length', () => {
    expect(text(encodeValue('UI', '1.2.3'))).toBe('1.2.3\0');
    expect(text(encodeValue('UI', '1.2.34'))).toBe('1.2.34');
    expect(text(encodeValue('LO', 'abc'))).toBe('abc ');
    expect(text(encodeValue('PN', 'Doe^John'))).toBe('Doe^John');
    expect(text(encodeValue('CS', ['ORIGINAL', 'PRIMARY']))).toBe('ORIGINAL\\PRIMARY');
    expect(text(encodeValue('OB', new Uint8Array([1, 2, 3])))).toBe('\x01\x02\x03\0');
    expect(text(encodeValue('UN', new Uint8Array([9])))).toBe('\x09\0');
    expect(encodeValue('LO', '').length).toBe(0);
  });

  it('writes numbers little endian by default, big endian on request', () => {
    expect([...encodeValue('US', 0x0102)]).toEqual([0x02, 0x01]);
    expect([...encodeValueFor('US', 0x0102, { charsets: [], littleEndian: false })]).toEqual([0x01, 0x02]);
    expect([...encodeValue('SS', -2)]).toEqual([0xfe, 0xff]);
    expect([...encodeValue('UL', [1, 2])]).toEqual([1, 0, 0, 0, 2, 0, 0, 0]);
    expect(Buffer.from(encodeValue('FD', 1.5)).readDoubleLE(0)).toBe(1.5);
    expect(Buffer.from(encodeValue('FL', 0.25)).readFloatLE(0)).toBe(0.25);
    expect([...encodeValue('AT', '(0020,0032)')]).toEqual([0x20, 0x00, 0x32, 0x00]);
    expect([...encodeValue('US', '3\\4')]).toEqual([3, 0, 4, 0]);
  });

  it('formats IS and DS as DICOM text', () => {
    expect(text(encodeValue('IS', 42))).toBe('42');
    expect(text(encodeValue('DS', [1.5, -0.25]))).toBe('1.5\\-0.25 ');
    expect(formatDS(Math.PI)).toBe('3.14159265358979');
    expect(formatDS(Math.PI).length).toBeLessThanOrEqual(16);
    expect(formatDS(1e-20).length).toBeLessThanOrEqual(16);
    expect(Number(formatDS(123456789.123456789))).toBeCloseTo(123456789.123456789, 4);
    expect(() => encodeValue('IS', 1.5)).toThrow(/not an integer/);
  });

  it('refuses values a VR cannot hold', () => {
    expect(() => encodeValue('UI', '1.2.abc')).toThrow(/not a UID/);
    expect(() => encodeValue('CS', 'x'.repeat(17))).toThrow(/longer than 16/);
    expect(() => encodeValue('LO', 'a\\b')).toThrow(/backslash/);
    expect(() => encodeValue('SQ', 'x')).toThrow(/sequence/);
  });
});

describe('character sets', () => {
  for (const [name, ex] of Object.entries(CHARSET_EXAMPLES)) {
    it(`${name}: decodes the PS3.5 bytes and encodes back to text that decodes the same`, () => {
      const charsets = ex.charset.split('\\');
      expect(decodeText(ex.bytes, 0, ex.bytes.length, charsets, 'PN')).toBe(ex.text);
      const enc = encodeText(ex.text, charsets);
      expect(decodeText(enc, 0, enc.length, charsets, 'PN')).toBe(ex.text);
    });
  }

  it('encodes Japanese with JIS X 0208 escapes and returns to ASCII', () => {
    const b = Buffer.from(encodeText('Yamada^Tarou=山田^太郎', ['', 'ISO 2022 IR 87']));
    expect(b.toString('latin1')).toBe(`Yamada^Tarou=\u001b$B;3ED\u001b(B^\u001b$BB@O:\u001b(B`);
  });

  it('refuses text the character set cannot hold', () => {
    expect(() => encodeText('Müller', [])).not.toThrow(); // default repertoire: latin1 is accepted by readers
    expect(() => encodeText('王', ['ISO_IR 100'])).toThrow(/cannot be encoded/);
    expect(() => encodeText('王', ['', 'ISO 2022 IR 87'])).not.toThrow();
    expect(() => encodeText('홍', ['', 'ISO 2022 IR 87'])).toThrow(/cannot be encoded/);
  });
});
