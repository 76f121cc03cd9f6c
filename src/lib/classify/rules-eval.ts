import { compilePythonRegex } from './pyregex.js';
import type { CompiledRule, Lookup, Operand, RuleSet, RuleValue, TagRef } from './types.js';

/**
 * Evaluate a rule set on one instance. Entries run in file order; `ClassifyType` seen by a
 * rule is the series' types so far plus the types this instance has already earned from
 * earlier entries, so later entries can build on earlier ones (FIONA's oblique/localizer idiom).
 *
 * Decisions where FIONA's behaviour was accidental (all listed in docs/fiona-classify.md):
 * a rule on an absent tag fails (then `negate` applies), `notexist` passes on it; numeric
 * operators fail on non-numeric values; `==`/`!=` compare numbers as numbers and anything
 * else as exact strings; `approx` works element-wise on multi-valued tags.
 */
export interface InstanceResult {
  /** Keys of the entries that passed. */
  passed: string[];
  /** Keys of the SeriesLevel entries that failed (they can no longer hold for the series). */
  failedSeriesLevel: string[];
  /** Types earned by this instance alone, in rule order. */
  types: string[];
}

export function evaluateInstance(rules: RuleSet, lookup: Lookup, priorTypes: readonly string[]): InstanceResult {
  const current = new Set(priorTypes);
  const earned = new Set<string>();
  const passed: string[] = [];
  const failedSeriesLevel: string[] = [];
  const withTypes: Lookup = (ref) =>
    ref.kind === 'name' && ref.name === 'ClassifyType' ? { values: [...current], multi: true } : lookup(ref);
  for (const entry of rules.entries) {
    const ok = entry.rules.every((r) => evaluateRule(r, withTypes));
    if (ok) {
      passed.push(entry.key);
      earned.add(entry.type);
      current.add(entry.type);
    } else if (entry.seriesLevel) {
      failedSeriesLevel.push(entry.key);
    }
  }
  return { passed, failedSeriesLevel, types: rules.types.filter((t) => earned.has(t)) };
}

export function evaluateRule(rule: CompiledRule, lookup: Lookup): boolean {
  const got = select(lookup, rule.tag);
  return rule.negate ? !compare(rule, got, lookup) : compare(rule, got, lookup);
}

/** The value a tag reference names, honouring an index into a multi-valued element. */
function select(lookup: Lookup, ref: TagRef): RuleValue | undefined {
  const v = lookup(ref);
  if (v === undefined || ref.kind !== 'tag' || ref.index === undefined) return v;
  const i = ref.index < 0 ? v.values.length + ref.index : ref.index;
  const one = v.values[i];
  return one === undefined ? undefined : { values: [one], multi: false };
}

function compare(rule: CompiledRule, got: RuleValue | undefined, lookup: Lookup): boolean {
  if (rule.op === 'exist') return got !== undefined;
  if (rule.op === 'notexist') return got === undefined;
  if (got === undefined) return false;
  const want = operand(rule.value!, lookup);
  if (want === undefined) return false;
  switch (rule.op) {
    case 'regexp':
      return regexpMatch(rule.regex ?? dynamicRegex(want.values[0]), got);
    case 'contains':
      return contains(got, want.values[0]);
    case '==':
      return equal(got.values, want.values);
    case '!=':
      return !equal(got.values, want.values);
    case 'approx':
      return numericAll(got.values, want.values, (a, b) => Math.abs(a - b) <= rule.approxLevel);
    case '<':
      return numericAll(got.values, want.values, (a, b) => a < b);
    case '>':
      return numericAll(got.values, want.values, (a, b) => a > b);
    case '<=':
      return numericAll(got.values, want.values, (a, b) => a <= b);
    case '>=':
      return numericAll(got.values, want.values, (a, b) => a >= b);
  }
}

function operand(v: Operand, lookup: Lookup): { values: string[] } | undefined {
  if (v.kind === 'literal') return v;
  return select(lookup, v.ref);
}

/** A pattern that came from another tag's value: compiled on use, cached, invalid never matches. */
const dynamicCache = new Map<string, RegExp | null>();
function dynamicRegex(pattern: string | undefined): RegExp | null {
  if (pattern === undefined) return null;
  let re = dynamicCache.get(pattern);
  if (re === undefined) {
    try {
      re = compilePythonRegex(pattern);
    } catch {
      re = null;
    }
    if (dynamicCache.size > 1000) dynamicCache.clear();
    dynamicCache.set(pattern, re);
  }
  return re;
}

/**
 * re.search on each value; on a multi-valued one also on FIONA's list spellings, so rules
 * written against str(list) keep working: `[0, 256, 256, 0]` and Python's own repr
 * `['ORIGINAL', 'PRIMARY']` (numbers bare, strings quoted).
 */
export function regexpMatch(re: RegExp | null, got: RuleValue): boolean {
  if (re === null) return false;
  const candidates = got.values.length === 0 ? [''] : got.values;
  if (candidates.some((s) => re.test(s))) return true;
  if (!got.multi) return false;
  return listForms(got.values).some((s) => re.test(s));
}

export function listForms(values: string[]): string[] {
  const plain = `[${values.join(', ')}]`;
  const py = `[${values.map((v) => (isNumber(v) ? pyNumber(v) : pyRepr(v))).join(', ')}]`;
  return plain === py ? [plain] : [plain, py];
}

/** Python's repr of a str: single quotes unless the text has one and no double quote. */
function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, '\\\\').replace(new RegExp(q, 'g'), `\\${q}`).replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  return `${q}${body}${q}`;
}

/** pydicom prints IS values as integers and DS values as they were written. */
function pyNumber(s: string): string {
  return s.trim();
}

function contains(got: RuleValue, needle: string | undefined): boolean {
  if (needle === undefined) return false;
  if (got.multi) return got.values.includes(needle);
  return (got.values[0] ?? '').includes(needle);
}

const NUMERIC = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/;
export function isNumber(s: string): boolean {
  return NUMERIC.test(s);
}

function equal(a: string[], b: string[]): boolean {
  if (a.length !== b.length || a.length === 0) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return isNumber(x) && isNumber(y) ? Number(x) === Number(y) : x.trim() === y.trim();
  });
}

/**
 * A numeric comparison of every value: element-wise against a list of the same length, or
 * each value against a single number. Any non-numeric value fails the rule.
 */
function numericAll(got: string[], want: string[], test: (a: number, b: number) => boolean): boolean {
  if (got.length === 0 || want.length === 0) return false;
  if (want.length !== 1 && want.length !== got.length) return false;
  return got.every((g, i) => {
    const w = want.length === 1 ? want[0]! : want[i]!;
    return isNumber(g) && isNumber(w) && test(Number(g), Number(w));
  });
}
