import { createRequire } from 'node:module';
import type { DcmjsDictionaryEntry } from 'dcmjs';
import { isPrivateCreator, parseTagText } from './tags.js';

/**
 * The data dictionary (keyword <-> tag <-> VR), taken from dcmjs's dictionary and loaded
 * lazily: parsing an explicit-VR file never needs it, and loading dcmjs costs ~60 ms.
 */
export interface DictEntry {
  tag: number;
  keyword: string;
  vr: string; // a real VR; dcmjs's 'ox'/'xs'/'lt'/'up' pseudo VRs are resolved (see resolveVr)
  vm: string;
  name: string;
  retired: boolean;
}

interface Tables {
  byTag: Map<number, DictEntry>;
  byKeyword: Map<string, DictEntry>;
}

let tables: Tables | undefined;

/**
 * dcmjs marks VRs that depend on context with pseudo VRs. In implicit VR files a value has
 * to be read somehow; these are the choices DCMTK makes for the common cases.
 */
function resolveVr(vr: string): string {
  switch (vr) {
    case 'ox':
      return 'OW'; // OB or OW (pixel data, overlay data): implicit VR means OW
    case 'xs':
      return 'US'; // US or SS
    case 'lt':
      return 'OW'; // US, SS or OW (LUT data)
    case 'up':
      return 'UL';
    case 'na':
      return 'NONE'; // item and delimitation tags
    default:
      return vr;
  }
}

function load(): Tables {
  if (tables) return tables;
  const require = createRequire(import.meta.url);
  const dcmjs = require('dcmjs') as { data: { DicomMetaDictionary: { nameMap: Record<string, DcmjsDictionaryEntry> } } };
  const nameMap = dcmjs.data.DicomMetaDictionary.nameMap;
  const byTag = new Map<number, DictEntry>();
  const byKeyword = new Map<string, DictEntry>();
  for (const key of Object.keys(nameMap)) {
    const raw = nameMap[key]!;
    const tag = parseTagText(raw.tag);
    if (tag === undefined) continue;
    const retired = raw.name.startsWith('RETIRED_');
    const keyword = retired ? raw.name.slice('RETIRED_'.length) : raw.name;
    const entry: DictEntry = { tag, keyword, vr: resolveVr(raw.vr), vm: raw.vm, name: '', retired };
    // The first entry for a tag wins (dcmjs lists a tag once; guard against duplicates anyway).
    if (!byTag.has(tag)) byTag.set(tag, entry);
    byKeyword.set(keyword, entry);
    if (retired) byKeyword.set(raw.name, entry);
  }
  tables = { byTag, byKeyword };
  return tables;
}

/** "PatientName" -> "Patient Name" (dcmjs keeps only keywords). */
function humanName(keyword: string): string {
  return keyword.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2');
}

/**
 * Repeating groups (PS3.5 7.6): curves (50xx), overlays (60xx) and variable pixel data (7Fxx)
 * are listed once, as their xx=00 member.
 */
function repeatingBase(tag: number): number {
  const g = tag >>> 16;
  if (g % 2 === 0 && ((g >= 0x5000 && g <= 0x50ff) || (g >= 0x6000 && g <= 0x60ff) || (g >= 0x7f00 && g <= 0x7fff && g !== 0x7fe0))) {
    return (((g & 0xff00) << 16) | (tag & 0xffff)) >>> 0;
  }
  return tag;
}

export function dictEntry(tag: number): DictEntry | undefined {
  const t = load();
  return t.byTag.get(tag >>> 0) ?? t.byTag.get(repeatingBase(tag >>> 0));
}

export function lookupTag(tag: number): { keyword: string; vr: string; vm: string; name: string } | undefined {
  const e = dictEntry(tag);
  return e ? { keyword: e.keyword, vr: e.vr, vm: e.vm, name: (e.name ||= humanName(e.keyword)) } : undefined;
}

export function lookupKeyword(keyword: string): { tag: number; vr: string; vm: string } | undefined {
  const e = load().byKeyword.get(keyword);
  return e ? { tag: e.tag, vr: e.vr, vm: e.vm } : undefined;
}

/** The keyword of a tag, or '' (private and unknown tags have none). */
export function keywordOf(tag: number): string {
  if (isPrivateCreator(tag)) return 'PrivateCreator';
  const e = dictEntry(tag);
  if (e) return e.keyword;
  return (tag & 0xffff) === 0 ? 'GroupLength' : '';
}

/** The keyword as DCMTK prints it: retired ones prefixed with RETIRED_. */
export function displayKeywordOf(tag: number): string {
  const e = isPrivateCreator(tag) ? undefined : dictEntry(tag);
  if (e) return e.retired ? `RETIRED_${e.keyword}` : e.keyword;
  return keywordOf(tag);
}

/**
 * The VR an implicit-VR file means for a tag: the dictionary's, UL for group lengths,
 * LO for private creators, UN for what nobody knows.
 */
export function implicitVr(tag: number): string {
  if ((tag & 0xffff) === 0) return 'UL';
  if (isPrivateCreator(tag)) return 'LO';
  if ((tag >>> 16) % 2 === 1) return 'UN';
  const e = dictEntry(tag);
  if (!e || e.vr === 'NONE') return 'UN';
  return e.vr;
}

/**
 * Resolve a key to a tag: a keyword ('StudyInstanceUID'), 'gggg,eeee', '(gggg,eeee)',
 * 'ggggeeee', or a number 0xggggeeee. Throws on anything else.
 */
export function parseTagKey(key: string | number): number {
  const t = parseTagText(key);
  if (t !== undefined) return t;
  if (typeof key === 'string') {
    const e = lookupKeyword(key.trim());
    if (e) return e.tag;
  }
  throw new Error(`not a DICOM tag or keyword: ${String(key)}`);
}
