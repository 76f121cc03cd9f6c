import { readFile } from 'node:fs/promises';
import { compilePythonRegex, PyRegexError } from './pyregex.js';
import { looksLikeHexTagRef, parseTagRef, TagRefError, type KeywordResolver } from './tagref.js';
import type { CompiledEntry, CompiledRule, Operand, Operator, RuleSet, TagRef } from './types.js';

/**
 * Load and check a classifyRules.json file. A file with an error is refused as a whole, and
 * the message names the entry (position, type, id) and the field, so a sysadmin can fix a
 * rule file that FIONA silently half-applied. References (`rule`, `notrule`) are inlined
 * here, once, so evaluation is a flat loop.
 */
export class RuleFileError extends Error {
  constructor(readonly source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'RuleFileError';
  }
}

export interface LoadOptions {
  /** DICOM keyword -> tag (the dictionary). */
  keyword?: KeywordResolver;
  /** Names the series JSON carries (rules may test them without a header keyword). */
  seriesFields?: ReadonlySet<string>;
}

const OPERATORS: Record<string, Operator> = {
  regexp: 'regexp', contains: 'contains', '==': '==', '!=': '!=', '<': '<', '>': '>', '<=': '<=', '>=': '>=',
  approx: 'approx', exist: 'exist', notexist: 'notexist',
  // FIONA's documentation spelled these with an s.
  exists: 'exist', notexists: 'notexist',
};
const NUMERIC = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/;
const ENTRY_KEYS = new Set(['type', 'id', 'description', 'check', 'rules']);
const RULE_KEYS = new Set(['tag', 'value', 'operator', 'negate', 'approxLevel', 'rule', 'notrule', 'description', 'comment']);

export async function loadRuleFile(path: string, opts: LoadOptions = {}): Promise<RuleSet> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RuleFileError(path, `cannot read the rule file: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RuleFileError(path, `not valid JSON: ${(err as Error).message}`);
  }
  return compileRules(raw, path, opts);
}

type RawEntry = Record<string, unknown>;

export function compileRules(raw: unknown, source = '(rules)', opts: LoadOptions = {}): RuleSet {
  if (!Array.isArray(raw)) throw new RuleFileError(source, 'the top level must be an array of entries');
  const warnings: string[] = [];
  const entries = raw as unknown[];
  const ids = new Map<string, number[]>();
  entries.forEach((e, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new RuleFileError(source, `entry ${i}: must be an object`);
    const id = (e as RawEntry).id;
    if (id !== undefined) {
      if (typeof id !== 'string' || id === '') throw new RuleFileError(source, `${label(e as RawEntry, i)}: field "id" must be a non-empty string`);
      ids.set(id, [...(ids.get(id) ?? []), i]);
    }
  });
  const ctx: Ctx = { source, entries: entries as RawEntry[], ids, opts, warnings, cache: new Map() };
  const perType = new Map<string, number>();
  const compiled: CompiledEntry[] = [];
  const types: string[] = [];
  entries.forEach((_, i) => {
    const e = ctx.entries[i]!;
    const where = label(e, i);
    if (typeof e.type !== 'string' || e.type.trim() === '') throw new RuleFileError(source, `${where}: field "type" must be a non-empty string`);
    for (const k of Object.keys(e)) if (!ENTRY_KEYS.has(k)) warnings.push(`${where}: unknown field "${k}" ignored`);
    if (e.description !== undefined && typeof e.description !== 'string') throw new RuleFileError(source, `${where}: field "description" must be a string`);
    if (e.check !== undefined && e.check !== 'SeriesLevel') {
      throw new RuleFileError(source, `${where}: field "check" must be "SeriesLevel" (or absent), got ${JSON.stringify(e.check)}`);
    }
    const rules = resolveEntry(ctx, i, []);
    if (rules.length === 0) warnings.push(`${where}: no rules, so every instance gets type "${e.type}"`);
    const n = perType.get(e.type) ?? 0;
    perType.set(e.type, n + 1);
    if (n === 0) types.push(e.type);
    compiled.push({
      index: i,
      type: e.type,
      ...(typeof e.id === 'string' ? { id: e.id } : {}),
      ...(typeof e.description === 'string' ? { description: e.description } : {}),
      seriesLevel: e.check === 'SeriesLevel',
      key: `${e.type}#${n}`,
      rules,
    });
  });
  for (const [id, at] of ids) {
    if (at.length > 1) warnings.push(`id "${id}" is used by entries ${at.join(', ')}; a reference to it would be ambiguous`);
  }
  return { entries: compiled, types, source, warnings };
}

