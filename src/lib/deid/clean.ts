/**
 * The C (clean) action for text: "replace with values of similar meaning known not to
 * contain identifying information". fiona cannot understand free text; what it can do
 * reliably is remove every identifying value it knows about this instance (the patient's
 * name and its parts, IDs, birth date in common spellings, accession number, institution,
 * physicians, operators, station, addresses, phone numbers) wherever it appears in the
 * text, as a whole word and in any letter case, then apply the project's own rewrites.
 * This is documented as such; a privacy officer who needs more adds regex rewrites or
 * removes the attribute with the project's `remove` list.
 */
export interface Scrubber {
  scrub(text: string): string;
  /** True when the text contains any identifying value (used by the leak check). */
  finds(text: string): boolean;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The spellings of a birth date or other date that free text tends to use. */
export function dateSpellings(da: string): string[] {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  if (!m) return [];
  const [, y, mo, d] = m as unknown as [string, string, string, string];
  return [`${y}${mo}${d}`, `${y}-${mo}-${d}`, `${y}/${mo}/${d}`, `${y}.${mo}.${d}`, `${d}.${mo}.${y}`, `${d}/${mo}/${y}`, `${mo}/${d}/${y}`, `${d}-${mo}-${y}`];
}

/** Split a PN value into the words worth looking for (family, given, middle names; not prefixes like "Dr"). */
export function nameParts(pn: string): string[] {
  const out = new Set<string>();
  for (const group of pn.split('=')) {
    const whole = group.replace(/\^+/g, ' ').trim();
    if (whole.length >= 2) out.add(whole);
    const comps = group.split('^');
    // components: family, given, middle, prefix, suffix; prefixes and suffixes are not identifying
    for (const c of comps.slice(0, 3)) {
      for (const w of c.split(/[\s,]+/)) if (w.length >= 2) out.add(w);
    }
  }
  return [...out];
}

export function createScrubber(identifiers: Iterable<string>): Scrubber {
  const words = [...new Set([...identifiers].map((s) => s.trim()).filter((s) => s.length >= 2))].sort((a, b) => b.length - a.length);
  if (words.length === 0) return { scrub: (t) => t, finds: () => false };
  // Whole words only: "Li" must not eat the "li" of "clinical".
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.map(escapeRegex).join('|')})(?![\\p{L}\\p{N}])`, 'giu');
  return {
    scrub(text: string): string {
      re.lastIndex = 0;
      if (!re.test(text)) return text;
      re.lastIndex = 0;
      return text.replace(re, '').replace(/[ \t]{2,}/g, ' ').replace(/^[ \t]+|[ \t]+$/gm, '');
    },
    finds(text: string): boolean {
      re.lastIndex = 0;
      return re.test(text);
    },
  };
}
