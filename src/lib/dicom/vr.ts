/**
 * Value Representations (PS3.5 6.2): which take a 4-byte length in explicit VR, which hold
 * text, which are affected by SpecificCharacterSet, and how each is padded.
 */

/** VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 7.1.2). */
export const LONG_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Every VR PS3.5 defines. */
export const KNOWN_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

/** Text VRs. */
export const STRING_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT',
]);

/** Text VRs whose bytes are in the SpecificCharacterSet (the rest are the default repertoire). */
export const CHARSET_VRS: ReadonlySet<string> = new Set(['LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UT']);

/** Text VRs that hold one value: a backslash in them is text, not a separator. */
export const SINGLE_VALUE_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

/** Binary numbers: VR -> byte size. */
export const NUMBER_SIZES: Readonly<Record<string, number>> = {
  US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8, UV: 8, SV: 8, AT: 4,
  OW: 2, OF: 4, OD: 8, OL: 4, OV: 8,
};

/** Bulk VRs: values that are bytes rather than text or a handful of numbers. */
export const BULK_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** A 16-bit code for two VR bytes, to map raw bytes to an interned VR string without allocating. */
export function vrCode(a: number, b: number): number {
  return (a << 8) | b;
}

/** Index of two capital letters in the tables below (26 x 26), or -1 when they are not both A-Z. */
function letterIndex(a: number, b: number): number {
  const x = a - 0x41;
  const y = b - 0x41;
  return x >= 0 && x < 26 && y >= 0 && y < 26 ? x * 26 + y : -1;
}

// Array lookups: the parser asks for every element's VR and header length, where a Map and
// a Set of strings cost a hash each.
const VR_BY_INDEX: Array<string | undefined> = Array.from({ length: 26 * 26 }, () => undefined);
const LONG_BY_INDEX = new Uint8Array(26 * 26);
for (const vr of KNOWN_VRS) {
  const k = letterIndex(vr.charCodeAt(0), vr.charCodeAt(1));
  VR_BY_INDEX[k] = vr;
  if (LONG_VRS.has(vr)) LONG_BY_INDEX[k] = 1;
}

/** The interned VR string for two bytes, or undefined when they are not a VR. */
export function vrFromBytes(a: number, b: number): string | undefined {
  const k = letterIndex(a, b);
  return k < 0 ? undefined : VR_BY_INDEX[k];
}

/** Whether two bytes name a VR with a 4-byte length in explicit VR (LONG_VRS). */
export function isLongVrBytes(a: number, b: number): boolean {
  const k = letterIndex(a, b);
  return k >= 0 && LONG_BY_INDEX[k] === 1;
}

/** The byte a value of this VR is padded with to even length (PS3.5 6.2). */
export function padByte(vr: string): number {
  return vr === 'UI' || vr === 'OB' || vr === 'UN' ? 0x00 : 0x20;
}
