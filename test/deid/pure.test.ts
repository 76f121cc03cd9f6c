import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationFor, resolveActionCode, standardRule } from '../../src/lib/deid/actions.js';
import { createScrubber, dateSpellings, nameParts } from '../../src/lib/deid/clean.js';
import { derivedDateOffset, shiftDA, shiftDT, shiftValues } from '../../src/lib/deid/dates.js';
import { MappingRecorder } from '../../src/lib/deid/mapping.js';
import { OPTION_CODES, PROFILE_OPTIONS, type ProfileOption, optionCliName, parseOptionName } from '../../src/lib/deid/options.js';
import { loadProjectRules, parseOverride, parseProjectRules } from '../../src/lib/deid/project.js';
import { derivePatientPseudonym, loadPseudonymTable } from '../../src/lib/deid/pseudonyms.js';
import { loadSecret } from '../../src/lib/deid/secret.js';
import { loadProfileTable, ruleForTag } from '../../src/lib/deid/table.js';
import { createUidMapper, rootedUid, uuidUid } from '../../src/lib/deid/uids.js';
import { isValidUid } from '../../src/lib/dicom/uid.js';
import { makeTempDir } from '../helpers/tmp.js';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');
let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('fiona-deid-pure-');
});
afterAll(async () => tmp.cleanup());

describe('profile table', () => {
  const table = loadProfileTable();
  it('holds every row of the source (617 attributes, 3 ranges, the private row)', () => {
    expect(table.byTag.size).toBe(617);
    expect(table.ranges).toHaveLength(3);
    expect(table.privateRule.basic).toBe('X');
    expect(table.privateRule.options.retainSafePrivate).toBe('C');
  });
  it('finds rows by tag and repeating group', () => {
    expect(ruleForTag(table, 0x00100010)?.keyword).toBe('PatientName');
    expect(ruleForTag(table, 0x00100010)?.basic).toBe('Z');
    expect(ruleForTag(table, 0x60023000)?.keyword).toBe('OverlayData');
    expect(ruleForTag(table, 0x601e4000)?.keyword).toBe('OverlayComments');
    expect(ruleForTag(table, 0x50020010)?.keyword).toBe('CurveData');
    expect(ruleForTag(table, 0x00280010)).toBeUndefined(); // Rows: not listed, kept
  });
  it('applies options over the basic action, keep winning over clean', () => {
    const acqDate = ruleForTag(table, 0x00080022)!;
    expect(resolveActionCode(acqDate, new Set())).toBe('X/Z');
    expect(resolveActionCode(acqDate, new Set(['retainLongitudinalFullDates']))).toBe('K');
    expect(resolveActionCode(acqDate, new Set(['retainLongitudinalModifiedDates']))).toBe('C');
    const allergies = ruleForTag(table, 0x00102110)!;
    expect(resolveActionCode(allergies, new Set(['cleanDescriptors']))).toBe('C');
    const deviceUid = ruleForTag(table, 0x00181002)!;
    expect(resolveActionCode(deviceUid, new Set(['retainUIDs']))).toBe('K');
    expect(resolveActionCode(deviceUid, new Set())).toBe('U');
  });
  it('chooses among combined codes the presence that keeps any IOD valid', () => {
    expect(operationFor('X/Z', 'DA', false)).toBe('empty');
    expect(operationFor('X/D', 'LO', false)).toBe('dummy');
    expect(operationFor('Z/D', 'PN', false)).toBe('dummy');
    expect(operationFor('X/Z/D', 'LO', false)).toBe('dummy');
    expect(operationFor('X/Z/D', 'LO', true)).toBe('empty');
    expect(operationFor('X/Z/U*', 'SQ', false)).toBe('recurse');
    expect(operationFor('D', 'UI', false)).toBe('uid');
    expect(operationFor('U', 'UI', false)).toBe('uid');
    expect(operationFor('X', 'SQ', false)).toBe('remove');
    expect(operationFor('Z', 'SQ', false)).toBe('empty');
    expect(operationFor('X/Z', 'SQ', false)).toBe('recurse');
    expect(operationFor('D', 'SQ', false)).toBe('recurse');
    expect(operationFor('K', 'SQ', false)).toBe('recurse');
    expect(operationFor('C', 'LO', false)).toBe('clean');
  });
  it('handles unlisted dates and names by VR', () => {
    const t = 0x00191234 & 0xfffeffff; // an even-group tag the table does not list
    expect(standardRule(table, t, 'DA')?.basic).toBe('X/Z/D');
    expect(standardRule(table, t, 'PN')?.basic).toBe('X/Z/D');
    expect(standardRule(table, t, 'TM')).toBeUndefined();
  });
  it('names every option with a CID 7050 code and a CLI spelling', () => {
    for (const o of PROFILE_OPTIONS) {
      expect(OPTION_CODES[o].value).toMatch(/^1131(0[3-9]|1[0-2])$/);
      expect(parseOptionName(optionCliName(o))).toBe(o);
    }
    expect(optionCliName('retainUIDs')).toBe('retain-uids');
    expect(parseOptionName('retain-everything')).toBeUndefined();
  });
});

