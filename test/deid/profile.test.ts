/**
 * The profile, attribute by attribute: a DCMTK-made fixture holding every attribute of
 * PS3.15 Table E.1-1 (at top level and two sequence levels deep, plus an overlay, a curve
 * and a private block) goes through the anonymizer with the Basic Profile and with each
 * option; pydicom reads the results. Every X attribute must be gone, every Z empty, every
 * D replaced by a dummy, every U replaced by the keyed UID, every K kept, every C cleaned.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnonymizer } from '../../src/lib/deid/anonymizer.js';
import { shiftDA, shiftDT } from '../../src/lib/deid/dates.js';
import { PROFILE_OPTIONS, type ProfileOption } from '../../src/lib/deid/options.js';
import { defaultProjectRules, finishRules } from '../../src/lib/deid/project.js';
import { derivePatientPseudonym } from '../../src/lib/deid/pseudonyms.js';
import { createUidMapper } from '../../src/lib/deid/uids.js';
import { isValidUid } from '../../src/lib/dicom/uid.js';
import { makeTempDir } from '../helpers/tmp.js';
import { DATASET_ATTRIBUTES, NEST_1, NEST_2, type SeenElement, type SeenFile, type TableAttribute, makeProfileFixture, markerValue, pydicomLevels } from './fixtures.js';

const SECRET = Buffer.from('profile-test-secret-0123456789abcdef');
const PROJECT = 'PROFILETEST';
const SHIFT = -10;
const uids = createUidMapper(SECRET, PROJECT);

let tmp: { dir: string; cleanup: () => Promise<void> };
let fixture: string;
/** Output file per run name ('basic' or an option). */
const outputs = new Map<string, string>();
let seen: Record<string, SeenFile>;

async function run(name: string, options: ProfileOption[]): Promise<void> {
  const rules = defaultProjectRules(PROJECT);
  for (const o of options) rules.options.add(o);
  rules.dateShift = SHIFT;
  if (options.includes('retainSafePrivate')) rules.keepPrivate = [{ creator: 'FIONA TEST CREATOR', group: 0x0009, element: 0x02 }];
  const a = createAnonymizer(finishRules(rules), { secret: SECRET, fsync: false, version: 'test' });
  const r = await a.anonymizeFile(fixture, join(tmp.dir, `out-${name}`));
  if (r.status !== 'anonymized') throw new Error(`${name}: ${r.reason}`);
  outputs.set(name, r.path);
}

beforeAll(async () => {
  tmp = await makeTempDir('fiona-deid-profile-');
  fixture = await makeProfileFixture(tmp.dir);
  await run('basic', []);
  for (const o of PROFILE_OPTIONS) await run(o, [o]);
  seen = await pydicomLevels([fixture, ...outputs.values()]);
}, 120_000);
afterAll(async () => tmp.cleanup());

/** The action the standard asks for, under one option (a K of any chosen option wins). */
function actionUnder(a: TableAttribute, option?: string): string {
  if (option && a.options[option]) return a.options[option]!;
  return a.basic;
}

const LEVELS = ['top', 'd1', 'd2'] as const;

function levelOf(file: SeenFile, level: (typeof LEVELS)[number]): Record<string, SeenElement> {
  const l = file[level];
  if (!l) throw new Error(`the output has no ${level} level (the nesting sequences ${NEST_1}/${NEST_2} were lost)`);
  return l;
}

/** Attributes present at a level of the input (the nesting sequences themselves are not nested in themselves). */
function attrsAt(level: (typeof LEVELS)[number]): TableAttribute[] {
  const input = levelOf(seen[fixture]!, level);
  return DATASET_ATTRIBUTES.filter((a) => input[a.tag] !== undefined && a.tag !== NEST_1 && a.tag !== NEST_2);
}

/** Problems with one attribute's outcome, '' when it is as the action code requires. */
function check(code: string, a: TableAttribute, original: SeenElement, out: SeenElement | undefined, option?: string, top = false): string {
  const where = `${a.keyword} (${a.tag}) ${code}`;
  const gone = out === undefined;
  const empty = out !== undefined && (out.empty || (a.vr === 'SQ' && out.items === 0));
  const changed = out !== undefined && !out.empty && out.value !== original.value;
  const mapped = (): string => (out && out.value === uids.map(original.value) && isValidUid(out.value) ? '' : `${where}: expected the keyed UID, got ${JSON.stringify(out?.value)}`);
  // PatientID and PatientName (Z/D and Z) take the patient's pseudonym, a dummy the standard allows.
  if (top && (a.tag === '00100010' || a.tag === '00100020')) {
    return out && out.value === derivePatientPseudonym(SECRET, PROJECT, 'M00100020', '') ? '' : `${where}: expected the derived pseudonym, got ${JSON.stringify(out?.value)}`;
  }
  switch (code) {
    case 'X':
      return gone ? '' : `${where}: still present (${JSON.stringify(out!.value)})`;
    case 'Z':
    case 'X/Z':
      // An X/Z sequence stays with its items de-identified (an empty Type 3 sequence is invalid).
      if (code === 'X/Z' && a.vr === 'SQ') return gone || out!.items === 0 ? `${where}: sequence removed or emptied` : '';
      return !gone && empty ? '' : `${where}: expected present and empty, got ${gone ? 'absent' : JSON.stringify(out!.value)}`;
    case 'U':
      return mapped();
    case 'D':
    case 'Z/D':
    case 'X/D':
    case 'X/Z/D':
      if (a.vr === 'SQ') return gone ? `${where}: sequence removed` : '';
      if (a.vr === 'UI') return mapped();
      return changed ? '' : `${where}: expected a dummy value, got ${gone ? 'absent' : JSON.stringify(out!.value)}`;
    case 'X/Z/U*':
      return gone ? `${where}: sequence removed` : '';
    case 'K':
      if (a.vr === 'SQ') return gone || out!.items !== original.items ? `${where}: sequence not kept` : '';
      return out && out.value === original.value ? '' : `${where}: expected kept ${JSON.stringify(original.value)}, got ${JSON.stringify(out?.value)}`;
    case 'C': {
      if (a.vr === 'SQ') return gone ? `${where}: sequence removed` : '';
      if (a.vr === 'DA' || a.vr === 'DT') {
        const want = option === 'retainLongitudinalModifiedDates' ? (a.vr === 'DA' ? shiftDA(markerValue(a), SHIFT) : shiftDT(markerValue(a), SHIFT)) : undefined;
        if (want === undefined) return changed || gone || empty ? '' : `${where}: date kept`;
        return out?.value === want ? '' : `${where}: expected ${want}, got ${JSON.stringify(out?.value)}`;
      }
      if (a.vr === 'TM') return out?.value === original.value ? '' : `${where}: a whole-day shift must keep the time`;
      if (['OB', 'UN', 'US'].includes(a.vr)) return ''; // not cleanable: the basic action applies (checked by the basic run)
      if (a.vr === 'AE') return changed ? '' : `${where}: an AE title must be replaced`;
      // Text with no identifying value in it stays as it was.
      return out?.value === original.value ? '' : `${where}: clean changed text without an identifier: ${JSON.stringify(out?.value)}`;
    }
    default:
      return `${where}: unknown action`;
  }
}

