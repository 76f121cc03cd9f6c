import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isObject } from '../config/config.js';
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

/**
 * Keys a local rules file may use (fiona's names and FIONA's REDCap names). A misspelt key
 * would silently drop a condition and route more studies than meant, so unknown keys are
 * refused here. REDCap exports carry many other fields and are not checked this way.
 */
const COMMENT = ['$comment', '$schema'];
const KNOWN: Record<string, string[]> = {
  routes: ['name', 'record_id', 'active', 'routing_active', 'project', 'routing_dest_project', 'incomingAet', 'routing_incoming_aetitle',
    'sendingAet', 'routing_sending_aetitle', 'patientId', 'routing_allowed_patientid', 'patientName', 'routing_allowed_patientname',
    'event', 'routing_event_name'],
  coupling: ['name', 'record_id', 'accessionNumber', 'cl_accessionnumber', 'studyInstanceUid', 'cl_studyinstanceuid', 'project', 'cl_projectname',
    'subject', 'cl_subjectid', 'event', 'cl_eventname', 'date', 'cl_date'],
  projects: ['name', 'record_id', 'project_name', 'active', 'project_active', 'destination', 'project_destination', 'rules', 'project_rules',
    'features', 'project_features___0', 'project_features___2', 'project_features___3', 'autoId', 'project_use_autoid',
    'project_patient_naming', 'project_autoid_aetitle', 'institution', 'identity', 'knownHosts'],
  top: ['routes', 'coupling', 'projects', 'couplingExpiryDays', 'defaultDestination'],
};

function checkKeys(what: string, entry: string, o: Raw): void {
  const known = KNOWN[what]!;
  for (const k of Object.keys(o)) {
    if (!known.includes(k) && !COMMENT.includes(k)) {
      throw new RulesError(entry, `unknown key ${JSON.stringify(k)} (known: ${known.filter((x) => !/^(routing_|cl_|project_|record_id)/.test(x)).join(', ')}, or FIONA's field names)`);
    }
  }
}

function entries(what: string, v: unknown): Raw[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new RulesError(what, 'must be a list');
  v.forEach((e, i) => {
    if (!isObject(e)) throw new RulesError(`${what}[${i}]`, 'must be an object');
    checkKeys(what, `${what}[${i}]${typeof e.name === 'string' ? ` (${e.name})` : ''}`, e);
  });
  return v as Raw[];
}

/** `projects` may be a list of objects with `name`, or an object keyed by project name. */
function projectEntries(v: unknown): Raw[] {
  if (isObject(v)) {
    return Object.entries(v).map(([name, p]) => {
      if (!isObject(p)) throw new RulesError(`projects.${name}`, 'must be an object');
      checkKeys('projects', `projects.${name}`, p);
      return { name, ...p };
    });
  }
  return entries('projects', v);
}

export function rawRulesFromJson(v: unknown): RawRules {
  if (!isObject(v)) throw new RulesError('(top level)', 'the routes file must be a JSON object');
  checkKeys('top', '(top level)', v);
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
