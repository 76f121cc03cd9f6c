/**
 * Python `re` patterns as JavaScript RegExps.
 *
 * FIONA's rule files were written for Python's `re.search`, so a pattern is translated here
 * rather than handed to RegExp as it is. The translation is explicit about every construct
 * where the two dialects differ and refuses (PyRegexError) what it cannot express:
 *
 * - `.`, `^`, `$`, `\A`, `\Z` are spelled out so they mean what Python means (Python's `.`
 *   excludes only `\n`; its `$` also matches before a final newline), under the
 *   flags in force at that point, global or scoped;
 * - inline flags `(?aimsux)` at the start, scoped `(?imsx-imsx:...)` (case-insensitive
 *   scopes expand letters to `[aA]`), verbose mode (whitespace and `#` comments dropped),
 *   `(?#...)` comments;
 * - named groups `(?P<n>...)`, `(?P=n)`, `{,n}`, `\a`, octal escapes, `]` first in a class;
 * - refused: `(?L)`, `(?-i:...)` inside a global `(?i)`, atomic groups, possessive quantifiers,
 *   conditionals, `\N{...}`, `\U`, unknown letter escapes (Python refuses those too).
 *
 * `\d`, `\w`, `\s`, `\b` keep JavaScript's ASCII meaning (Python's are Unicode-aware for str
 * patterns); DICOM values that rules test are nearly always ASCII.
 */
export class PyRegexError extends Error {
  constructor(readonly pattern: string, readonly position: number, reason: string) {
    super(`${reason} at position ${position} in ${JSON.stringify(pattern)}`);
    this.name = 'PyRegexError';
  }
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  x: boolean;
}

/** Letters Python accepts as inline flags; a, u and L change only the charset rules. */
const FLAG_LETTERS = /^[aiLmsux]+$/;
const SCOPED_FLAGS = /^[aimsux]*(-[imsx]+)?$/;
const KNOWN_LETTER_ESCAPES = new Set(['a', 'b', 'B', 'd', 'D', 'f', 'n', 'r', 's', 'S', 't', 'u', 'v', 'w', 'W', 'x', 'A', 'Z']);

export interface TranslatedRegex {
  source: string;
  flags: string;
}

/** Translate a Python pattern; throws PyRegexError naming the construct and position. */
export function translatePythonRegex(pattern: string): TranslatedRegex {
  return new Translator(pattern).run();
}

/** Translate and compile; a pattern JavaScript still rejects is reported as PyRegexError. */
export function compilePythonRegex(pattern: string): RegExp {
  const t = translatePythonRegex(pattern);
  try {
    return new RegExp(t.source, t.flags);
  } catch (err) {
    throw new PyRegexError(pattern, 0, `not a valid regular expression (${(err as Error).message})`);
  }
}

class Translator {
  private pos = 0;
  private out = '';
  private readonly global: Flags = { i: false, m: false, s: false, x: false };
  private readonly stack: Flags[] = [];
  /** Capturing groups opened so far: Python refuses a back reference to a later group. */
  private groups = 0;

  constructor(private readonly p: string) {}

  run(): TranslatedRegex {
    this.readLeadingFlags();
    while (this.pos < this.p.length) this.step();
    if (this.stack.length > 0) this.fail('missing ), unterminated group', this.p.length);
    return { source: this.out, flags: this.global.i ? 'i' : '' };
  }

  private get flags(): Flags {
    return this.stack.length ? this.stack[this.stack.length - 1]! : this.global;
  }

  private fail(reason: string, at = this.pos): never {
    throw new PyRegexError(this.p, at, reason);
  }

  /** Global flags must come first (Python 3.11 refuses them elsewhere). */
  private readLeadingFlags(): void {
    for (;;) {
      const m = /^\(\?([A-Za-z]+)\)/.exec(this.p.slice(this.pos));
      if (!m) return;
      const letters = m[1]!;
      if (!FLAG_LETTERS.test(letters)) this.fail(`unknown flag in (?${letters})`);
      if (letters.includes('L')) this.fail('the LOCALE flag (?L) is for byte patterns only');
      for (const c of letters) if (c === 'i' || c === 'm' || c === 's' || c === 'x') this.global[c] = true;
      this.pos += m[0].length;
    }
  }

