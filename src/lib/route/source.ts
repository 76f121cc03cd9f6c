import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { parseRules, RulesError, type RawRules } from './parse.js';
import type { RoutingRules } from './types.js';

/**
 * Where routing rules come from. A local JSON file and REDCap (src/lib/redcap/source.ts)
 * are two sources of the same rules: both hand raw entries to parseRules, which validates
 * them the same way.
 */
export interface RulesSource {
  /** For messages: a path or a URL (never a token). */
  readonly origin: string;
  load(): Promise<RoutingRules>;
}

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function entries(what: string, v: unknown): Raw[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new RulesError(what, 'must be a list');
  v.forEach((e, i) => {
    if (!isObject(e)) throw new RulesError(`${what}[${i}]`, 'must be an object');
  });
  return v as Raw[];
}

/** `projects` may be a list of objects with `name`, or an object keyed by project name. */
function projectEntries(v: unknown): Raw[] {
  if (isObject(v)) {
    return Object.entries(v).map(([name, p]) => {
      if (!isObject(p)) throw new RulesError(`projects.${name}`, 'must be an object');
      return { name, ...p };
    });
  }
  return entries('projects', v);
}

export function rawRulesFromJson(v: unknown): RawRules {
  if (!isObject(v)) throw new RulesError('(top level)', 'the routes file must be a JSON object');
  return {
    routes: entries('routes', v.routes),
    coupling: entries('coupling', v.coupling),
    projects: projectEntries(v.projects),
    couplingExpiryDays: v.couplingExpiryDays,
    defaultDestination: v.defaultDestination,
  };
}

export class FileRulesSource implements RulesSource {
  readonly origin: string;
  constructor(path: string) {
    this.origin = resolve(path);
  }

  async load(): Promise<RoutingRules> {
    let text: string;
    try {
      text = await readFile(this.origin, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read the routes file ${this.origin}: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${this.origin}: not valid JSON: ${(err as Error).message}`);
    }
    try {
      return parseRules(rawRulesFromJson(json), { origin: this.origin, baseDir: dirname(this.origin) });
    } catch (err) {
      if (err instanceof RulesError) throw new RulesError(`${this.origin}: ${err.entry}`, err.message.slice(err.entry.length + 2));
      throw err;
    }
  }
}
