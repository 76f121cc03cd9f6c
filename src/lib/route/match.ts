import { AutoIdError, type AutoIdStore } from './autoid.js';
import { isValidPseudonym } from './parse.js';
import { patternMatches } from './pattern.js';
import type { StudyInfo } from './study.js';
import type { CouplingEntry, Project, Route, RouteMatch, RoutingRules } from './types.js';

/**
 * Which projects a study goes to, under which pseudonym and event. Three ways in, as in
 * FIONA: routing rules, the coupling list, and projects with automatic IDs addressed by AE
 * title. A study may go to several projects; the same (project, pseudonym, event) once.
 */
export interface MatchOutcome {
  matches: RouteMatch[];
  /** Rules that matched but could not give a usable pseudonym, with the reason. */
  problems: string[];
}

/**
 * FIONA's rule: (called AET or calling AET matches) and (PatientID or PatientName pattern
 * matches); a condition the rule leaves empty is not asked. The PatientID match wins as
 * the pseudonym when both match.
 */
export function routeApplies(route: Route, study: StudyInfo): { applies: boolean; pseudonym?: string } {
  const aeChecks: boolean[] = [];
  if (route.incomingAet !== undefined) aeChecks.push(route.incomingAet === study.called);
  if (route.sendingAet !== undefined) aeChecks.push(route.sendingAet === study.calling);
  if (aeChecks.length > 0 && !aeChecks.includes(true)) return { applies: false };
  const idMatch = route.patientId !== undefined && study.patientId !== '' && patternMatches(route.patientId, study.patientId);
  const nameMatch = route.patientName !== undefined && study.patientName !== '' && patternMatches(route.patientName, study.patientName);
  if ((route.patientId !== undefined || route.patientName !== undefined) && !idMatch && !nameMatch) return { applies: false };
  return { applies: true, pseudonym: idMatch ? study.patientId : nameMatch ? study.patientName : undefined };
}

export function couplingApplies(entry: CouplingEntry, study: StudyInfo, expiryDays: number, now: Date): boolean {
  if (now.getTime() >= entry.date.getTime() + expiryDays * 86_400_000) return false;
  if (entry.accessionNumber !== undefined && entry.accessionNumber === study.accessionNumber) return true;
  return entry.studyInstanceUid !== undefined && entry.studyInstanceUid === study.uid;
}

export function matchKey(m: Pick<RouteMatch, 'project' | 'pseudonym' | 'event'>): string {
  return JSON.stringify([m.project, m.pseudonym, m.event]);
}

export async function matchStudy(
  rules: RoutingRules,
  study: StudyInfo,
  autoIds: AutoIdStore,
  now: Date = new Date(),
): Promise<MatchOutcome> {
  const found = new Map<string, RouteMatch>();
  const problems: string[] = [];
  const add = (m: RouteMatch): void => {
    if (!isValidPseudonym(m.pseudonym)) {
      problems.push(`${m.via}: ${JSON.stringify(m.pseudonym.slice(0, 80))} cannot be a pseudonym (1-64 characters, no backslash or control characters)`);
      return;
    }
    const k = matchKey(m);
    if (!found.has(k)) found.set(k, m);
  };
  const autoId = async (project: Project, via: string): Promise<string | undefined> => {
    try {
      return (await autoIds.idFor(project, study.patientId)).id;
    } catch (err) {
      if (!(err instanceof AutoIdError)) throw err;
      problems.push(`${via}: ${err.message}`);
      return undefined;
    }
  };
  const activeProject = (name: string): Project | undefined => {
    const p = rules.projects.get(name);
    return p?.active ? p : undefined;
  };

  for (const route of rules.routes) {
    if (!route.active) continue;
    const project = activeProject(route.project);
    if (!project) continue;
    const r = routeApplies(route, study);
    if (!r.applies) continue;
    const via = `route:${route.name}`;
    // "The matching ID or name becomes the pseudonym unless the project derives one."
    const pseudonym = project.autoId ? await autoId(project, via) : r.pseudonym;
    if (pseudonym === undefined) {
      if (!project.autoId) problems.push(`${via}: matched on AE title only and project ${project.name} derives no automatic IDs`);
      continue;
    }
    add({ project: project.name, pseudonym, event: route.event ?? '', via });
  }

  for (const entry of rules.coupling) {
    if (!couplingApplies(entry, study, rules.couplingExpiryDays, now)) continue;
    const project = activeProject(entry.project);
    if (!project) continue;
    add({ project: project.name, pseudonym: entry.subject, event: entry.event ?? '', via: `coupling:${entry.name}` });
  }

  for (const project of rules.projects.values()) {
    if (!project.active || !project.autoId?.aet || project.autoId.aet !== study.called) continue;
    const via = `autoid:${project.name}`;
    const pseudonym = await autoId(project, via);
    if (pseudonym !== undefined) add({ project: project.name, pseudonym, event: '', via });
  }
  return { matches: [...found.values()], problems };
}