interface Ctx {
  source: string;
  entries: RawEntry[];
  ids: Map<string, number[]>;
  opts: LoadOptions;
  warnings: string[];
  cache: Map<number, CompiledRule[]>;
}

function label(e: RawEntry, i: number): string {
  const t = typeof e.type === 'string' ? ` type "${e.type}"` : '';
  const id = typeof e.id === 'string' ? ` id "${e.id}"` : '';
  return `entry ${i}${t}${id}`;
}

/** The entry's rules with references inlined; `chain` holds the entries being resolved (cycles). */
function resolveEntry(ctx: Ctx, i: number, chain: number[]): CompiledRule[] {
  const cached = ctx.cache.get(i);
  if (cached) return cached;
  const e = ctx.entries[i]!;
  const where = label(e, i);
  if (!Array.isArray(e.rules)) throw new RuleFileError(ctx.source, `${where}: field "rules" must be an array`);
  const out: CompiledRule[] = [];
  e.rules.forEach((r: unknown, k: number) => {
    const at = `${where} rules[${k}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new RuleFileError(ctx.source, `${at}: must be an object`);
    const rule = r as Record<string, unknown>;
    for (const key of Object.keys(rule)) if (!RULE_KEYS.has(key)) ctx.warnings.push(`${at}: unknown field "${key}" ignored`);
    if (rule.rule !== undefined || rule.notrule !== undefined) {
      out.push(...reference(ctx, rule, at, i, chain));
    } else {
      out.push(compileRule(ctx, rule, at));
    }
  });
  ctx.cache.set(i, out);
  return out;
}

/** `{"rule": id}` inlines the entry's rules; `{"notrule": id}` inlines them each negated (as FIONA did). */
function reference(ctx: Ctx, rule: Record<string, unknown>, at: string, self: number, chain: number[]): CompiledRule[] {
  const negated = rule.notrule !== undefined;
  const field = negated ? 'notrule' : 'rule';
  if (rule.rule !== undefined && rule.notrule !== undefined) throw new RuleFileError(ctx.source, `${at}: has both "rule" and "notrule"`);
  const id = rule[field];
  if (typeof id !== 'string' || id === '') throw new RuleFileError(ctx.source, `${at}: field "${field}" must be the id of another entry`);
  for (const k of ['tag', 'value', 'operator']) {
    if (rule[k] !== undefined) throw new RuleFileError(ctx.source, `${at}: a "${field}" reference cannot also have "${k}"`);
  }
  const targets = ctx.ids.get(id);
  if (!targets) throw new RuleFileError(ctx.source, `${at}: field "${field}" refers to id "${id}", which no entry has`);
  if (targets.length > 1) throw new RuleFileError(ctx.source, `${at}: field "${field}" refers to id "${id}", which entries ${targets.join(', ')} share`);
  const target = targets[0]!;
  if (target === self || chain.includes(target)) {
    throw new RuleFileError(ctx.source, `${at}: field "${field}" refers to id "${id}", which refers back to this entry (a cycle)`);
  }
  const inlined = resolveEntry(ctx, target, [...chain, self]);
  if (negated && inlined.length > 1) {
    ctx.warnings.push(`${at}: "notrule": "${id}" negates each of its ${inlined.length} rules, so it passes only when none of them passes (FIONA's meaning)`);
  }
  const via = `${at} via ${field} "${id}"`;
  return inlined.map((r) => ({ ...r, negate: negated ? !r.negate : r.negate, origin: `${via}: ${r.origin}` }));
}

function compileRule(ctx: Ctx, rule: Record<string, unknown>, at: string): CompiledRule {
  const fail = (field: string, msg: string): never => {
    throw new RuleFileError(ctx.source, `${at}: field "${field}" ${msg}`);
  };
  if (rule.tag === undefined) fail('tag', 'is missing (a rule needs "tag", or "rule"/"notrule")');
  let tag: TagRef;
  try {
    tag = parseTagRef(rule.tag, ctx.opts.keyword);
  } catch (err) {
    if (err instanceof TagRefError) fail('tag', err.message);
    throw err;
  }
  if (tag!.kind === 'name' && tag!.tag === undefined && tag!.name !== 'ClassifyType' && !ctx.opts.seriesFields?.has(tag!.name)) {
    ctx.warnings.push(`${at}: "${tag!.name}" is neither a DICOM keyword nor a series JSON field; the rule passes only if negated`);
  }
  const opRaw = rule.operator ?? 'regexp';
  if (typeof opRaw !== 'string' || !(opRaw in OPERATORS)) {
    fail('operator', `must be one of ${Object.keys(OPERATORS).join(', ')}; got ${JSON.stringify(opRaw)}`);
  }
  const op = OPERATORS[opRaw as string]!;
  const negate = parseNegate(rule.negate, () => fail('negate', `must be "yes" or "no", got ${JSON.stringify(rule.negate)}`));
  let approxLevel = 1e-4;
  if (rule.approxLevel !== undefined) {
    const s = String(rule.approxLevel);
    if (!NUMERIC.test(s) || Number(s) < 0) fail('approxLevel', `must be a non-negative number, got ${JSON.stringify(rule.approxLevel)}`);
    approxLevel = Number(s);
  }
  const base: CompiledRule = { tag: tag!, op, approxLevel, negate, origin: at };
  if (op === 'exist' || op === 'notexist') return base;
  if (rule.value === undefined) fail('value', `is missing (operator "${op}" compares with a value)`);
  const value = parseOperand(ctx, rule.value, (msg) => fail('value', msg));
  const compiled: CompiledRule = { ...base, value };
  checkOperand(op, value, (msg) => fail('value', msg));
  if (op === 'regexp' && value.kind === 'literal') {
    try {
      compiled.regex = compilePythonRegex(value.values[0]!);
    } catch (err) {
      if (err instanceof PyRegexError) fail('value', `is not a usable regular expression: ${err.message}`);
      throw err;
    }
  }
  return compiled;
}

function parseNegate(raw: unknown, bad: () => never): boolean {
  if (raw === undefined || raw === 'no' || raw === false) return false;
  if (raw === 'yes' || raw === true) return true;
  return bad();
}

/**
 * A value is a tag reference when written as {"tag": [...]}, as a hex tag array
 * (["0x0018","0x0050"]), or as a one-element array naming a keyword or series field;
 * anything else is a literal.
 */
function parseOperand(ctx: Ctx, raw: unknown, bad: (msg: string) => never): Operand {
  const asRef = (arr: unknown): Operand => {
    try {
      return { kind: 'ref', ref: parseTagRef(arr, ctx.opts.keyword) };
    } catch (err) {
      if (err instanceof TagRefError) return bad(`is not a valid tag reference: ${err.message}`);
      throw err;
    }
  };
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const o = raw as Record<string, unknown>;
    if (o.tag === undefined) return bad('as an object must be {"tag": [...]}');
    return asRef(o.tag);
  }
  if (looksLikeHexTagRef(raw)) return asRef(raw);
  if (Array.isArray(raw) && raw.length === 1 && typeof raw[0] === 'string') {
    const n = raw[0].trim();
    if (n === 'ClassifyType' || ctx.opts.seriesFields?.has(n) || ctx.opts.keyword?.(n) !== undefined) return asRef(raw);
  }
  if (typeof raw === 'string') return { kind: 'literal', values: [raw], list: false };
  if (typeof raw === 'number' && Number.isFinite(raw)) return { kind: 'literal', values: [String(raw)], list: false };
  if (Array.isArray(raw) && raw.length > 0 && raw.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))) {
    return { kind: 'literal', values: raw.map(String), list: true };
  }
  return bad(`must be a string, a number, a list of them or a tag reference; got ${JSON.stringify(raw)}`);
}

function checkOperand(op: Operator, v: Operand, bad: (msg: string) => never): void {
  if (v.kind === 'ref') return;
  const numeric = op === '<' || op === '>' || op === '<=' || op === '>=' || op === 'approx';
  if (numeric && !v.values.every((s) => NUMERIC.test(s))) bad(`must be numeric for operator "${op}", got ${JSON.stringify(v.list ? v.values : v.values[0])}`);
  if ((op === 'regexp' || op === 'contains') && v.list) bad(`must be a single string for operator "${op}", got a list`);
}
