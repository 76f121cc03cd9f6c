import { join } from 'node:path';
import { createAnonymizer, type AnonymizedResult, type QuarantinedResult } from '../deid/anonymizer.js';
import { runBatch } from '../deid/batch.js';
import { SeriesClassLookup } from '../deid/burned-in.js';
import type { InputUnit } from '../deid/inputs.js';
import { defaultProjectRules, finishRules, loadProjectRulesFile, parseOverride, type ProjectRules } from '../deid/project.js';
import { loadSecret } from '../deid/secret.js';
import { loadOrCreateKey } from '../route/private-file.js';
import type { Project } from '../route/types.js';
import type { SiteLayout } from '../site/layout.js';
import { sanitizePathPart } from '../site/sanitize.js';
import type { TransferRequest } from './requests.js';

/**
 * The de-identification step of a transfer, through the fiona-anonymize library: the
 * project's rules, with the request's pseudonym as PatientID and PatientName and, as FIONA
 * did (anonymizeAndSend.py), the event written as "EventName:<event>" to (0040,2001),
 * (0040,1002) and (0008,0090) and the project name to InstitutionName (0008,0080).
 */
export const EVENT_TAGS = ['0040,2001', '0040,1002', '0008,0090'] as const;

export interface AnonymizeStepOptions {
  site: SiteLayout;
  project: Project;
  request: TransferRequest;
  outDir: string;
  version?: string;
  /** Files de-identified at once (default 4). */
  concurrency?: number;
}

/** A project name as deid wants it (used in keyed hashes); plain names stay as they are. */
export function deidName(project: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(project) ? project : sanitizePathPart(project, 'project', 64);
}

export function projectRulesFor(project: Project, request: TransferRequest): ProjectRules {
  const rules = project.rules ? loadProjectRulesFile(project.rules, deidName(project.name)) : defaultProjectRules(deidName(project.name));
  rules.patientId = request.pseudonym;
  rules.patientName = request.pseudonym;
  const defaults = [parseOverride(`0008,0080=${project.institution}`, 'institution')];
  if (request.event !== '') for (const tag of EVENT_TAGS) defaults.push(parseOverride(`${tag}=EventName:${request.event}`, 'event'));
  // FIONA's tags are the project default: a rules file that sets one of them decides.
  const own = new Set(rules.set.map((s) => s.tag));
  rules.set = [...rules.set, ...defaults.filter((d) => !own.has(d.tag))];
  return finishRules(rules);
}

/** The project's secret: its rules' secretFile, else <site>/state/secrets/<project>.key (made once, 0600). */
async function secretFor(site: SiteLayout, rules: ProjectRules): Promise<{ bytes: Uint8Array; file: string }> {
  if (rules.secretFile) {
    const s = loadSecret(rules.secretFile);
    return { bytes: s.bytes, file: s.file };
  }
  const file = join(site.state, 'secrets', `${sanitizePathPart(rules.name, 'project', 64)}.key`);
  await loadOrCreateKey(file);
  // Read it back the way fiona-anonymize --secret-file reads a secret (the file's bytes),
  // so a by-hand run with that file gives the same pseudonymous UIDs.
  return { bytes: loadSecret(file).bytes, file };
}

async function* fileUnits(files: string[]): AsyncGenerator<InputUnit> {
  for (const path of files) yield { kind: 'file', path };
}

/** An anonymizer set up once per transfer, run batch by batch (so sending can overlap). */
export interface TransferAnonymizer {
  secretFile: string;
  run(files: string[]): Promise<{ outputs: AnonymizedResult[]; refused: QuarantinedResult[] }>;
}

export async function createTransferAnonymizer(o: AnonymizeStepOptions): Promise<TransferAnonymizer> {
  const rules = projectRulesFor(o.project, o.request);
  const secret = await secretFor(o.site, rules);
  const anonymizer = createAnonymizer(rules, {
    secret: secret.bytes,
    seriesClasses: new SeriesClassLookup(o.site.root),
    version: o.version,
  });
  return {
    secretFile: secret.file,
    async run(files) {
      const outputs: AnonymizedResult[] = [];
      const refused: QuarantinedResult[] = [];
      let failure: string | undefined;
      // A few files at once (fiona-anonymize's runBatch): reading and writing overlap with the
      // CPU work of the next file. A file that cannot be processed at all fails the batch: no
      // more files are started, those in flight finish, then the step throws.
      const stop = new AbortController();
      await runBatch(fileUnits(files), {
        anonymizer,
        outDir: o.outDir,
        inFlight: o.concurrency ?? 4,
        signal: stop.signal,
        onOutcome: (r) => {
          if (r.status === 'anonymized') outputs.push(r);
          else if (r.status === 'quarantined') refused.push(r);
          else {
            failure ??= r.reason;
            stop.abort();
          }
        },
      });
      if (failure !== undefined) throw new Error(failure);
      // Sorted, so that the sending order does not depend on which file finished first.
      outputs.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      return { outputs, refused };
    },
  };
}
