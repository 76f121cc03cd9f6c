import { fileURLToPath } from 'node:url';
import { lookupKeyword } from '../dicom/index.js';
import { compileRules, loadRuleFile } from './rules-load.js';
import { SERIES_FIELDS } from './series.js';
import type { RuleSet } from './types.js';

/** The rules shipped with fiona (rules/classifyRules.json in the package). */
export function defaultRulesPath(): string {
  return fileURLToPath(new URL('../../../rules/classifyRules.json', import.meta.url));
}

const options = {
  keyword: (kw: string): number | undefined => lookupKeyword(kw)?.tag,
  seriesFields: SERIES_FIELDS,
};

/** Load a rule file with the DICOM dictionary and the series JSON fields known (throws RuleFileError). */
export async function loadRules(path: string = defaultRulesPath()): Promise<RuleSet> {
  return loadRuleFile(path, options);
}

/** Compile rules given as a value (tests, embedded rules). */
export function rulesFromValue(raw: unknown, source = '(rules)'): RuleSet {
  return compileRules(raw, source, options);
}
