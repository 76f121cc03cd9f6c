/** Tag helpers: a tag is a 32-bit number 0xggggeeee throughout fiona. */

const HEX4 = /^[0-9A-Fa-f]{4}$/;

export function formatTag(tag: number): string {
  const t = tag >>> 0;
  const g = (t >>> 16).toString(16).toUpperCase().padStart(4, '0');
  const e = (t & 0xffff).toString(16).toUpperCase().padStart(4, '0');
  return `(${g},${e})`;
}

/** "ggggeeee", upper case: the key of the DICOM JSON model (PS3.18 F.2). */
export function tagHex(tag: number): string {
  return (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

/** (7FE0,0010) Pixel Data: where a header read stops, and the one value edits keep by reference. */
export const PIXEL_DATA = 0x7fe00010;

export const groupOf = (tag: number): number => tag >>> 16;
export const elementOf = (tag: number): number => tag & 0xffff;
export const isPrivateTag = (tag: number): boolean => (tag >>> 16) % 2 === 1;

/** A private creator element (gggg,00xx), xx in 10..FF, gggg odd (PS3.5 7.8.1). */
export function isPrivateCreator(tag: number): boolean {
  const e = tag & 0xffff;
  return isPrivateTag(tag) && e >= 0x10 && e <= 0xff;
}

/** The creator slot key of a private element (gggg,xxee): group and block xx. */
export function privateBlockKey(tag: number): number {
  return ((tag >>> 16) << 8) | ((tag >>> 8) & 0xff);
}

/**
 * Parse a tag written as 'gggg,eeee', '(gggg,eeee)', 'ggggeeee' or a number.
 * Returns undefined when the text is not one of those (keywords are resolved elsewhere).
 */
export function parseTagText(key: string | number): number | undefined {
  if (typeof key === 'number') {
    return Number.isInteger(key) && key >= 0 && key <= 0xffffffff ? key >>> 0 : undefined;
  }
  let s = key.trim();
  if (s.startsWith('(') && s.endsWith(')')) s = s.slice(1, -1);
  let g: string;
  let e: string;
  if (s.length === 9 && s[4] === ',') {
    g = s.slice(0, 4);
    e = s.slice(5);
  } else if (s.length === 8) {
    g = s.slice(0, 4);
    e = s.slice(4);
  } else {
    return undefined;
  }
  if (!HEX4.test(g) || !HEX4.test(e)) return undefined;
  return ((Number.parseInt(g, 16) << 16) | Number.parseInt(e, 16)) >>> 0;
}
