import { encodeText } from './charset.js';
import { parseTagText } from './tags.js';
import { CHARSET_VRS, NUMBER_SIZES, padByte, SINGLE_VALUE_VRS, STRING_VRS } from './vr.js';

/**
 * Encoding one value for a VR (PS3.5 6.2): text joined with backslashes and padded to even
 * length (UI with NUL, other text with space), numbers in the dataset's byte order, bytes
 * padded with NUL (OB/UN) as they are.
 */

export type Value = string | string[] | number | number[] | Uint8Array;

/** Longest value of each text VR in bytes (per value), where PS3.5 fixes one. */
const MAX_LENGTH: Record<string, number> = {
  AE: 16, AS: 4, CS: 16, DA: 8, DS: 16, IS: 12, LO: 64, PN: 64 * 5, SH: 16, TM: 14, UI: 64, DT: 26,
};

/** A DS text for a number: at most 16 characters (PS3.5 6.2), exponent form when it must. */
export function formatDS(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`DS value is not a finite number: ${n}`);
  let s = String(n);
  if (s.length <= 16) return s;
  for (let p = 15; p >= 1; p--) {
    s = n.toPrecision(p);
    if (s.includes('e')) s = s.replace(/\.?0+e/, 'e');
    else if (s.includes('.')) s = s.replace(/\.?0+$/, '');
    if (s.length <= 16) return s;
  }
  throw new Error(`DS value cannot be written in 16 characters: ${n}`);
}

function toTexts(vr: string, value: Exclude<Value, Uint8Array>): string[] {
  if (typeof value === 'string') return [value];
  const list: (string | number)[] = Array.isArray(value) ? value : [value];
  return list.map((v) => {
    if (typeof v === 'string') return v;
    if (vr === 'IS') {
      if (!Number.isInteger(v)) throw new Error(`IS value is not an integer: ${v}`);
      return String(v);
    }
    if (vr === 'DS') return formatDS(v);
    return String(v);
  });
}

/** Text as Latin-1 bytes (each UTF-16 unit's low byte, as Buffer.from(text, 'latin1')) padded to even length: one allocation, no copy. */
function latin1Padded(text: string, vr: string): Uint8Array {
  const n = text.length;
  if (n > SHORT_TEXT) {
    const out = Buffer.allocUnsafe(n + (n & 1));
    out.write(text, 0, n, 'latin1');
    if (n & 1) out[n] = padByte(vr);
    return out;
  }
  // Most values are short: a loop costs less than a call into Buffer's native writer.
  const out = new Uint8Array(n + (n & 1));
  for (let k = 0; k < n; k++) out[k] = text.charCodeAt(k) & 0xff;
  if (n & 1) out[n] = padByte(vr);
  return out;
}

/** Values up to this many characters are copied into their bytes by a loop. */
const SHORT_TEXT = 64;

function pad(bytes: Uint8Array, vr: string): Uint8Array {
  if (bytes.length % 2 === 0) return bytes;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = padByte(vr);
  return out;
}

/** Digits and dots only (by char codes: a regular expression per UID cost more than the rest of its encoding). */
function isUidText(t: string): boolean {
  for (let k = 0; k < t.length; k++) {
    const c = t.charCodeAt(k);
    if (c !== 0x2e && (c < 0x30 || c > 0x39)) return false;
  }
  return true;
}

function isAscii(t: string): boolean {
  for (let k = 0; k < t.length; k++) if (t.charCodeAt(k) > 0x7f) return false;
  return true;
}

function checkText(vr: string, texts: string[]): void {
  const max = MAX_LENGTH[vr];
  const single = SINGLE_VALUE_VRS.has(vr);
  for (const t of texts) {
    if (!single && t.includes('\\')) throw new Error(`${vr} value contains a backslash: ${t}`);
    if (vr === 'UI' && t !== '' && !isUidText(t)) throw new Error(`UI value is not a UID: ${t}`);
    // The Latin-1 byte length is the string's length.
    if (max !== undefined && vr !== 'PN' && t.length > max) {
      throw new Error(`${vr} value longer than ${max} characters: ${t}`);
    }
  }
}

