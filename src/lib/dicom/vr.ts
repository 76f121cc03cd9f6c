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

const VR_BY_CODE = new Map<number, string>();
for (const vr of KNOWN_VRS) VR_BY_CODE.set(vrCode(vr.charCodeAt(0), vr.charCodeAt(1)), vr);

/** The interned VR string for two bytes, or undefined when they are not a VR. */
export function vrFromBytes(a: number, b: number): string | undefined {
  return VR_BY_CODE.get(vrCode(a, b));
}

/** The byte a value of this VR is padded with to even length (PS3.5 6.2). */
export function padByte(vr: string): number {
  return vr === 'UI' || vr === 'OB' || vr === 'UN' ? 0x00 : 0x20;
}
