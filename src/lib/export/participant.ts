import type { ProjectRules } from '../deid/project.js';
import { UsageError } from '../errors.js';
import { knownPseudonyms } from '../transfer/known-pseudonyms.js';
import { buildRules, namePatient, type DeidSettings } from './deid.js';

/**
 * The pseudonym an export of a site's study takes when none is given: the one fiona-route
 * gave the study in this project (so the ZIP and the research PACS name the participant
 * alike), or undefined when the study was never routed to the project (the project's rules
 * then decide: derived, table, ...). Two different ones are refused: only a person can say
 * which is right.
 */
async function routedPseudonym(site: string, study: string, project: string): Promise<string | undefined> {
  const known = await knownPseudonyms(site, study, project);
  if (known.length > 1) {
    throw new UsageError(`study ${study} was routed to project ${project} under ${known.length} pseudonyms (${known.join(', ')}): say which with --patient-id`);
  }
  return known[0];
}

/**
 * An export's rules: `s` as given, or, when `s` names no pseudonym and the study comes from
 * a site, with the pseudonym fiona-route gave the study in the project (`routed`: which).
 */
export async function rulesWithRoutedPseudonym(
  s: DeidSettings,
  configRaw: Record<string, unknown>,
  site: string | undefined,
  study: string | undefined,
): Promise<{ rules: ProjectRules; routed?: string }> {
  const rules = buildRules(s, configRaw);
  if (s.patientId !== undefined || site === undefined || study === undefined) return { rules };
  const routed = await routedPseudonym(site, study, rules.name);
  if (routed === undefined) return { rules };
  // As buildRules({ ...s, patientId: routed }) would, without loading the project's rules again.
  namePatient(rules, routed, s.patientName);
  return { rules, routed };
}
