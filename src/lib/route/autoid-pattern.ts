import { randomInt } from 'node:crypto';

/**
 * Automatic IDs follow a project's naming pattern (FIONA: project_patient_naming, fed to its
 * gen-id tool). We accept the part of regular-expression syntax that names a fixed-length ID:
 * literal characters, `\d`, character classes like `[A-Z0-9]`, and `{n}` repeats, e.g.
 * `NT[0-9]{4}` or `^SUB-\d{3}$`. Anything else is refused when the rules are loaded.
 */
export type AutoIdPart = { kind: 'literal'; text: string } | { kind: 'class'; chars: string; count: number };

export interface AutoIdGenerator {
  parts: AutoIdPart[];
  /** How many different IDs the pattern can make. */
  capacity: number;
  generate(): string;
}

const DIGITS = '0123456789';

function readClass(p: string, start: number): { chars: string; end: number } {
  let i = start + 1;
  let chars = '';
  if (p[i] === '^') throw new Error('negated classes [^...] are not supported');
  while (i < p.length && p[i] !== ']') {
    let c = p[i]!;
    if (c === '\\') {
      const e = p[i + 1];
      if (e === 'd') {
        chars += DIGITS;
        i += 2;
        continue;
      }
      if (e === undefined) throw new Error('pattern ends inside a class');
      c = e;
      i++;
    }
    if (p[i + 1] === '-' && p[i + 2] !== undefined && p[i + 2] !== ']') {
      const to = p[i + 2]!;
      if (to.charCodeAt(0) < c.charCodeAt(0)) throw new Error(`bad range ${c}-${to}`);
      for (let k = c.charCodeAt(0); k <= to.charCodeAt(0); k++) chars += String.fromCharCode(k);
      i += 3;
    } else {
      chars += c;
      i++;
    }
  }
  if (p[i] !== ']') throw new Error('unclosed [');
  return { chars: [...new Set(chars)].join(''), end: i + 1 };
}

function readCount(p: string, i: number): { count: number; end: number } {
  if (p[i] !== '{') return { count: 1, end: i };
  const m = /^\{(\d{1,2})\}/.exec(p.slice(i));
  if (!m) throw new Error('only fixed repeats like {4} are supported');
  return { count: Number(m[1]), end: i + m[0].length };
}

export function compileAutoIdPattern(pattern: string): AutoIdGenerator {
  let p = pattern;
  if (p.startsWith('^')) p = p.slice(1);
  if (p.endsWith('$') && !p.endsWith('\\$')) p = p.slice(0, -1);
  const parts: AutoIdPart[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i]!;
    let chars: string | undefined;
    let literal: string | undefined;
    if (c === '[') {
      const r = readClass(p, i);
      chars = r.chars;
      i = r.end;
    } else if (c === '\\') {
      const e = p[i + 1];
      if (e === 'd') chars = DIGITS;
      else if (e !== undefined && !/[A-Za-z0-9]/.test(e)) literal = e;
      else throw new Error(`escape \\${e ?? ''} is not supported`);
      i += 2;
    } else if ('.*+?()|{}'.includes(c)) {
      throw new Error(`${JSON.stringify(c)} is not supported: an automatic ID needs a fixed form`);
    } else {
      literal = c;
      i++;
    }
    const r = readCount(p, i);
    i = r.end;
    if (chars !== undefined) {
      if (chars.length === 0) throw new Error('empty class');
      parts.push({ kind: 'class', chars, count: r.count });
    } else {
      parts.push({ kind: 'literal', text: literal!.repeat(r.count) });
    }
  }
  const classes = parts.filter((x): x is Extract<AutoIdPart, { kind: 'class' }> => x.kind === 'class');
  if (classes.length === 0) throw new Error('the pattern has no variable part, so every patient would get the same ID');
  const capacity = classes.reduce((n, x) => n * x.chars.length ** x.count, 1);
  const length = parts.reduce((n, x) => n + (x.kind === 'literal' ? x.text.length : x.count), 0);
  if (length > 64) throw new Error('IDs would be longer than 64 characters');
  if (/[\\\x00-\x1f\x7f]/.test(parts.map((x) => (x.kind === 'literal' ? x.text : x.chars)).join(''))) {
    throw new Error('IDs may not contain backslashes or control characters');
  }
  return {
    parts,
    capacity,
    generate(): string {
      return parts
        .map((x) => (x.kind === 'literal' ? x.text : Array.from({ length: x.count }, () => x.chars[randomInt(x.chars.length)]).join('')))
        .join('');
    },
  };
}
