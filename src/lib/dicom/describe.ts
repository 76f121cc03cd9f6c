import { pathToFileURL } from 'node:url';
import { dictEntry, displayKeywordOf } from './dictionary.js';
import type { Header } from './header.js';
import { formatTag, isPrivateCreator, isPrivateTag, tagHex } from './tags.js';
import { UNDEFINED_LENGTH, type DicomElement } from './types.js';
import { parseCharsets } from './values.js';
import { NUMBER_SIZES, STRING_VRS } from './vr.js';

/**
 * Describing a header for people and scripts: dcmdump-like text lines and the DICOM JSON
 * model (PS3.18 F.2). Both walk the index with the encoding and character set in force
 * at each depth (items of a VR UN sequence are implicit VR little endian; an item may
 * carry its own SpecificCharacterSet).
 */

const SPECIFIC_CHARACTER_SET = 0x00080005;
const VALUE_WIDTH = 40;
const MAX_SHOWN = 66;

interface Scope {
  implicitLE: boolean;
  charsets: readonly string[];
}

function scopeFor(header: Header, list: DicomElement[], outer: Scope): Scope {
  const cs = list.find((e) => e.tag === SPECIFIC_CHARACTER_SET);
  if (!cs) return outer;
  const raw = header.valuesOf(cs, { implicitLE: outer.implicitLE, charsets: [] }).join('\\');
  return { ...outer, charsets: parseCharsets(raw) };
}

/** The name shown for a tag: keyword, or what kind of private element it is. */
export function nameOf(el: DicomElement): string {
  if (isPrivateCreator(el.tag)) return 'PrivateCreator';
  if (isPrivateTag(el.tag)) return el.privateCreator ? `Private [${el.privateCreator}]` : 'Unknown Tag & Data';
  return displayKeywordOf(el.tag) || 'Unknown Tag & Data';
}

function hexList(header: Header, el: DicomElement, scope: Scope): string {
  const bytes = header.bytesOf(el);
  if (!bytes) return `(${el.length} bytes, not loaded)`;
  const word = el.vr === 'OW' ? 2 : 1;
  const le = scope.implicitLE || header.littleEndian;
  const parts: string[] = [];
  for (let i = 0; i + word <= bytes.length && parts.length < 16; i += word) {
    const v = word === 2 ? (le ? bytes[i]! | (bytes[i + 1]! << 8) : (bytes[i]! << 8) | bytes[i + 1]!) : bytes[i]!;
    parts.push(v.toString(16).padStart(word * 2, '0'));
  }
  return parts.join('\\');
}

function valueText(header: Header, el: DicomElement, scope: Scope): { text: string; vm: number } {
  if (el.length === 0) return { text: '(no value available)', vm: 0 };
  if (STRING_VRS.has(el.vr)) {
    const values = header.valuesOf(el, scope);
    if (values.length === 0) return { text: '(no value available)', vm: 0 };
    return { text: `[${values.join('\\')}]`, vm: values.length };
  }
  if (el.vr in NUMBER_SIZES && !['OW', 'OF', 'OD', 'OL', 'OV'].includes(el.vr)) {
    const values = header.valuesOf(el, scope);
    return { text: values.join('\\'), vm: values.length };
  }
  return { text: hexList(header, el, scope), vm: 1 };
}

function line(depth: number, tag: string, vr: string, value: string, length: string, vm: number, name: string): string {
  let v = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN - 3)}...` : value;
  v = v.padEnd(VALUE_WIDTH);
  return `${'  '.repeat(depth)}${tag} ${vr} ${v} # ${length.padStart(3)}, ${vm} ${name}`;
}

function lengthText(n: number): string {
  return n === UNDEFINED_LENGTH ? 'u/l' : String(n);
}

