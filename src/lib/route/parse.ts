import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { isValidAet } from '../config/config.js';
import { parseDestination } from '../transport/destination.js';
import { UsageError } from '../errors.js';
import { compileAutoIdPattern } from './autoid-pattern.js';
import { compilePattern, PatternError } from './pattern.js';
import {
  PROJECT_FEATURES, type CouplingEntry, type Pattern, type Project, type ProjectFeature, type Route, type RoutingRules,
} from './types.js';

/** A routing rules entry that is wrong; the message names the entry and the field. */
export class RulesError extends UsageError {
  constructor(readonly entry: string, message: string) {
    super(`${entry}: ${message}`);
  }
}

type Raw = Record<string, unknown>;

/** The rules as they come from a file or from REDCap, before validation. */
export interface RawRules {
  routes: Raw[];
  coupling: Raw[];
  projects: Raw[];
  couplingExpiryDays?: unknown;
  /** A destination for projects that name none (FIONA had one research PACS for all). */
  defaultDestination?: unknown;
}

export interface ParseOptions {
  /** Where the rules came from, for messages. */
  origin: string;
  /** Relative `rules` paths are taken from here (the routes file's folder). */
  baseDir: string;
}

/** Read a field under its fiona name or FIONA's REDCap name; REDCap's "" means absent. */
function field(o: Raw, ...keys: string[]): unknown {
  for (const k of keys) {
    const v = o[k];
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return undefined;
}

function str(entry: string, o: Raw, ...keys: string[]): string | undefined {
  const v = field(o, ...keys);
  if (v === undefined) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw new RulesError(entry, `${keys[0]} must be text, got ${JSON.stringify(v)}`);
  const s = String(v).trim();
  return s === '' ? undefined : s;
}

/** REDCap yes/no fields export as "1"/"0"; a local file may say true/false. */
function bool(entry: string, o: Raw, dflt: boolean, ...keys: string[]): boolean {
  const v = field(o, ...keys);
  if (v === undefined) return dflt;
  if (v === true || v === 1 || v === '1' || v === 'yes' || v === 'Yes' || v === 'Checked' || v === 'true') return true;
  if (v === false || v === 0 || v === '0' || v === 'no' || v === 'No' || v === 'Unchecked' || v === 'false') return false;
  throw new RulesError(entry, `${keys[0]} must be true or false, got ${JSON.stringify(v)}`);
}

function pattern(entry: string, o: Raw, ...keys: string[]): Pattern | undefined {
  const s = str(entry, o, ...keys);
  if (s === undefined) return undefined;
  try {
    return compilePattern(s);
  } catch (err) {
    if (err instanceof PatternError) throw new RulesError(entry, `${keys[0]} is not a valid regular expression ${JSON.stringify(s)}: ${err.message}`);
    throw err;
  }
}

function aet(entry: string, o: Raw, ...keys: string[]): string | undefined {
  const s = str(entry, o, ...keys);
  if (s !== undefined && !isValidAet(s)) throw new RulesError(entry, `${keys[0]} is not a valid AE title: ${JSON.stringify(s)}`);
  return s;
}

/** A value that becomes PatientID/PatientName in released files: LO rules, at most 64 characters. */
export function isValidPseudonym(v: string): boolean {
  return v.length > 0 && v.length <= 64 && !/[\\\x00-\x1f\x7f]/.test(v) && v.trim() === v;
}

function entryName(kind: string, i: number, o: Raw): string {
  const n = field(o, 'name', 'record_id', 'project_name');
  return n === undefined ? `${kind}[${i}]` : `${kind}[${i}] (${String(n)})`;
}

/** A destination URL as fiona-send reads it (the transport library's own parser). */
function destination(entry: string, v: string): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new RulesError(entry, `destination is not a URL: ${JSON.stringify(v)}`);
  }
  if (url.protocol !== 'dicom:' && url.protocol !== 'sftp:') {
    throw new RulesError(entry, `destination must be dicom:// or sftp://, got ${url.protocol}//`);
  }
  try {
    parseDestination(v);
  } catch (err) {
    throw new RulesError(entry, `destination: ${(err as Error).message.replace(/^--to /, '')}`);
  }
  return v;
}

/** Event names go into DICOM LO elements: the same limits as a pseudonym. */
function eventName(entry: string, o: Raw, ...keys: string[]): string | undefined {
  const v = str(entry, o, ...keys);
  if (v !== undefined && (!isValidPseudonym(v) || v.length > 54)) {
    throw new RulesError(entry, `${keys[0]} ${JSON.stringify(v)} is not usable as an event name (1-54 characters, no backslash or control characters)`);
  }
  return v;
}

