import { createAnonymizer, type Anonymizer } from '../deid/anonymizer.js';
import { finishRules, loadProjectRules, parseDateShift, parseOptions, parseOverride, tagName, type ProjectRules } from '../deid/project.js';
import { loadPseudonymTable } from '../deid/pseudonyms.js';
import { loadSecret } from '../deid/secret.js';

/**
 * The de-identification of an export is fiona-anonymize's library, configured the way
 * fiona-anonymize is: the project's rules (by name or file), then the same command-line
 * options on top (--secret-file, --patient-id, --patient-name, --option, --date-shift,
 * --set). Nothing here decides what is removed; it only assembles the rules.
 */
export interface DeidSettings {
  /** Project name (rules found like fiona-anonymize finds them) or a rules file path. */
  project: string;
  secretFile?: string;
  patientId?: string;
  patientName?: string;
  options?: string[];
  dateShift?: string;
  set?: string[];
}

/** The participant's pseudonyms, where given: PatientID, and PatientName (else the patient id). */
export function namePatient(rules: ProjectRules, patientId: string | undefined, patientName: string | undefined): void {
  if (patientId !== undefined) rules.patientId = patientId;
  if (patientName !== undefined) rules.patientName = patientName;
  else if (patientId !== undefined) rules.patientName = patientId;
}

export function buildRules(s: DeidSettings, configRaw: Record<string, unknown> = {}): ProjectRules {
  const rules = loadProjectRules(s.project, configRaw);
  namePatient(rules, s.patientId, s.patientName);
  if (s.secretFile !== undefined) rules.secretFile = s.secretFile;
  if (s.options && s.options.length > 0) for (const o of parseOptions('--option', s.options)) rules.options.add(o);
  if (s.dateShift !== undefined) rules.dateShift = parseDateShift('--date-shift', s.dateShift === 'auto' ? 'auto' : Number(s.dateShift));
  for (const text of s.set ?? []) {
    const o = parseOverride(text, '--set');
    rules.set = rules.set.filter((x) => x.tag !== o.tag);
    rules.set.push(o);
  }
  return finishRules(rules);
}

export interface DeidContext {
  rules: ProjectRules;
  anonymizer: Anonymizer;
  /** "--set"-style descriptions of the overrides, for the manifest. */
  overrides: string[];
}

export function makeAnonymizer(rules: ProjectRules, opts: { quarantineDir?: string; version?: string }): DeidContext {
  const secret = rules.secretFile ? loadSecret(rules.secretFile).bytes : undefined;
  const pseudonymTable = rules.pseudonymTable ? loadPseudonymTable(rules.pseudonymTable) : undefined;
  const anonymizer = createAnonymizer(rules, { secret, pseudonymTable, quarantineDir: opts.quarantineDir, version: opts.version });
  const overrides = rules.set.map((o) => `${tagName(o.tag)}=${o.value}`);
  return { rules, anonymizer, overrides };
}