  private step(): void {
    const c = this.p[this.pos]!;
    const f = this.flags;
    if (f.x && /\s/.test(c)) {
      this.pos++;
      return;
    }
    if (f.x && c === '#') {
      while (this.pos < this.p.length && this.p[this.pos] !== '\n') this.pos++;
      return;
    }
    switch (c) {
      case '\\':
        this.out += this.escape(false);
        return;
      case '[':
        this.charClass();
        return;
      case '(':
        this.openGroup();
        return;
      case ')':
        if (this.stack.length === 0) this.fail('unbalanced parenthesis');
        this.stack.pop();
        this.out += ')';
        this.pos++;
        return;
      case '.':
        this.out += f.s ? '[\\s\\S]' : '[^\\n]';
        this.pos++;
        return;
      case '^':
        this.out += f.m ? '(?<![^\\n])' : '(?<![\\s\\S])';
        this.pos++;
        return;
      case '$':
        this.out += f.m ? '(?=\\n|(?![\\s\\S]))' : '(?=\\n?(?![\\s\\S]))';
        this.pos++;
        return;
      case '*':
      case '+':
      case '?':
        this.out += c;
        this.pos++;
        this.lazyOrPossessive();
        return;
      case '{':
        this.brace();
        return;
      case '}':
        this.out += '\\}';
        this.pos++;
        return;
      case ']':
        this.out += '\\]';
        this.pos++;
        return;
      case '|':
        this.out += '|';
        this.pos++;
        return;
      default:
        this.out += this.literal(c);
        this.pos += c.length;
    }
  }

  private lazyOrPossessive(): void {
    const n = this.p[this.pos];
    if (n === '?') {
      this.out += '?';
      this.pos++;
    } else if (n === '+') {
      this.fail('possessive quantifiers (*+, ++, ?+, {m,n}+) have no JavaScript equivalent');
    }
  }

  /** `{m}`, `{m,}`, `{m,n}`, `{,n}` are quantifiers; any other `{` is a literal in Python. */
  private brace(): void {
    const m = /^\{(\d*)(,(\d*))?\}/.exec(this.p.slice(this.pos));
    if (!m || (m[1] === '' && m[2] === undefined)) {
      this.out += '\\{';
      this.pos++;
      return;
    }
    const lo = m[1] === '' ? '0' : m[1]!;
    this.out += m[2] === undefined ? `{${lo}}` : `{${lo},${m[3] ?? ''}}`;
    this.pos += m[0].length;
    this.lazyOrPossessive();
  }

  /** A literal character, case-expanded inside a scoped (?i:...) when the pattern is not global-i. */
  private literal(c: string): string {
    if (this.flags.i && !this.global.i) {
      const lo = c.toLowerCase();
      const up = c.toUpperCase();
      if (lo !== up && lo.length === 1 && up.length === 1) return `[${lo}${up}]`;
    }
    return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
  }