describe('Basic Profile, every attribute at every depth', () => {
  for (const level of LEVELS) {
    for (const code of ['X', 'Z', 'D', 'U', 'K', 'C', 'X/Z', 'X/D', 'Z/D', 'X/Z/D', 'X/Z/U*']) {
      it(`${code} attributes at ${level === 'top' ? 'top level' : `depth ${level.slice(1)}`}`, () => {
        const input = levelOf(seen[fixture]!, level);
        const output = levelOf(seen[outputs.get('basic')!]!, level);
        const attrs = attrsAt(level).filter((a) => a.basic === code);
        const problems = attrs.map((a) => check(code, a, input[a.tag]!, output[a.tag], undefined, level === 'top')).filter(Boolean);
        expect(problems).toEqual([]);
        if (['X', 'Z', 'D', 'U'].includes(code)) expect(attrs.length).toBeGreaterThan(40);
      });
    }
  }
  it('covers every dataset attribute of the table at each depth', () => {
    for (const level of LEVELS) expect(attrsAt(level).length).toBe(DATASET_ATTRIBUTES.length);
  });
  it('removes overlays and curves whole, and private blocks', () => {
    const top = seen[outputs.get('basic')!]!.top;
    expect(Object.keys(top).filter((t) => t.startsWith('60') || t.startsWith('50'))).toEqual([]);
    expect(Object.keys(top).filter((t) => Number.parseInt(t.slice(0, 4), 16) % 2 === 1)).toEqual([]);
    expect(Object.keys(seen[fixture]!.top).filter((t) => t.startsWith('6000')).length).toBe(8);
  });
  it('marks the instance de-identified with the profile code', () => {
    const top = seen[outputs.get('basic')!]!.top;
    expect(top['00120062']?.value).toBe('YES');
    expect(top['00120063']?.value).toContain('Basic Profile');
    expect(top['00120064']?.items).toBe(1);
    expect(top['00280303']?.value).toBe('REMOVED');
  });
  it('replaces the File Meta SOP Instance UID and names fiona', () => {
    const meta = seen[outputs.get('basic')!]!.meta;
    expect(meta['00020003']?.value).toBe(uids.map('1.2.826.0.1.3680043.2.1143.900.1'));
    expect(meta['00020013']?.value).toBe('FIONA_test');
  });
});

describe('each option keeps or cleans what it names', () => {
  for (const option of PROFILE_OPTIONS) {
    it(option, () => {
      const input = seen[fixture]!;
      const output = seen[outputs.get(option)!]!;
      const problems: string[] = [];
      let count = 0;
      for (const level of LEVELS) {
        for (const a of attrsAt(level).filter((x) => x.options[option])) {
          count++;
          const p = check(actionUnder(a, option), a, levelOf(input, level)[a.tag]!, levelOf(output, level)[a.tag], option, level === 'top');
          if (p) problems.push(`${level}: ${p}`);
        }
      }
      expect(problems).toEqual([]);
      if (option !== 'retainSafePrivate') expect(count).toBeGreaterThan(0);
      const codes = output.top['00120064']?.items;
      expect(codes).toBe(2); // 113100 and the option's code
    });
  }
  it('retain-safe-private keeps the listed private element and its creator, nothing else', () => {
    const top = seen[outputs.get('retainSafePrivate')!]!.top;
    expect(top['00090010']?.value).toBe('FIONA TEST CREATOR');
    expect(top['00091002']).toBeDefined();
    expect(top['00091001']).toBeUndefined();
  });
  it('modified dates shift every date by the offset and say so', () => {
    const top = seen[outputs.get('retainLongitudinalModifiedDates')!]!.top;
    expect(top['00080020']?.value).toBe(shiftDA('20010203', SHIFT));
    expect(top['00280303']?.value).toBe('MODIFIED');
    expect(seen[outputs.get('retainLongitudinalFullDates')!]!.top['00280303']?.value).toBe('UNMODIFIED');
  });
});
