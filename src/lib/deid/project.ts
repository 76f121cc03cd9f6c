import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { lookupTag, parseTagKey } from '../dicom/dictionary.js';
import { formatTag } from '../dicom/tags.js';
import { ConfigError, UsageError } from '../errors.js';
import { isObject } from '../config/config.js';
import { DEFAULT_MAX_SHIFT_DAYS } from './dates.js';
import { PROFILES, type ProfileName, type ProfileOption, parseOptionName } from './options.js';
import { checkUidRoot } from './uids.js';

/**
 * A project's de-identification rules: one JSON file per project (examples in
 * rules/projects/). Everything a project can say, validated here with the key named in
 * every error: a typo must never silently weaken de-identification, so unknown keys are
 * refused.
 */
export interface PixelRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface TagOverride {
  tag: number;
  vr: string;
  value: string;
}

export interface RewriteRule {
  tag: number;
  pattern: RegExp;
  replacement: string;
}

/** A private element kept under Retain Safe Private: its creator and (group, element byte). */
export interface PrivateKeep {
  creator: string;
  group: number;
  /** The low byte of the element number (the block byte is the creator's slot, which varies). */
  element: number;
}

export type BurnedInAction = 'quarantine' | 'allow';

export interface ProjectRules {
  name: string;
  /** The file the rules came from (for messages), if any. */
  source?: string;
  profile: ProfileName;
  options: Set<ProfileOption>;
  uidRoot?: string;
  secretFile?: string;
  /** Fixed pseudonyms (FIONA: from the transfer request). */
  patientId?: string;
  patientName?: string;
  /** A table originalPatientID -> pseudonym (CSV or JSON). */
  pseudonymTable?: string;
  /** Prefix of derived pseudonyms. */
  pseudonymPrefix: string;
  /** A patient not in the pseudonym table: derive a pseudonym, or refuse the instance. */
  unmappedPatient: 'derive' | 'quarantine';
  /** 'auto': per-patient offset derived from the secret; a number: that many days for everyone. */
  dateShift: 'auto' | number;
  maxShiftDays: number;
  set: TagOverride[];
  rewrite: RewriteRule[];
  keep: number[];
  remove: number[];
  keepPrivate: PrivateKeep[];
  burnedIn: { action: BurnedInAction; mask: PixelRect[] };
}

export function defaultProjectRules(name = 'default'): ProjectRules {
  return {
    name,
    profile: 'basic',
    options: new Set(),
    pseudonymPrefix: '',
    unmappedPatient: 'quarantine',
    dateShift: 'auto',
    maxShiftDays: DEFAULT_MAX_SHIFT_DAYS,
    set: [],
    rewrite: [],
    keep: [],
    remove: [],
    keepPrivate: [],
    burnedIn: { action: 'quarantine', mask: [] },
  };
}

const KEYS = new Set([
  '$schema', 'name', 'description', 'profile', 'options', 'uidRoot', 'secretFile', 'pseudonym', 'dateShift', 'maxShiftDays',
  'set', 'rewrite', 'keep', 'remove', 'keepPrivate', 'burnedIn',
]);
const PSEUDONYM_KEYS = new Set(['patientId', 'patientName', 'table', 'prefix', 'unmapped']);

/** A project name is used in paths and in the keyed hashes: keep it plain. */
export function checkProjectName(name: string, key = 'name'): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new ConfigError(key, `a project name is 1-64 characters of letters, digits, '.', '_' or '-' (got ${JSON.stringify(name)})`);
  }
  return name;
}

/** Resolve a tag key (keyword or gggg,eeee) for a config key, with the key in the error. */
export function tagOf(key: string, text: unknown): number {
  if (typeof text !== 'string' && typeof text !== 'number') throw new ConfigError(key, `expected a tag or keyword, got ${JSON.stringify(text)}`);
  try {
    return parseTagKey(text);
  } catch {
    throw new ConfigError(key, `not a DICOM tag or keyword: ${JSON.stringify(text)}`);
  }
}

/** The VR of a standard tag for an override; private tags must say their VR. */
export function vrOf(key: string, tag: number, vr?: string): string {
  if (vr !== undefined) {
    if (!/^[A-Z]{2}$/.test(vr)) throw new ConfigError(key, `not a VR: ${JSON.stringify(vr)}`);
    return vr;
  }
  const e = lookupTag(tag);
  if (!e || e.vr === 'NONE' || e.vr === 'UN') throw new ConfigError(key, 'tag not in the dictionary: give its VR ("tag:VR=value" or {"vr": ...})');
  return e.vr;
}

/**
 * Parse "TAG=VALUE" (command line) where TAG is a keyword or gggg,eeee, optionally followed
 * by ":VR" for tags the dictionary does not know.
 */