  private openGroup(): void {
    const rest = this.p.slice(this.pos);
    let m: RegExpExecArray | null;
    if ((m = /^\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest))) {
      this.groups++;
      this.push(this.flags, `(?<${m[1]}>`, m[0].length);
    } else if ((m = /^\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest))) {
      this.out += `\\k<${m[1]}>`;
      this.pos += m[0].length;
    } else if (rest.startsWith('(?#')) {
      const end = this.p.indexOf(')', this.pos);
      if (end < 0) this.fail('missing ), unterminated comment');
      this.pos = end + 1;
    } else if (/^\(\?(:|=|!|<=|<!)/.test(rest)) {
      const head = /^\(\?(:|=|!|<=|<!)/.exec(rest)![0];
      this.push(this.flags, head, head.length);
    } else if ((m = /^\(\?([A-Za-z-]*):/.exec(rest))) {
      this.scopedFlags(m[1]!, m[0].length);
    } else if (/^\(\?[A-Za-z]+\)/.test(rest)) {
      this.fail('global flags such as (?i) must be at the start of the expression');
    } else if (rest.startsWith('(?>')) {
      this.fail('atomic groups (?>...) have no JavaScript equivalent');
    } else if (rest.startsWith('(?(')) {
      this.fail('conditional groups (?(id)yes|no) have no JavaScript equivalent');
    } else if (rest.startsWith('(?')) {
      this.fail(`unknown extension ${rest.slice(0, 4)}`);
    } else {
      this.groups++;
      this.push(this.flags, '(', 1);
    }
  }

  private scopedFlags(spec: string, length: number): void {
    if (!SCOPED_FLAGS.test(spec)) this.fail(`bad inline flags (?${spec}:`);
    const [on, off = ''] = spec.split('-') as [string, string?];
    const f: Flags = { ...this.flags };
    for (const c of on) if (c === 'i' || c === 'm' || c === 's' || c === 'x') f[c] = true;
    for (const c of off) if (c === 'i' || c === 'm' || c === 's' || c === 'x') f[c] = false;
    if (this.global.i && !f.i) this.fail('(?-i:...) inside a case-insensitive expression cannot be expressed in JavaScript');
    this.push(f, '(?:', length);
  }

  private push(f: Flags, emitted: string, length: number): void {
    this.stack.push(f);
    this.out += emitted;
    this.pos += length;
  }

  /** An escape at this.pos (a backslash); inClass changes what \b means. */
  private escape(inClass: boolean): string {
    const start = this.pos;
    const n = this.p[this.pos + 1];
    if (n === undefined) this.fail('bad escape (end of pattern)');
    this.pos += 2;
    if (/[0-9]/.test(n)) return this.numericEscape(n, inClass, start);
    if (/[A-Za-z]/.test(n)) {
      if (!KNOWN_LETTER_ESCAPES.has(n)) {
        if (n === 'N') this.fail('named characters \\N{...} are not supported', start);
        if (n === 'U') this.fail('\\U escapes are not supported; use \\u or the character itself', start);
        this.fail(`bad escape \\${n}`, start);
      }
      switch (n) {
        case 'a':
          return '\\x07';
        case 'A':
          if (inClass) this.fail('bad escape \\A in a character set', start);
          return '(?<![\\s\\S])';
        case 'Z':
          if (inClass) this.fail('bad escape \\Z in a character set', start);
          return '(?![\\s\\S])';
        case 'b':
          return inClass ? '\\x08' : '\\b';
        case 'B':
          if (inClass) this.fail('bad escape \\B in a character set', start);
          return '\\B';
        case 'x':
          return this.hexEscape(2, start);
        case 'u':
          return this.hexEscape(4, start);
        default:
          return `\\${n}`;
      }
    }
    // Any other escaped character is itself; keep it escaped only where JavaScript needs it.
    if (!inClass && this.flags.i && !this.global.i) return this.literal(n);
    return /[\\^$.*+?()[\]{}|/-]/.test(n) ? `\\${n}` : n === '\n' ? '\\n' : n;
  }

  private hexEscape(digits: number, start: number): string {
    const hex = this.p.slice(this.pos, this.pos + digits);
    if (!new RegExp(`^[0-9A-Fa-f]{${digits}}$`).test(hex)) this.fail(`incomplete escape \\${digits === 2 ? 'x' : 'u'}${hex}`, start);
    this.pos += digits;
    return `\\${digits === 2 ? 'x' : 'u'}${hex}`;
  }

  /** \0, \012 (octal) or \1..\99 (a back reference); inside a class only octal. */
  private numericEscape(first: string, inClass: boolean, start: number): string {
    let digits = first;
    const octal = (s: string): string => `\\u${Number.parseInt(s, 8).toString(16).padStart(4, '0')}`;
    if (first === '0') {
      while (digits.length < 3 && /[0-7]/.test(this.p[this.pos] ?? '')) digits += this.p[this.pos++];
      return octal(digits);
    }
    const a = this.p[this.pos] ?? '';
    const b = this.p[this.pos + 1] ?? '';
    if (/[0-7]/.test(first) && /[0-7]/.test(a) && /[0-7]/.test(b)) {
      this.pos += 2;
      const value = Number.parseInt(first + a + b, 8);
      if (value > 0o377) this.fail(`octal escape value \\${first}${a}${b} outside of range 0-0o377`, start);
      return octal(first + a + b);
    }
    if (inClass) this.fail(`bad escape \\${first} in a character set`, start);
    if (/[0-9]/.test(a)) {
      digits += a;
      this.pos++;
    }
    if (Number(digits) > this.groups) this.fail(`invalid group reference ${digits}`, start);
    return `(?:\\${digits})`;
  }

  /** A character class; Python allows ']' first and '[' unescaped inside. */
  private charClass(): void {
    const start = this.pos;
    this.pos++;
    let body = '';
    let negate = false;
    if (this.p[this.pos] === '^') {
      negate = true;
      this.pos++;
    }
    let first = true;
    const items: string[] = [];
    for (;;) {
      const c = this.p[this.pos];
      if (c === undefined) this.fail('unterminated character set', start);
      if (c === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      if (c === '\\') {
        items.push(this.escape(true));
        continue;
      }
      if (c === '[' && /^\[[:=.]/.test(this.p.slice(this.pos))) {
        // POSIX classes are not Python syntax; Python reads them as plain characters.
      }
      items.push(/[\]\\^[-]/.test(c) && c !== '-' ? `\\${c}` : c);
      this.pos++;
    }
    body = items.join('');
    if (this.flags.i && !this.global.i) body = this.caseExpandClass(items);
    this.out += `[${negate ? '^' : ''}${body}]`;
  }

  /** Add the other case of letters and simple letter ranges of a class inside (?i:...). */
  private caseExpandClass(items: string[]): string {
    let extra = '';
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      if (items[k + 1] === '-' && k + 2 < items.length) {
        const lo = items[k]!;
        const hi = items[k + 2]!;
        if (/^[a-z]$/.test(lo) && /^[a-z]$/.test(hi)) extra += `${lo.toUpperCase()}-${hi.toUpperCase()}`;
        else if (/^[A-Z]$/.test(lo) && /^[A-Z]$/.test(hi)) extra += `${lo.toLowerCase()}-${hi.toLowerCase()}`;
        k += 2;
        continue;
      }
      if (it.length === 1 && it.toLowerCase() !== it.toUpperCase()) {
        extra += it === it.toLowerCase() ? it.toUpperCase() : it.toLowerCase();
      }
    }
    return items.join('') + extra;
  }
}