function filePath(entry: string, o: Raw, base: string, key: string): string | undefined {
  const v = str(entry, o, key);
  if (v === undefined) return undefined;
  const p = isAbsolute(v) ? v : resolve(base, v);
  if (!existsSync(p)) throw new RulesError(entry, `${key} file not found: ${p}`);
  return p;
}

/** FIONA's project_features checkbox: ___0 drop PR, ___2 drop secondary captures; ___3 is fiona's. */
const REDCAP_FEATURES: Record<string, ProjectFeature> = {
  project_features___0: 'drop-presentation-states',
  project_features___2: 'drop-secondary-captures',
  project_features___3: 'never-release-burned-in',
};

function features(entry: string, o: Raw): Set<ProjectFeature> {
  const out = new Set<ProjectFeature>();
  const list = o.features;
  if (list !== undefined) {
    if (!Array.isArray(list)) throw new RulesError(entry, 'features must be a list');
    for (const f of list) {
      if (!PROJECT_FEATURES.includes(f as ProjectFeature)) {
        throw new RulesError(entry, `unknown feature ${JSON.stringify(f)} (known: ${PROJECT_FEATURES.join(', ')})`);
      }
      out.add(f as ProjectFeature);
    }
  }
  for (const [key, feature] of Object.entries(REDCAP_FEATURES)) {
    if (bool(entry, o, false, key)) out.add(feature);
  }
  return out;
}

function parseProject(i: number, o: Raw, opts: ParseOptions, defaultDestination?: string): Project {
  const entry = entryName('projects', i, o);
  const name = str(entry, o, 'name', 'project_name');
  if (name === undefined) throw new RulesError(entry, 'has no name');
  const dest = str(entry, o, 'destination', 'project_destination') ?? defaultDestination;
  if (dest === undefined) throw new RulesError(entry, 'has no destination (and the rules give no defaultDestination)');
  let rules = str(entry, o, 'rules', 'project_rules');
  if (rules !== undefined) {
    rules = isAbsolute(rules) ? rules : resolve(opts.baseDir, rules);
    if (!existsSync(rules)) throw new RulesError(entry, `rules file not found: ${rules}`);
  }
  let autoId: Project['autoId'];
  const rawAuto = o.autoId;
  if (rawAuto !== undefined && rawAuto !== null) {
    if (typeof rawAuto !== 'object' || Array.isArray(rawAuto)) throw new RulesError(entry, 'autoId must be an object {pattern, aet}');
    const a = rawAuto as Raw;
    const p = str(entry, a, 'pattern');
    if (p === undefined) throw new RulesError(entry, 'autoId has no pattern');
    autoId = { pattern: p, aet: aet(entry, a, 'aet') };
  } else if (bool(entry, o, false, 'project_use_autoid')) {
    const p = str(entry, o, 'project_patient_naming');
    if (p === undefined) throw new RulesError(entry, 'project_use_autoid is set but project_patient_naming is empty');
    autoId = { pattern: p, aet: aet(entry, o, 'project_autoid_aetitle') };
  }
  if (autoId) {
    try {
      compileAutoIdPattern(autoId.pattern);
    } catch (err) {
      throw new RulesError(entry, `automatic ID pattern ${JSON.stringify(autoId.pattern)}: ${(err as Error).message}`);
    }
  }
  return {
    name,
    active: bool(entry, o, true, 'active', 'project_active'),
    destination: destination(entry, dest),
    rules,
    features: features(entry, o),
    autoId,
    institution: str(entry, o, 'institution') ?? name,
    identity: filePath(entry, o, opts.baseDir, 'identity'),
    knownHosts: filePath(entry, o, opts.baseDir, 'knownHosts'),
  };
}

function parseRoute(i: number, o: Raw, projects: Map<string, Project>): Route {
  const entry = entryName('routes', i, o);
  const project = str(entry, o, 'project', 'routing_dest_project');
  if (project === undefined) throw new RulesError(entry, 'names no destination project');
  const p = projects.get(project);
  if (!p) throw new RulesError(entry, `unknown project ${JSON.stringify(project)} (known: ${[...projects.keys()].join(', ') || 'none'})`);
  const route: Route = {
    name: str(entry, o, 'name', 'record_id') ?? `routes[${i}]`,
    active: bool(entry, o, true, 'active', 'routing_active'),
    project,
    incomingAet: aet(entry, o, 'incomingAet', 'routing_incoming_aetitle'),
    sendingAet: aet(entry, o, 'sendingAet', 'routing_sending_aetitle'),
    patientId: pattern(entry, o, 'patientId', 'routing_allowed_patientid'),
    patientName: pattern(entry, o, 'patientName', 'routing_allowed_patientname'),
    event: eventName(entry, o, 'event', 'routing_event_name'),
  };
  if (!route.incomingAet && !route.sendingAet && !route.patientId && !route.patientName) {
    throw new RulesError(entry, 'has no condition: give an AE title and/or a PatientID or PatientName pattern');
  }
  if (!route.patientId && !route.patientName && !p.autoId) {
    throw new RulesError(entry, `has no PatientID or PatientName pattern to take the pseudonym from, and project ${project} derives no automatic IDs`);
  }
  return route;
}