export function parseOverride(text: string, key = '--set'): TagOverride {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`${key}: expected TAG=VALUE (TAG a keyword or gggg,eeee), got ${JSON.stringify(text)}`);
  const [tagText, vr] = text.slice(0, eq).split(':') as [string, string | undefined];
  const tag = tagOf(key, tagText);
  return makeOverride(key, tag, text.slice(eq + 1), vr);
}

function makeOverride(key: string, tag: number, value: string, vr?: string): TagOverride {
  if ((tag >>> 16) === 0x0002) throw new ConfigError(key, 'File Meta elements (0002,xxxx) are written by fiona, not set');
  const v = vrOf(key, tag, vr);
  if (v === 'SQ') throw new ConfigError(key, 'a sequence cannot be set to a text value');
  if (v === 'UI' && !/^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(value)) throw new ConfigError(key, `not a valid UID: ${JSON.stringify(value)}`);
  if (v === 'DA' && value !== '' && !/^\d{8}$/.test(value)) throw new ConfigError(key, `a DA value is YYYYMMDD, got ${JSON.stringify(value)}`);
  return { tag, vr: v, value };
}

function strings(key: string, v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(key, 'must be a list of strings');
  return v as string[];
}

function optStr(key: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new ConfigError(key, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function nonNegInt(key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(key, `must be a whole number >= 0, got ${JSON.stringify(v)}`);
  return v;
}

/** "auto", or a whole number of days (negative into the past). */
export function parseDateShift(key: string, v: unknown): 'auto' | number {
  if (v === 'auto') return 'auto';
  const n = typeof v === 'string' && /^[+-]?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || Math.abs(n) > 36500) {
    throw new ConfigError(key, `must be "auto" or a whole number of days (-36500..36500), got ${JSON.stringify(v)}`);
  }
  return n;
}

export function parseOptions(key: string, list: string[]): Set<ProfileOption> {
  const out = new Set<ProfileOption>();
  list.forEach((o, i) => {
    const opt = parseOptionName(o);
    if (!opt) throw new ConfigError(`${key}[${i}]`, `unknown option ${JSON.stringify(o)}; see fiona-anonymize --help for the list`);
    out.add(opt);
  });
  return out;
}

function parsePrivateKeep(key: string, v: unknown): PrivateKeep {
  if (!isObject(v)) throw new ConfigError(key, 'must be {"creator": "...", "tag": "gggg,xxee"}');
  const creator = optStr(`${key}.creator`, v.creator);
  if (!creator) throw new ConfigError(`${key}.creator`, 'is required');
  const tag = optStr(`${key}.tag`, v.tag);
  const m = tag ? /^\(?([0-9A-Fa-f]{4}),(?:xx|XX|[0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\)?$/.exec(tag) : null;
  if (!m) throw new ConfigError(`${key}.tag`, `must be "gggg,xxee" (xx: the creator's block, any), got ${JSON.stringify(v.tag)}`);
  const group = Number.parseInt(m[1]!, 16);
  if (group % 2 === 0) throw new ConfigError(`${key}.tag`, `group ${m[1]} is not private (odd)`);
  return { creator: creator.trim(), group, element: Number.parseInt(m[2]!, 16) };
}

function parseRect(key: string, v: unknown): PixelRect {
  if (!isObject(v)) throw new ConfigError(key, 'must be {"x":..,"y":..,"width":..,"height":..} in pixels');
  const r = { x: nonNegInt(`${key}.x`, v.x), y: nonNegInt(`${key}.y`, v.y), width: nonNegInt(`${key}.width`, v.width), height: nonNegInt(`${key}.height`, v.height) };
  if (r.width === 0 || r.height === 0) throw new ConfigError(key, 'an empty rectangle masks nothing');
  return r;
}

function parseRewrite(key: string, v: unknown): RewriteRule {
  if (!isObject(v)) throw new ConfigError(key, 'must be {"tag": ..., "pattern": "regex", "replacement": "..."}');
  const tag = tagOf(`${key}.tag`, v.tag);
  const pattern = optStr(`${key}.pattern`, v.pattern);
  if (!pattern) throw new ConfigError(`${key}.pattern`, 'is required');
  const flags = v.flags === undefined ? '' : String(v.flags);
  if (!/^[imsu]*$/.test(flags)) throw new ConfigError(`${key}.flags`, 'only the flags i, m, s, u are allowed (g is implied)');
  let re: RegExp;
  try {
    re = new RegExp(pattern, `g${flags}`);
  } catch (err) {
    throw new ConfigError(`${key}.pattern`, `not a valid regular expression: ${(err as Error).message}`);
  }
  const replacement = v.replacement === undefined ? '' : v.replacement;
  if (typeof replacement !== 'string') throw new ConfigError(`${key}.replacement`, 'must be a string');
  return { tag, pattern: re, replacement };
}

/** Validate a project rules object (already parsed JSON). Relative paths are taken from `baseDir`. */
export function parseProjectRules(raw: unknown, opts: { source?: string; baseDir?: string; name?: string } = {}): ProjectRules {
  if (!isObject(raw)) throw new ConfigError(opts.source ?? 'project', 'project rules must be a JSON object');
  for (const k of Object.keys(raw)) {
    if (!KEYS.has(k)) throw new ConfigError(k, `unknown key in project rules${opts.source ? ` ${opts.source}` : ''} (known: ${[...KEYS].filter((x) => x !== '$schema').join(', ')})`);
  }
  const base = opts.baseDir ?? process.cwd();
  const path = (p: string | undefined): string | undefined => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(base, p));
  const rules = defaultProjectRules(checkProjectName(optStr('name', raw.name) ?? opts.name ?? 'default'));
  rules.source = opts.source;
  const profile = optStr('profile', raw.profile) ?? 'basic';
  if (!(PROFILES as readonly string[]).includes(profile)) throw new ConfigError('profile', `unknown profile ${JSON.stringify(profile)} (known: ${PROFILES.join(', ')})`);
  rules.profile = profile as ProfileName;
  rules.options = parseOptions('options', strings('options', raw.options));
  const root = optStr('uidRoot', raw.uidRoot);
  if (root !== undefined) {
    try {
      rules.uidRoot = checkUidRoot(root);
    } catch (err) {
      throw new ConfigError('uidRoot', (err as Error).message.replace(/^uidRoot: /, ''));
    }
  }
  rules.secretFile = path(optStr('secretFile', raw.secretFile));
  if (raw.pseudonym !== undefined) {
    const p = raw.pseudonym;
    if (!isObject(p)) throw new ConfigError('pseudonym', 'must be an object');
    for (const k of Object.keys(p)) if (!PSEUDONYM_KEYS.has(k)) throw new ConfigError(`pseudonym.${k}`, `unknown key (known: ${[...PSEUDONYM_KEYS].join(', ')})`);
    rules.patientId = optStr('pseudonym.patientId', p.patientId);
    rules.patientName = optStr('pseudonym.patientName', p.patientName);
    rules.pseudonymTable = path(optStr('pseudonym.table', p.table));
    rules.pseudonymPrefix = p.prefix === undefined ? '' : (optStr('pseudonym.prefix', p.prefix) ?? '');
    if (!/^[A-Za-z0-9_-]{0,16}$/.test(rules.pseudonymPrefix)) throw new ConfigError('pseudonym.prefix', 'at most 16 letters, digits, _ or -');
    const unmapped = p.unmapped ?? 'quarantine';
    if (unmapped !== 'derive' && unmapped !== 'quarantine') throw new ConfigError('pseudonym.unmapped', 'must be "derive" or "quarantine"');
    rules.unmappedPatient = unmapped;
  }
  if (raw.dateShift !== undefined) rules.dateShift = parseDateShift('dateShift', raw.dateShift);
  if (raw.maxShiftDays !== undefined) {
    rules.maxShiftDays = nonNegInt('maxShiftDays', raw.maxShiftDays);
    if (rules.maxShiftDays < 1 || rules.maxShiftDays > 36500) throw new ConfigError('maxShiftDays', 'must be in 1..36500');
  }
  if (raw.set !== undefined) {
    if (!isObject(raw.set)) throw new ConfigError('set', 'must be an object {"Keyword or gggg,eeee[:VR]": "value"}');
    for (const [k, v] of Object.entries(raw.set)) {
      if (typeof v !== 'string') throw new ConfigError(`set.${k}`, 'the value must be a string');
      const [tagText, vr] = k.split(':') as [string, string | undefined];
      rules.set.push(makeOverride(`set.${k}`, tagOf(`set.${k}`, tagText), v, vr));
    }
  }
  if (raw.rewrite !== undefined) {
    if (!Array.isArray(raw.rewrite)) throw new ConfigError('rewrite', 'must be a list');
    rules.rewrite = raw.rewrite.map((r, i) => parseRewrite(`rewrite[${i}]`, r));
  }
  rules.keep = strings('keep', raw.keep).map((t, i) => tagOf(`keep[${i}]`, t));
  rules.remove = strings('remove', raw.remove).map((t, i) => tagOf(`remove[${i}]`, t));
  const both = rules.keep.filter((t) => rules.remove.includes(t));
  if (both.length) throw new ConfigError('keep', `${both.length} tag(s) are in both keep and remove`);
  if (raw.keepPrivate !== undefined) {
    if (!Array.isArray(raw.keepPrivate)) throw new ConfigError('keepPrivate', 'must be a list');
    rules.keepPrivate = raw.keepPrivate.map((p, i) => parsePrivateKeep(`keepPrivate[${i}]`, p));
  }
  if (raw.burnedIn !== undefined) {
    const b = raw.burnedIn;
    if (!isObject(b)) throw new ConfigError('burnedIn', 'must be {"action": "quarantine"|"allow", "mask": [rectangles]}');
    for (const k of Object.keys(b)) if (k !== 'action' && k !== 'mask') throw new ConfigError(`burnedIn.${k}`, 'unknown key (known: action, mask)');
    const action = b.action ?? 'quarantine';
    if (action !== 'quarantine' && action !== 'allow') throw new ConfigError('burnedIn.action', 'must be "quarantine" or "allow"');
    const mask = b.mask === undefined ? [] : Array.isArray(b.mask) ? b.mask.map((r, i) => parseRect(`burnedIn.mask[${i}]`, r)) : undefined;
    if (!mask) throw new ConfigError('burnedIn.mask', 'must be a list of rectangles');
    rules.burnedIn = { action, mask };
  }
  return finishRules(rules);
}

/**
 * Checks across keys, run after the command line is merged in too: listing safe private
 * tags is what the Retain Safe Private option means, so it implies it; the two
 * longitudinal options exclude each other; a fixed date shift implies modified dates.
 */
export function finishRules(rules: ProjectRules): ProjectRules {
  if (rules.keepPrivate.length > 0) rules.options.add('retainSafePrivate');
  if (rules.options.has('retainLongitudinalFullDates') && rules.options.has('retainLongitudinalModifiedDates')) {
    throw new UsageError('the options retain-longitudinal-full-dates and retain-longitudinal-modified-dates exclude each other');
  }
  return rules;
}

/** Read and validate a project rules file. */
export function loadProjectRulesFile(file: string, name?: string): ProjectRules {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, `cannot read the project rules: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, `not valid JSON: ${(err as Error).message}`);
  }
  return parseProjectRules(raw, { source: file, baseDir: dirname(file), name });
}

export const SHIPPED_PROJECTS_DIR = new URL('../../../rules/projects/', import.meta.url);

/**
 * Find a project's rules: a path (contains '/' or ends in .json); else the config's
 * `projects.<name>` (inline rules, or {"rules": "file"}); else <dir>/<name>.json in
 * $FIONA_PROJECTS_DIR, /etc/fiona/projects and the shipped rules/projects/.
 */
export function loadProjectRules(nameOrPath: string, configRaw: Record<string, unknown> = {}, env = process.env): ProjectRules {
  if (nameOrPath.includes('/') || nameOrPath.endsWith('.json')) {
    if (!existsSync(nameOrPath)) throw new UsageError(`--project: no such rules file: ${nameOrPath}`);
    return loadProjectRulesFile(nameOrPath);
  }
  checkProjectName(nameOrPath, '--project');
  const projects = configRaw.projects;
  if (isObject(projects) && projects[nameOrPath] !== undefined) {
    const entry = projects[nameOrPath];
    if (isObject(entry) && typeof entry.rules === 'string') return loadProjectRulesFile(entry.rules, nameOrPath);
    if (!isObject(entry)) throw new ConfigError(`projects.${nameOrPath}`, 'must be an object');
    return parseProjectRules(entry, { source: `config projects.${nameOrPath}`, name: nameOrPath });
  }
  const dirs = [env.FIONA_PROJECTS_DIR, '/etc/fiona/projects', SHIPPED_PROJECTS_DIR.pathname].filter((d): d is string => Boolean(d));
  for (const d of dirs) {
    const f = join(d, `${nameOrPath}.json`);
    if (existsSync(f)) return loadProjectRulesFile(f, nameOrPath);
  }
  throw new UsageError(`unknown project ${JSON.stringify(nameOrPath)}: not in the config's "projects" and no ${nameOrPath}.json in ${dirs.join(', ')}`);
}

/** A keyword for messages: 'PatientName' or '(0009,1001)'. */
export function tagName(tag: number): string {
  const e = lookupTag(tag);
  return e?.keyword ? `${e.keyword} ${formatTag(tag)}` : formatTag(tag);
}

/** What a project needs the secret for; undefined when it needs none. */
export function secretNeededFor(rules: ProjectRules, hasTable: boolean): string | undefined {
  if (!rules.options.has('retainUIDs')) return 'UIDs are replaced by keyed pseudonyms';
  if (rules.options.has('retainLongitudinalModifiedDates') && rules.dateShift === 'auto') return 'dates are shifted by a per-patient offset';
  if (rules.patientId === undefined && (!hasTable || rules.unmappedPatient === 'derive')) return 'patient pseudonyms are derived';
  return undefined;
}