describe('keyed UIDs', () => {
  it('are valid, repeatable, and differ by secret and project', () => {
    const a = createUidMapper(SECRET, 'P1');
    const uid = '1.2.840.113619.2.55.3.604688119.971.1234567890.123';
    const x = a.map(uid);
    expect(isValidUid(x)).toBe(true);
    expect(x.startsWith('2.25.')).toBe(true);
    expect(x.length).toBeLessThanOrEqual(44);
    expect(createUidMapper(SECRET, 'P1').map(uid)).toBe(x);
    expect(a.map(`${uid}\0`)).toBe(x); // padding is not part of the UID
    expect(createUidMapper(SECRET, 'P2').map(uid)).not.toBe(x);
    expect(createUidMapper(Buffer.from('another secret of enough length'), 'P1').map(uid)).not.toBe(x);
    expect(a.map('1.2.3')).not.toBe(x);
  });
  it('make a version-8 UUID under 2.25', () => {
    const u = uuidUid(Buffer.alloc(32, 0xff));
    const n = BigInt(u.slice(5)).toString(16).padStart(32, '0');
    expect(n[12]).toBe('8');
    expect(['8', '9', 'a', 'b']).toContain(n[16]);
  });
  it('use a project root and fill 64 characters', () => {
    const m = createUidMapper(SECRET, 'P1', '1.2.826.0.1.3680043.10.999');
    const x = m.map('1.2.3.4');
    expect(x.startsWith('1.2.826.0.1.3680043.10.999.')).toBe(true);
    expect(x.length).toBe(64);
    expect(isValidUid(x)).toBe(true);
    expect(isValidUid(rootedUid('1.2', Buffer.alloc(32, 0)))).toBe(true);
    expect(() => createUidMapper(SECRET, 'P1', '1.2.3.04')).toThrow(/not a valid UID root/);
    expect(() => createUidMapper(SECRET, 'P1', `1.${'2'.repeat(45)}`)).toThrow(/too long/);
  });
});

describe('dates', () => {
  it('derive a per-patient offset that is repeatable, non-zero and bounded', () => {
    const o = derivedDateOffset(SECRET, 'P1', 'PAT001');
    expect(o).toBe(derivedDateOffset(SECRET, 'P1', 'PAT001'));
    expect(o).toBeLessThanOrEqual(-1);
    expect(o).toBeGreaterThanOrEqual(-365);
    const offsets = new Set(Array.from({ length: 50 }, (_, i) => derivedDateOffset(SECRET, 'P1', `PAT${i}`)));
    expect(offsets.size).toBeGreaterThan(40);
    expect(derivedDateOffset(SECRET, 'P1', 'X', 10)).toBeGreaterThanOrEqual(-10);
  });
  it('shift DA values, ranges and leap days, and refuse non-dates', () => {
    expect(shiftDA('20240301', -1)).toBe('20240229');
    expect(shiftDA('20230301', -1)).toBe('20230228');
    expect(shiftDA('20240101', -42)).toBe('20231120');
    expect(shiftDA('2024.01.01', 1)).toBe('20240102');
    expect(shiftDA('20240101-20240131', -1)).toBe('20231231-20240130');
    expect(shiftDA('-20240131', 1)).toBe('-20240201');
    expect(shiftDA('', 5)).toBe('');
    expect(shiftDA('20230231', 1)).toBeUndefined();
    expect(shiftDA('yesterday', 1)).toBeUndefined();
    expect(shiftValues('DA', ['20240101', '20240102'], 1)).toEqual(['20240102', '20240103']);
    expect(shiftValues('DA', ['20240101', 'x'], 1)).toBeUndefined();
  });
  it('shift DT keeping time, fraction, offset and precision', () => {
    expect(shiftDT('20240101123456.123456+0100', -1)).toBe('20231231123456.123456+0100');
    expect(shiftDT('20240101', 31)).toBe('20240201');
    expect(shiftDT('202403', -1)).toBe('202402');
    expect(shiftDT('2024', -1)).toBe('2023');
    expect(shiftDT('20240101T12', 1)).toBeUndefined();
  });
});