/** REDCap datetime_ymd ("2024-01-31 10:20"), a date, or ISO 8601. */
function parseDate(entry: string, v: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(v);
  const d = m
    ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0))
    : new Date(v);
  if (Number.isNaN(d.getTime())) throw new RulesError(entry, `date is not a date: ${JSON.stringify(v)}`);
  return d;
}

function parseCoupling(i: number, o: Raw, projects: Map<string, Project>): CouplingEntry | undefined {
  const entry = entryName('coupling', i, o);
  const project = str(entry, o, 'project', 'cl_projectname');
  const subject = str(entry, o, 'subject', 'cl_subjectid');
  const accessionNumber = str(entry, o, 'accessionNumber', 'cl_accessionnumber');
  const studyInstanceUid = str(entry, o, 'studyInstanceUid', 'cl_studyinstanceuid');
  // A blank REDCap record (all fields empty) is not an entry; FIONA skipped those too.
  if (!project && !subject && !accessionNumber && !studyInstanceUid) return undefined;
  if (!project) throw new RulesError(entry, 'names no project');
  if (!projects.has(project)) throw new RulesError(entry, `unknown project ${JSON.stringify(project)}`);
  if (!subject) throw new RulesError(entry, 'has no subject (the pseudonym)');
  if (!isValidPseudonym(subject)) throw new RulesError(entry, `subject ${JSON.stringify(subject)} cannot be a PatientID (1-64 characters, no backslash or control characters)`);
  if (!accessionNumber && !studyInstanceUid) throw new RulesError(entry, 'gives neither an AccessionNumber nor a StudyInstanceUID');
  const date = str(entry, o, 'date', 'cl_date');
  if (!date) throw new RulesError(entry, 'has no date (entries expire a set number of days after it)');
  return {
    name: str(entry, o, 'name', 'record_id') ?? `coupling[${i}]`,
    accessionNumber,
    studyInstanceUid,
    project,
    subject,
    event: eventName(entry, o, 'event', 'cl_eventname'),
    date: parseDate(entry, date),
  };
}

/** Validate raw rules; the first wrong entry is refused with its name. */
export function parseRules(raw: RawRules, opts: ParseOptions): RoutingRules {
  let expiry = 14;
  if (raw.couplingExpiryDays !== undefined) {
    const n = Number(raw.couplingExpiryDays);
    if (!Number.isInteger(n) || n < 0 || n > 36500) throw new RulesError('couplingExpiryDays', `must be a whole number of days, got ${JSON.stringify(raw.couplingExpiryDays)}`);
    expiry = n;
  }
  let defaultDestination: string | undefined;
  if (raw.defaultDestination !== undefined) {
    if (typeof raw.defaultDestination !== 'string') throw new RulesError('defaultDestination', 'must be a URL');
    defaultDestination = destination('defaultDestination', raw.defaultDestination);
  }
  const projects = new Map<string, Project>();
  raw.projects.forEach((o, i) => {
    const p = parseProject(i, o, opts, defaultDestination);
    if (projects.has(p.name)) throw new RulesError(entryName('projects', i, o), `project ${p.name} is defined twice`);
    projects.set(p.name, p);
  });
  const autoAets = new Map<string, string>();
  for (const p of projects.values()) {
    const a = p.autoId?.aet;
    if (a === undefined) continue;
    const other = autoAets.get(a);
    if (other) throw new RulesError(`projects (${p.name})`, `automatic-ID AE title ${a} is also used by project ${other}`);
    autoAets.set(a, p.name);
  }
  const routes = raw.routes.map((o, i) => parseRoute(i, o, projects));
  const coupling = raw.coupling.flatMap((o, i) => parseCoupling(i, o, projects) ?? []);
  return { routes, coupling, projects, couplingExpiryDays: expiry, origin: opts.origin };
}
