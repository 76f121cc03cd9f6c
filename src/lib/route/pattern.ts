import type { Pattern } from './types.js';

/**
 * FIONA's routing patterns are Python regular expressions applied with `re.match`: anchored
 * at the start, not at the end. We keep that meaning so an old site's rules route the same
 * studies, and translate the few Python spellings JavaScript lacks.
 */
export class PatternError extends Error {}

/** Python-only syntax -> JavaScript: named groups, back-references, a leading (?i). */
function translate(source: string): { body: string; flags: string } {
  let body = source;
  let flags = '';
  const inline = /^\(\?([aiLmsux]+)\)/.exec(body);
  if (inline) {
    const f = inline[1] ?? '';
    if (/[aLux]/.test(f)) throw new PatternError(`inline flags (?${f}) are not supported; only i, m and s are`);
    flags = [...new Set(f)].join('');
    body = body.slice(inline[0].length);
  }
  body = body.replace(/\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/g, '(?<$1>').replace(/\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/g, '\\k<$1>');
  if (/\\[AZ]/.test(body.replace(/\\\\/g, ''))) {
    // \A and \Z are anchors in Python and plain letters in JavaScript: a silent difference.
    body = body.replace(/(^|[^\\])((?:\\\\)*)\\A/g, '$1$2^').replace(/(^|[^\\])((?:\\\\)*)\\Z/g, '$1$2$');
  }
  return { body, flags };
}

/** Compile a routing pattern; throws PatternError with the engine's reason. */
export function compilePattern(source: string): Pattern {
  if (source.length > 1000) throw new PatternError('pattern longer than 1000 characters');
  const { body, flags } = translate(source);
  try {
    return { source, regex: new RegExp(`^(?:${body})`, flags) };
  } catch (err) {
    throw new PatternError((err as Error).message.replace(/^Invalid regular expression: /, ''));
  }
}

/** Python's re.match: true when the pattern matches at the start of the value. */
export function patternMatches(p: Pattern, value: string): boolean {
  return p.regex.test(value);
}