describe('cleaning text', () => {
  it('removes identifying values as whole words in any case', () => {
    const s = createScrubber([...nameParts('DOE^JOHN^Q'), 'PAT12345', ...dateSpellings('19700412'), 'Li']);
    expect(s.scrub('Follow-up of john doe (PAT12345), born 12.04.1970')).toBe('Follow-up of (), born');
    expect(s.scrub('clinical T1')).toBe('clinical T1');
    expect(s.scrub('Dr LI reviewed')).toBe('Dr reviewed');
    expect(s.finds('nothing here')).toBe(false);
    expect(s.finds('DOE JOHN')).toBe(true);
  });
});

describe('project rules', () => {
  it('parse a full rules object', () => {
    const r = parseProjectRules(
      {
        name: 'ABCD',
        options: ['retain-longitudinal-modified-dates', 'retainPatientCharacteristics'],
        uidRoot: '1.2.826.0.1.3680043.10.999',
        pseudonym: { prefix: 'ABCD', unmapped: 'derive' },
        dateShift: -42,
        set: { InstitutionName: 'PROJECT ABCD', '0008,1030': 'ABCD baseline', '0009,1001:LO': 'x' },
        rewrite: [{ tag: 'SeriesDescription', pattern: 'secret', flags: 'i', replacement: '' }],
        keep: ['SeriesDescription'],
        remove: ['0018,1030'],
        keepPrivate: [{ creator: 'SIEMENS MR HEADER', tag: '0019,xx0C' }],
        burnedIn: { action: 'quarantine', mask: [{ x: 0, y: 0, width: 256, height: 20 }] },
      },
      { baseDir: '/etc/fiona/projects' },
    );
    expect(r.name).toBe('ABCD');
    expect([...r.options].sort()).toEqual(['retainLongitudinalModifiedDates', 'retainPatientCharacteristics', 'retainSafePrivate']);
    expect(r.set.map((s) => [s.tag, s.vr, s.value])).toEqual([
      [0x00080080, 'LO', 'PROJECT ABCD'],
      [0x00081030, 'LO', 'ABCD baseline'],
      [0x00091001, 'LO', 'x'],
    ]);
    expect(r.keep).toEqual([0x0008103e]);
    expect(r.keepPrivate).toEqual([{ creator: 'SIEMENS MR HEADER', group: 0x19, element: 0x0c }]);
    expect(r.dateShift).toBe(-42);
    expect(r.burnedIn.mask).toHaveLength(1);
  });
  it('refuse unknown keys, options, tags and contradictions, naming the key', () => {
    expect(() => parseProjectRules({ optoins: [] })).toThrow(/optoins: unknown key/);
    expect(() => parseProjectRules({ options: ['retain-all'] })).toThrow(/options\[0\]: unknown option/);
    expect(() => parseProjectRules({ keep: ['NoSuchKeyword'] })).toThrow(/keep\[0\]: not a DICOM tag/);
    expect(() => parseProjectRules({ set: { StudyDate: '2024-01-01' } })).toThrow(/set.StudyDate: a DA value/);
    expect(() => parseProjectRules({ set: { '0009,1001': 'x' } })).toThrow(/give its VR/);
    expect(() => parseProjectRules({ options: ['retain-longitudinal-full-dates', 'retain-longitudinal-modified-dates'] })).toThrow(/exclude each other/);
    expect(() => parseProjectRules({ keepPrivate: [{ creator: 'X', tag: '0018,xx01' }] })).toThrow(/not private/);
    expect(() => parseProjectRules({ rewrite: [{ tag: 'SeriesDescription', pattern: '(' }] })).toThrow(/not a valid regular expression/);
    expect(() => parseProjectRules({ name: '../etc' })).toThrow(/project name/);
    expect(() => parseProjectRules({ dateShift: 'soon' })).toThrow(/dateShift/);
  });
  it('parse --set TAG=VALUE by keyword or tag', () => {
    expect(parseOverride('0008,0080=PROJECT')).toEqual({ tag: 0x00080080, vr: 'LO', value: 'PROJECT' });
    expect(parseOverride('PatientName=ABC^DEF')).toEqual({ tag: 0x00100010, vr: 'PN', value: 'ABC^DEF' });
    expect(() => parseOverride('nonsense')).toThrow(/TAG=VALUE/);
  });
  it('find projects by path, config and folder, and name an unknown one', async () => {
    const dir = join(tmp.dir, 'projects');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'P9.json'), JSON.stringify({ name: 'P9', options: ['retain-uids'] }));
    expect(loadProjectRules('P9', {}, { FIONA_PROJECTS_DIR: dir }).options.has('retainUIDs')).toBe(true);
    expect(loadProjectRules(join(dir, 'P9.json')).name).toBe('P9');
    expect(loadProjectRules('P8', { projects: { P8: { options: ['clean-descriptors'] } } }).name).toBe('P8');
    expect(() => loadProjectRules('NOPE', {}, { FIONA_PROJECTS_DIR: dir })).toThrow(/unknown project "NOPE"/);
  });
  it('ship example projects that load', async () => {
    for (const name of ['example-fiona', 'example-strict', 'example-mr-research']) {
      const r = loadProjectRules(name, {}, {});
      expect(r.name).toBe(name);
    }
  });
});

