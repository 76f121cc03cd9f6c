import { siteLayout } from '../site/index.js';
import { deidName } from './anonymize.js';
import { RequestStore, type RequestKey } from './requests.js';

/**
 * The pseudonyms under which fiona-route queued a study for a project (queued, sent or
 * failed transfers). A manual export of the same study must call the participant what the
 * research PACS calls them: an export with a pseudonym of its own would give one person two
 * IDs in the same project.
 */
export async function knownPseudonyms(site: string, study: string, project: string): Promise<string[]> {
  const store = new RequestStore(siteLayout(site));
  const keys: Partial<RequestKey>[] = [...(await store.listQueued()), ...(await store.listFailed()), ...(await store.listResults())];
  const same = (p: string | undefined): boolean => p !== undefined && (p === project || deidName(p) === project);
  const found = keys.filter((k) => k.study === study && same(k.project) && typeof k.pseudonym === 'string' && k.pseudonym !== '');
  return [...new Set(found.map((k) => k.pseudonym!))].sort();
}
