import { nameParts } from './clean.js';
import type { Identifier } from './identifiers.js';

/**
 * The last line of defence: before an output file is published, its bytes outside the pixel
 * data are searched for every identifying value the profile removed or replaced, and for
 * every original UID it replaced. A hit means something (a private sequence the project
 * declared safe, an attribute the table does not list, a bug) carried identity through;
 * the instance is quarantined instead of released. Matching is case-insensitive, in the
 * UTF-8 and Latin-1 spellings, and whole-word (a patient ID "12345" does not match inside
 * a longer number).
 */
export interface Needle {
  label: string;
  /** Latin-1 string of the needle's bytes, lower case (compared with the haystack the same way). */
  text: string;
}

const MIN_LENGTH: Record<Identifier['kind'], number> = { name: 4, id: 3, date: 8, text: 4 };

function spellings(value: string): string[] {
  const out = new Set<string>();
  out.add(Buffer.from(value, 'utf8').toString('latin1').toLowerCase());
  if (/^[\0-\xff]*$/.test(value)) out.add(value.toLowerCase());
  return [...out];
}

/** Needles for the identifiers whose values the output must not contain. */
export function identifierNeedles(ids: Identifier[], allowed: ReadonlySet<string>): Needle[] {
  const needles: Needle[] = [];
  const seen = new Set<string>();
  const add = (label: string, value: string, min: number): void => {
    const v = value.trim();
    if (v.length < min || allowed.has(v) || allowed.has(v.toUpperCase())) return;
    // The same spelling twice (a name with no parts to split, a value under two tags) is searched for once.
    for (const text of spellings(v)) {
      if (seen.has(text)) continue;
      seen.add(text);
      needles.push({ label, text });
    }
  };
  for (const id of ids) {
    // A short number (an ID like "101") also spells a series or instance number: only
    // numbers long enough to identify are looked for.
    const min = id.kind === 'id' && /^[\d\s.-]+$/.test(id.value) ? Math.max(MIN_LENGTH.id, 6) : MIN_LENGTH[id.kind];
    add(id.keyword, id.value, min);
    if (id.kind === 'name') {
      add(id.keyword, id.value.replace(/\^+/g, ' ').trim(), min);
      for (const part of nameParts(id.value)) add(`${id.keyword} (part)`, part, min);
    }
  }
  return needles;
}

/** Needles for the original UIDs that were replaced (digits and dots: one spelling). */
export function uidNeedles(uids: Iterable<string>): Needle[] {
  const out: Needle[] = [];
  for (const u of uids) if (u.length >= 8) out.push({ label: 'original UID', text: u });
  return out;
}

function isWordChar(code: number | undefined): boolean {
  if (code === undefined) return false;
  return (code >= 0x30 && code <= 0x39) || (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || code === 0x2e || code >= 0xc0;
}

/** The first needle found in the haystack as a whole word, with its offset. */
export function findNeedle(haystack: string, needles: Needle[], base = 0): { label: string; offset: number } | undefined {
  for (const n of needles) {
    let at = haystack.indexOf(n.text);
    while (at >= 0) {
      const before = haystack.charCodeAt(at - 1);
      const after = haystack.charCodeAt(at + n.text.length);
      const wordStart = isWordChar(n.text.charCodeAt(0));
      const wordEnd = isWordChar(n.text.charCodeAt(n.text.length - 1));
      if ((!wordStart || !isWordChar(Number.isNaN(before) ? undefined : before)) && (!wordEnd || !isWordChar(Number.isNaN(after) ? undefined : after))) {
        return { label: n.label, offset: base + at };
      }
      at = haystack.indexOf(n.text, at + 1);
    }
  }
  return undefined;
}

/** Lower-cased Latin-1 view of bytes, the form needles are compared in. */
export function haystackOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1').toLowerCase();
}