describe('pseudonyms, secret and mapping', () => {
  it('derive a keyed patient pseudonym', () => {
    const p = derivePatientPseudonym(SECRET, 'P1', 'PAT001', 'ABCD');
    expect(p).toMatch(/^ABCD[A-Z2-9]{12}$/);
    expect(derivePatientPseudonym(SECRET, 'P1', 'PAT001', 'ABCD')).toBe(p);
    expect(derivePatientPseudonym(SECRET, 'P2', 'PAT001', 'ABCD')).not.toBe(p);
  });
  it('read CSV and JSON tables', async () => {
    const csv = join(tmp.dir, 'ids.csv');
    await writeFile(csv, 'original,pseudonym,name\nPAT001,ABCD_001,ABCD^001\n"PAT002",ABCD_002\n');
    const t = loadPseudonymTable(csv);
    expect(t.get('PAT001')).toEqual({ patientId: 'ABCD_001', patientName: 'ABCD^001' });
    expect(t.get('PAT002')).toEqual({ patientId: 'ABCD_002', patientName: undefined });
    const json = join(tmp.dir, 'ids.json');
    await writeFile(json, JSON.stringify({ PAT003: 'ABCD_003', PAT004: { patientId: 'ABCD_004', patientName: 'N' } }));
    expect(loadPseudonymTable(json).get('PAT004')?.patientName).toBe('N');
    await writeFile(csv, 'h\nPAT001\n');
    expect(() => loadPseudonymTable(csv)).toThrow(/line 2/);
  });
  it('load a secret, refuse a short or missing one', async () => {
    const f = join(tmp.dir, 'key');
    await writeFile(f, `${'ab'.repeat(16)}\n`, { mode: 0o600 });
    expect(loadSecret(f).bytes.toString()).toBe('ab'.repeat(16));
    expect(loadSecret(f).worldReadable).toBe(false);
    await writeFile(f, 'short');
    expect(() => loadSecret(f)).toThrow(/too short/);
    expect(() => loadSecret(join(tmp.dir, 'missing'))).toThrow(/no such file.*openssl rand/);
  });
  it('merge the mapping file', async () => {
    const f = join(tmp.dir, 'mapping.json');
    const a = new MappingRecorder();
    a.add('StudyInstanceUID', '1.2.3', '2.25.1');
    await a.save(f);
    const b = new MappingRecorder();
    b.add('SeriesInstanceUID', '1.2.3.4', '2.25.2');
    await b.save(f);
    expect(JSON.parse(await readFile(f, 'utf8'))).toEqual({ StudyInstanceUID: { '1.2.3': '2.25.1' }, SeriesInstanceUID: { '1.2.3.4': '2.25.2' } });
  });
});

