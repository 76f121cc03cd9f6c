import { decodePlain, decodeText } from './charset.js';
import { formatTag } from './tags.js';
import { CHARSET_VRS, NUMBER_SIZES, SINGLE_VALUE_VRS, STRING_VRS } from './vr.js';

/**
 * Decoding one element's value bytes by VR (PS3.5 6.2): text split on backslash and
 * trimmed per VR, numbers read in the file's byte order. Empty IS/DS stay empty (never 0).
 */

export interface ValueContext {
  littleEndian: boolean;
  charsets: readonly string[];
}

/** Trim per VR: UI loses NUL padding; text VRs (LT, ST, UT) keep leading spaces; others lose both ends. */
function trimValue(s: string, vr: string): string {
  // By char codes, not regular expressions: a header has hundreds of values, most with
  // nothing to trim, and slice(0, length) hands back the string itself.
  let end = s.length;
  while (end > 0) {
    const c = s.charCodeAt(end - 1);
    if (c !== 0x20 && c !== 0) break;
    end--;
  }
  let start = 0;
  if (vr !== 'UI' && vr !== 'LT' && vr !== 'ST' && vr !== 'UT' && vr !== 'UR') {
    while (start < end && s.charCodeAt(start) === 0x20) start++;
  }
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** The text of a string VR, decoded (charset-affected VRs honour SpecificCharacterSet). */
export function decodeString(bytes: Uint8Array, start: number, length: number, vr: string, charsets: readonly string[]): string {
  return CHARSET_VRS.has(vr) ? decodeText(bytes, start, start + length, charsets, vr) : decodePlain(bytes, start, start + length);
}

/** All values of an element as strings. Binary numbers become their decimal text; bulk VRs give []. */
export function decodeStrings(bytes: Uint8Array, start: number, length: number, vr: string, ctx: ValueContext): string[] {
  if (length === 0) return [];
  if (STRING_VRS.has(vr)) {
    const text = decodeString(bytes, start, length, vr, ctx.charsets);
    // Most values are single: split (a runtime call, an array of slices) only when there is
    // a backslash to split on; a loop, not map with a closure, for the rest.
    if (SINGLE_VALUE_VRS.has(vr) || text.indexOf('\\') < 0) {
      const one = trimValue(text, vr);
      // A value that was only padding is no value.
      return one === '' ? [] : [one];
    }
    const out = text.split('\\');
    for (let k = 0; k < out.length; k++) out[k] = trimValue(out[k]!, vr);
    return out;
  }
  if (vr === 'AT') {
    return decodeNumbers(bytes, start, length, vr, ctx).map((t) => formatTag(t));
  }
  if (vr in NUMBER_SIZES && vr !== 'OW' && vr !== 'OF' && vr !== 'OD' && vr !== 'OL' && vr !== 'OV') {
    return decodeNumbers(bytes, start, length, vr, ctx).map((n) => String(n));
  }
  return [];
}

/** All values as numbers: binary VRs read directly, IS/DS parsed; empty or unparsable text values are skipped. */
export function decodeNumbers(bytes: Uint8Array, start: number, length: number, vr: string, ctx: ValueContext): number[] {
  if (length === 0) return [];
  if (vr === 'IS' || vr === 'DS') {
    return decodeStrings(bytes, start, length, vr, ctx)
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(Number)
      .filter((n) => Number.isFinite(n));
  }
  if (STRING_VRS.has(vr)) {
    return decodeStrings(bytes, start, length, vr, ctx).map(Number).filter((n) => Number.isFinite(n));
  }
  const size = NUMBER_SIZES[vr];
  if (!size) return [];
  const le = ctx.littleEndian;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + start, length);
  const n = Math.floor(length / size);
  const out: number[] = new Array<number>(n);
  for (let k = 0; k < n; k++) {
    const o = k * size;
    switch (vr) {
      case 'US':
      case 'OW':
        out[k] = dv.getUint16(o, le);
        break;
      case 'SS':
        out[k] = dv.getInt16(o, le);
        break;
      case 'UL':
      case 'OL':
        out[k] = dv.getUint32(o, le);
        break;
      case 'SL':
        out[k] = dv.getInt32(o, le);
        break;
      case 'FL':
      case 'OF':
        out[k] = dv.getFloat32(o, le);
        break;
      case 'FD':
      case 'OD':
        out[k] = dv.getFloat64(o, le);
        break;
      case 'UV':
      case 'OV':
        out[k] = Number(dv.getBigUint64(o, le));
        break;
      case 'SV':
        out[k] = Number(dv.getBigInt64(o, le));
        break;
      case 'AT':
        out[k] = ((dv.getUint16(o, le) << 16) | dv.getUint16(o + 2, le)) >>> 0;
        break;
      default:
        out[k] = NaN;
    }
  }
  return out;
}

/** The SpecificCharacterSet value list as written (first value may be empty: default repertoire). */
export function parseCharsets(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  return raw.split('\\').map((s) => s.trim());
}
