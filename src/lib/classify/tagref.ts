import type { TagRef } from './types.js';

/**
 * FIONA's tag notation: `["Keyword"]`, `["0x0018","0x0050"]` or `["0x0018","0x0050","index"]`.
 * Numbers are read as Python's int(s, 0) read them: `0x..` hexadecimal, otherwise decimal
 * without leading zeros. A bare "0018" was an error in FIONA (silently skipping the rule);
 * here it is refused with a hint.
 */
export class TagRefError extends Error {}

/** A keyword resolver (the DICOM dictionary); undefined when the name is not a keyword. */
export type KeywordResolver = (keyword: string) => number | undefined;

const PY_INT = /^\s*([+-]?)(0[xX][0-9A-Fa-f]+|0[oO][0-7]+|0[bB][01]+|[1-9][0-9]*|0+)\s*$/;

/** Python int(s, 0); undefined when Python would refuse it. */
export function parsePyInt(s: string): number | undefined {
  const m = PY_INT.exec(s.replace(/_/g, ''));
  if (!m) return undefined;
  const body = m[2]!;
  const lower = body.toLowerCase();
  let n: number;
  if (lower.startsWith('0x')) n = Number.parseInt(body.slice(2), 16);
  else if (lower.startsWith('0o')) n = Number.parseInt(body.slice(2), 8);
  else if (lower.startsWith('0b')) n = Number.parseInt(body.slice(2), 2);
  else n = Number.parseInt(body, 10);
  return m[1] === '-' ? -n : n;
}

function part(raw: unknown, what: string, max: number): number {
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 0 && raw <= max) return raw;
  if (typeof raw !== 'string') throw new TagRefError(`${what} must be a string such as "0x0018", got ${JSON.stringify(raw)}`);
  const n = parsePyInt(raw);
  if (n === undefined) {
    const hint = /^[0-9A-Fa-f]{4}$/.test(raw.trim()) ? ` (write "0x${raw.trim()}")` : '';
    throw new TagRefError(`${what} ${JSON.stringify(raw)} is not a number${hint}`);
  }
  if (n < 0 || n > max) throw new TagRefError(`${what} ${JSON.stringify(raw)} is outside 0..0x${max.toString(16)}`);
  return n;
}

/** Parse FIONA's tag array; throws TagRefError saying what is wrong. */
export function parseTagRef(raw: unknown, resolve?: KeywordResolver): TagRef {
  if (!Array.isArray(raw)) throw new TagRefError(`must be an array such as ["SeriesDescription"] or ["0x0008","0x0070"], got ${JSON.stringify(raw)}`);
  if (raw.length === 1) {
    const name = raw[0];
    if (typeof name !== 'string' || name.trim() === '') throw new TagRefError(`a one-element tag must be a keyword, got ${JSON.stringify(name)}`);
    const tag = resolve?.(name.trim());
    return tag === undefined ? { kind: 'name', name: name.trim() } : { kind: 'name', name: name.trim(), tag };
  }
  if (raw.length === 2 || raw.length === 3) {
    const group = part(raw[0], 'group', 0xffff);
    const element = part(raw[1], 'element', 0xffff);
    const tag = ((group << 16) | element) >>> 0;
    if (raw.length === 2) return { kind: 'tag', tag };
    const idx = raw[2];
    const index = typeof idx === 'number' && Number.isInteger(idx) ? idx : typeof idx === 'string' ? parsePyInt(idx) : undefined;
    if (index === undefined) throw new TagRefError(`index ${JSON.stringify(idx)} is not an integer`);
    return { kind: 'tag', tag, index };
  }
  throw new TagRefError(`must have 1, 2 or 3 entries, got ${raw.length}`);
}

export function formatTagRef(ref: TagRef): string {
  if (ref.kind === 'name') return ref.name;
  const g = (ref.tag >>> 16).toString(16).toUpperCase().padStart(4, '0');
  const e = (ref.tag & 0xffff).toString(16).toUpperCase().padStart(4, '0');
  return `(${g},${e})${ref.index === undefined ? '' : `[${ref.index}]`}`;
}

/** True when `raw` looks like a tag reference written in the hex form (["0x..","0x.."(, "i")]). */
export function looksLikeHexTagRef(raw: unknown): boolean {
  return (
    Array.isArray(raw) &&
    (raw.length === 2 || raw.length === 3) &&
    raw.every((x) => typeof x === 'string') &&
    /^\s*0[xX][0-9A-Fa-f]+\s*$/.test(raw[0] as string) &&
    /^\s*0[xX][0-9A-Fa-f]+\s*$/.test(raw[1] as string)
  );
}