describe('leak needles', () => {
  it('look for names, their parts and long IDs as whole words; short numbers are not looked for', async () => {
    const { identifierNeedles, uidNeedles, findNeedle, haystackOf } = await import('../../src/lib/deid/leak.js');
    const needles = [
      ...identifierNeedles(
        [
          { tag: 0x00100010, keyword: 'PatientName', kind: 'name', value: 'Nordmann^Kari' },
          { tag: 0x00100020, keyword: 'PatientID', kind: 'id', value: '101' },
          { tag: 0x00080050, keyword: 'AccessionNumber', kind: 'id', value: '20240101234' },
        ],
        new Set(),
      ),
      ...uidNeedles(['1.2.3.4.5']),
    ];
    const hay = (s: string): string => haystackOf(Buffer.from(s, 'latin1'));
    expect(findNeedle(hay('Series 101 of KARI'), needles)?.label).toBe('PatientName (part)');
    expect(findNeedle(hay('SeriesNumber 101'), needles)).toBeUndefined();
    expect(findNeedle(hay('acc 20240101234 '), needles)?.label).toBe('AccessionNumber');
    expect(findNeedle(hay('x920240101234'), needles)).toBeUndefined();
    expect(findNeedle(hay('uid 1.2.3.4.5\0'), needles)?.label).toBe('original UID');
    expect(findNeedle(hay('uid 1.2.3.4.56'), needles)).toBeUndefined();
    expect(findNeedle(hay('Karianne'), needles)).toBeUndefined();
  });
});

describe('pixel masks and marking', () => {
  it('blank rectangles in every frame and plane, clipped to the image', async () => {
    const { maskPixels } = await import('../../src/lib/deid/pixels.js');
    // 2 frames of 4x3 16-bit monochrome, all 0xffff.
    const mono = maskPixels(new Uint8Array(2 * 4 * 3 * 2).fill(0xff), { rows: 3, columns: 4, bitsAllocated: 16, samplesPerPixel: 1, planar: false, frames: 2 }, [{ x: 2, y: 1, width: 10, height: 1 }]);
    const px = (f: number, y: number, x: number): number => mono[(f * 12 + y * 4 + x) * 2]!;
    for (const f of [0, 1]) {
      expect([px(f, 1, 1), px(f, 1, 2), px(f, 1, 3), px(f, 0, 2), px(f, 2, 3)]).toEqual([0xff, 0, 0, 0xff, 0xff]);
    }
    // 8-bit RGB, planar: the same pixel in each of the three planes.
    const rgb = maskPixels(new Uint8Array(3 * 2 * 2).fill(9), { rows: 2, columns: 2, bitsAllocated: 8, samplesPerPixel: 3, planar: true, frames: 1 }, [{ x: 0, y: 0, width: 1, height: 1 }]);
    expect([...rgb]).toEqual([0, 9, 9, 9, 0, 9, 9, 9, 0, 9, 9, 9]);
    expect(() => maskPixels(new Uint8Array(4), { rows: 4, columns: 4, bitsAllocated: 8, samplesPerPixel: 1, planar: false, frames: 1 }, [])).toThrow(/expected 16/);
  });
  it('mark the profile, the options and the pixel cleaning with CID 7050 codes', async () => {
    const { methodCodes, methodText, longitudinalValue, encodeCodeItems } = await import('../../src/lib/deid/marking.js');
    const { parseBytes } = await import('../../src/lib/dicom/read.js');
    const m = { options: new Set<ProfileOption>(['retainLongitudinalModifiedDates', 'cleanDescriptors']), pixelsCleaned: true, datesShifted: true, version: '1.0' };
    expect(methodCodes(m).map((c) => c.value)).toEqual(['113100', '113101', '113105', '113107']);
    expect(methodText(m)).toEqual(['fiona 1.0', 'PS3.15 E.1 Basic Profile 2024b', 'clean-pixel-data', 'retain-longitudinal-modified-dates', 'clean-descriptors']);
    expect(longitudinalValue(m)).toBe('MODIFIED');
    expect(longitudinalValue({ ...m, datesShifted: false })).toBe('UNMODIFIED');
    expect(longitudinalValue({ ...m, options: new Set() })).toBe('REMOVED');
    // The encoded items parse back, in implicit VR as a sequence of three code items.
    const items = encodeCodeItems(methodCodes(m), { explicit: false, littleEndian: true });
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0x0012, 0);
    head.writeUInt16LE(0x0064, 2);
    head.writeUInt32LE(items.length, 4);
    const h = parseBytes(Buffer.concat([head, items]));
    const seq = h.element(0x00120064)!;
    expect(seq.items?.length).toBe(4);
    expect(h.valuesOf(seq.items![1]!.find((e) => e.tag === 0x00080100)!)).toEqual(['113101']);
  });
});
