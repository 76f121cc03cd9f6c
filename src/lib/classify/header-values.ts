import type { DicomElement, Header } from '../dicom/index.js';
import type { RuleValue } from './types.js';

/**
 * Values of a header element as rules and the series JSON see them: strings, split on
 * backslash, trimmed per VR. Private elements of implicit-VR files come as UN (no dictionary
 * knows them); FIONA's rules test several (GE's pulse sequence name, Siemens' coil string),
 * so UN/OB values that hold text are decoded as text. Binary blobs and sequences are present
 * (for `exist`) with no values.
 */
const TEXT_LIKE = /^[\x20-\x7e\u00a0-\u00ff\t\r\n\\]*$/;

export function elementValues(h: Header, el: DicomElement): string[] {
  if (el.items || el.fragments || el.length === 0xffffffff) return [];
  if (el.vr === 'UN' || el.vr === 'OB') return unknownAsText(h, el);
  return h.valuesOf(el);
}

function unknownAsText(h: Header, el: DicomElement): string[] {
  if (el.length > 4096) return [];
  const b = h.bytesOf(el);
  if (!b) return [];
  const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1').replace(/[\0 ]+$/, '');
  if (text === '' || !TEXT_LIKE.test(text)) return [];
  return text.split('\\').map((s) => s.replace(/^ +/, '').replace(/[\0 ]+$/, ''));
}

/** A header element as a rule value (undefined when absent); VM > 1 makes it multi-valued. */
export function headerValue(h: Header, tag: number): RuleValue | undefined {
  const el = h.element(tag);
  if (!el) return undefined;
  const values = elementValues(h, el);
  return { values, multi: values.length > 1 };
}

/** The first value of a top-level element, if any. */
export function firstValue(h: Header, tag: number): string | undefined {
  const el = h.element(tag);
  return el ? elementValues(h, el)[0] : undefined;
}

/**
 * A private element by its creator (vendor blocks move between files: (0019,10xx) is GE's
 * only when block 10 belongs to a GEMS creator). FIONA read fixed element numbers; checking
 * the creator keeps another vendor's block from being read as GE's.
 */
export function privateElement(h: Header, group: number, low: number, creatorPrefix: string): DicomElement | undefined {
  const prefix = creatorPrefix.toUpperCase();
  for (const el of h.elements) {
    if (el.tag >>> 16 !== group || (el.tag & 0xff) !== low || (el.tag & 0xff00) === 0) continue;
    if (!(el.privateCreator ?? '').toUpperCase().startsWith(prefix)) continue;
    return el;
  }
  return undefined;
}

/** The values of privateElement(), as rules see them. */
export function privateValues(h: Header, group: number, low: number, creatorPrefix: string): string[] | undefined {
  const el = privateElement(h, group, low, creatorPrefix);
  return el ? elementValues(h, el) : undefined;
}