/** dcmdump-like text: one line per element, items and delimiters indented. */
export function describeText(header: Header, opts: { meta?: boolean } = {}): string[] {
  const out: string[] = [];
  const top: Scope = { implicitLE: false, charsets: header.charsets };
  if (opts.meta !== false && header.meta.length > 0) {
    out.push('# Dicom-Meta-Information-Header');
    out.push('# Used TransferSyntax: Little Endian Explicit');
    for (const el of header.meta) {
      const { text, vm } = valueText(header, el, { implicitLE: true, charsets: [] });
      out.push(line(0, formatTag(el.tag).toLowerCase(), el.vr, text, lengthText(el.length), vm, nameOf(el)));
    }
    out.push('');
  }
  out.push('# Dicom-Data-Set');
  out.push(`# Used TransferSyntax: ${header.transferSyntaxUid}`);
  describeList(header, header.elements, 0, scopeFor(header, header.elements, top), out);
  return out;
}

function describeList(header: Header, list: DicomElement[], depth: number, scope: Scope, out: string[]): void {
  for (const el of list) {
    const tag = formatTag(el.tag).toLowerCase();
    if (el.items) {
      const kind = el.length === UNDEFINED_LENGTH ? 'undefined length' : 'explicit length';
      out.push(line(depth, tag, el.vr, `(Sequence with ${kind} #=${el.items.length})`, lengthText(el.length), 1, nameOf(el)));
      const inner: Scope = el.itemsImplicit ? { ...scope, implicitLE: true } : scope;
      el.items.forEach((item, k) => {
        const r = el.itemRanges![k]!;
        const ik = r.length === UNDEFINED_LENGTH ? 'undefined length' : 'explicit length';
        out.push(line(depth + 1, '(fffe,e000)', 'na', `(Item with ${ik} #=${item.length})`, lengthText(r.length), 1, 'Item'));
        describeList(header, item, depth + 2, scopeFor(header, item, inner), out);
        if (r.length === UNDEFINED_LENGTH) out.push(line(depth + 1, '(fffe,e00d)', 'na', '(ItemDelimitationItem)', '0', 0, 'ItemDelimitationItem'));
      });
      if (el.length === UNDEFINED_LENGTH) out.push(line(depth, '(fffe,e0dd)', 'na', '(SequenceDelimitationItem)', '0', 0, 'SequenceDelimitationItem'));
      continue;
    }
    if (el.fragments) {
      out.push(line(depth, tag, el.vr, `(PixelSequence #=${el.fragments.length})`, 'u/l', 1, nameOf(el)));
      for (const f of el.fragments) out.push(line(depth + 1, '(fffe,e000)', 'pi', `(${f.length} bytes at offset ${f.offset})`, String(f.length), 1, 'Item'));
      out.push(line(depth, '(fffe,e0dd)', 'na', '(SequenceDelimitationItem)', '0', 0, 'SequenceDelimitationItem'));
      continue;
    }
    if (el.skipped && el.length === UNDEFINED_LENGTH) {
      out.push(line(depth, tag, el.vr, '(PixelSequence, not read)', 'u/l', 1, nameOf(el)));
      continue;
    }
    const { text, vm } = valueText(header, el, scope);
    out.push(line(depth, tag, el.vr, text, lengthText(el.length), vm, nameOf(el)));
  }
}

// ---- DICOM JSON model (PS3.18 F.2) ----

export type JsonValue = string | number | null | { Alphabetic?: string; Ideographic?: string; Phonetic?: string } | JsonDataset;
export interface JsonAttribute {
  vr: string;
  Value?: JsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
}
export type JsonDataset = Record<string, JsonAttribute>;

function personName(v: string): { Alphabetic?: string; Ideographic?: string; Phonetic?: string } {
  const [a, i, p] = v.split('=');
  const out: { Alphabetic?: string; Ideographic?: string; Phonetic?: string } = {};
  if (a) out.Alphabetic = a;
  if (i) out.Ideographic = i;
  if (p) out.Phonetic = p;
  return out;
}

function bulkUri(header: Header, el: DicomElement): string {
  const url = header.file ? pathToFileURL(header.file).href : 'about:blank';
  return `${url}?offset=${el.valueOffset}&length=${el.length}`;
}