function encodeNumbers(vr: string, value: Exclude<Value, Uint8Array>, littleEndian: boolean): Uint8Array {
  const size = NUMBER_SIZES[vr]!;
  const list = (Array.isArray(value) ? value : [value]) as (string | number)[];
  const out = new Uint8Array(size * list.length);
  const dv = new DataView(out.buffer);
  list.forEach((raw, k) => {
    const o = k * size;
    let n: number;
    if (vr === 'AT' && typeof raw === 'string') {
      const t = parseTagText(raw);
      if (t === undefined) throw new Error(`AT value is not a tag: ${raw}`);
      n = t;
    } else {
      n = typeof raw === 'number' ? raw : Number(String(raw).trim());
    }
    if (!Number.isFinite(n)) throw new Error(`${vr} value is not a number: ${String(raw)}`);
    switch (vr) {
      case 'US':
      case 'OW':
        dv.setUint16(o, n, littleEndian);
        break;
      case 'SS':
        dv.setInt16(o, n, littleEndian);
        break;
      case 'UL':
      case 'OL':
        dv.setUint32(o, n, littleEndian);
        break;
      case 'SL':
        dv.setInt32(o, n, littleEndian);
        break;
      case 'FL':
      case 'OF':
        dv.setFloat32(o, n, littleEndian);
        break;
      case 'FD':
      case 'OD':
        dv.setFloat64(o, n, littleEndian);
        break;
      case 'UV':
      case 'OV':
        dv.setBigUint64(o, BigInt(Math.trunc(n)), littleEndian);
        break;
      case 'SV':
        dv.setBigInt64(o, BigInt(Math.trunc(n)), littleEndian);
        break;
      case 'AT':
        dv.setUint16(o, n >>> 16, littleEndian);
        dv.setUint16(o + 2, n & 0xffff, littleEndian);
        break;
    }
  });
  return out;
}

/**
 * A sequence's value given as its encoded items, in the dataset's encoding: each item
 * (FFFE,E000) of defined length, walked to the end so a wrong length is refused here
 * instead of written into a file no reader can parse.
 */
function checkItems(bytes: Uint8Array, littleEndian: boolean): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + 8 > bytes.length) throw new Error(`sequence items: ${bytes.length - at} stray bytes at offset ${at}`);
    const group = dv.getUint16(at, littleEndian);
    const element = dv.getUint16(at + 2, littleEndian);
    const length = dv.getUint32(at + 4, littleEndian);
    if (group !== 0xfffe || element !== 0xe000) throw new Error(`sequence items: no item tag (FFFE,E000) at offset ${at}`);
    if (length === 0xffffffff) throw new Error(`sequence items: give each item a defined length (offset ${at})`);
    at += 8 + length;
    if (at > bytes.length) throw new Error(`sequence items: an item's length runs past the end (offset ${at - 8 - length})`);
  }
  return bytes;
}

/**
 * Encode a value for a VR, little endian. `charset` is the SpecificCharacterSet value list
 * for the VRs it affects (SH, LO, ST, LT, UC, UT, PN).
 */
export function encodeValue(vr: string, value: Value, charset?: string[]): Uint8Array {
  return encodeValueFor(vr, value, { charsets: charset ?? [], littleEndian: true });
}

export function encodeValueFor(vr: string, value: Value, opts: { charsets: readonly string[]; littleEndian: boolean }): Uint8Array {
  if (vr === 'SQ') {
    if (value instanceof Uint8Array) return checkItems(value, opts.littleEndian);
    throw new Error('a sequence is set from its encoded items (bytes), not from a value (or remove or empty it, or edit its items)');
  }
  if (value instanceof Uint8Array) return pad(value, vr);
  if (STRING_VRS.has(vr)) {
    const texts = toTexts(vr, value);
    checkText(vr, texts);
    const joined = texts.length === 1 ? texts[0]! : texts.join('\\');
    // ASCII is the same bytes in every character set this writes (what encodeText gives it).
    if (!CHARSET_VRS.has(vr) || isAscii(joined)) return latin1Padded(joined, vr);
    return pad(encodeText(joined, opts.charsets), vr);
  }
  if (vr in NUMBER_SIZES) {
    if (typeof value === 'string' && value === '') return new Uint8Array(0);
    if (Array.isArray(value) && value.length === 0) return new Uint8Array(0);
    const list = typeof value === 'string' ? value.split('\\') : value;
    return encodeNumbers(vr, list, opts.littleEndian);
  }
  // OB, UN and anything unknown: text as latin1 bytes, NUL padded.
  const texts = toTexts(vr, value);
  return pad(Buffer.from(texts.join('\\'), 'latin1'), vr);
}