function jsonAttribute(header: Header, el: DicomElement, scope: Scope): JsonAttribute {
  // The JSON model has no UN sequences: a sequence read from UN is shown as SQ.
  const vr = el.items ? 'SQ' : el.vr;
  const attr: JsonAttribute = { vr };
  if (el.items) {
    const inner: Scope = el.itemsImplicit ? { ...scope, implicitLE: true } : scope;
    if (el.items.length > 0) attr.Value = el.items.map((item) => jsonList(header, item, scopeFor(header, item, inner)));
    return attr;
  }
  if (el.fragments || (el.skipped && el.length === UNDEFINED_LENGTH)) {
    attr.BulkDataURI = bulkUri(header, el);
    return attr;
  }
  if (el.length === 0) return attr;
  if (STRING_VRS.has(el.vr)) {
    const values = header.valuesOf(el, scope);
    if (values.length === 0) return attr;
    if (el.vr === 'PN') attr.Value = values.map((v) => (v === '' ? null : personName(v)));
    else if (el.vr === 'IS' || el.vr === 'DS') attr.Value = values.map((v) => (v.trim() === '' ? null : Number(v)));
    else attr.Value = values.map((v) => (v === '' ? null : v));
    return attr;
  }
  if (el.vr === 'AT') {
    attr.Value = header.numbersOf(el, scope).map((t) => tagHex(t));
    return attr;
  }
  if (el.vr in NUMBER_SIZES && !['OW', 'OF', 'OD', 'OL', 'OV'].includes(el.vr)) {
    attr.Value = header.numbersOf(el, scope);
    return attr;
  }
  const bytes = header.bytesOf(el);
  if (bytes) attr.InlineBinary = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  else attr.BulkDataURI = bulkUri(header, el);
  return attr;
}

function jsonList(header: Header, list: DicomElement[], scope: Scope): JsonDataset {
  const out: JsonDataset = {};
  for (const el of list) out[tagHex(el.tag)] = jsonAttribute(header, el, scope);
  return out;
}

/** The DICOM JSON model of a header; File Meta elements first when `meta` is set (not part of F.2). */
export function describeJson(header: Header, opts: { meta?: boolean } = {}): JsonDataset {
  const top: Scope = { implicitLE: false, charsets: header.charsets };
  const meta = opts.meta ? jsonList(header, header.meta, { implicitLE: true, charsets: [] }) : {};
  return { ...meta, ...jsonList(header, header.elements, scopeFor(header, header.elements, top)) };
}

/**
 * Values selected by a key: a keyword or tag, or a path through sequences such as
 * 'ReferencedImageSequence.ReferencedSOPInstanceUID' or 'ReferencedImageSequence[1].(0008,1155)'
 * (first item unless an index is given). Returns [] when the element is not there.
 */
export function selectValues(header: Header, key: string, parseKey: (k: string) => number): string[] {
  const steps = splitPath(key);
  let list = header.elements;
  let scope: Scope = scopeFor(header, list, { implicitLE: false, charsets: header.charsets });
  for (let s = 0; s < steps.length; s++) {
    const { key: k, index } = steps[s]!;
    const tag = parseKey(k);
    if (s === 0 && tag >>> 16 === 0x0002) {
      const m = header.meta.find((e) => e.tag === tag);
      return m ? header.valuesOf(m, { implicitLE: true, charsets: [] }) : [];
    }
    const el = list.find((e) => e.tag === tag);
    if (!el) return [];
    if (s === steps.length - 1) {
      if (el.items) return [`${el.items.length} item(s)`];
      return header.valuesOf(el, scope);
    }
    const item = el.items?.[index ?? 0];
    if (!item) return [];
    if (el.itemsImplicit) scope = { ...scope, implicitLE: true };
    list = item;
    scope = scopeFor(header, list, scope);
  }
  return [];
}

function splitPath(key: string): { key: string; index?: number }[] {
  // Dots separate steps, but not the comma form '(gggg,eeee)'; tags never contain dots.
  return key.split('.').map((part) => {
    const m = /^(.*)\[(\d+)\]$/.exec(part.trim());
    return m ? { key: m[1]!, index: Number(m[2]) } : { key: part.trim() };
  });
}

/** The dictionary name of a tag for `--tag` headings. */
export function describeTagName(tag: number): string {
  return dictEntry(tag)?.keyword ?? formatTag(tag);
}
