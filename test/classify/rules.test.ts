import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deriveTypes, evaluateInstance, RuleFileError, rulesFromValue, type Lookup, type RuleSet, type RuleValue } from '../../src/lib/classify/index.js';

/**
 * Rule semantics one by one, on plain instances: a map from names ("Keyword" or
 * "gggg,eeee") to values. Arrays are multi-valued elements, strings single values.
 */
type Plain = Record<string, string | string[]>;

const KEYWORD_TAGS: Record<string, string> = {
  Manufacturer: '0008,0070', ImageType: '0008,0008', Modality: '0008,0060', SeriesDescription: '0008,103e',
  ImageOrientationPatient: '0020,0037', Rows: '0028,0010', EchoTime: '0018,0081', SliceThickness: '0018,0050',
  PixelSpacing: '0028,0030', SpacingBetweenSlices: '0018,0088', AcquisitionMatrix: '0018,1310', BurnedInAnnotation: '0028,0301',
};

function lookupOf(inst: Plain, series: Plain = {}): Lookup {
  const value = (v: string | string[] | undefined): RuleValue | undefined =>
    v === undefined ? undefined : Array.isArray(v) ? { values: v, multi: v.length > 1 } : { values: v === '' ? [] : [v], multi: false };
  return (ref) => {
    if (ref.kind === 'name') {
      if (series[ref.name] !== undefined) {
        const s = series[ref.name]!;
        return Array.isArray(s) ? { values: s, multi: true } : { values: [s], multi: false };
      }
      const t = KEYWORD_TAGS[ref.name];
      return value(t ? inst[t] : undefined);
    }
    const key = `${(ref.tag >>> 16).toString(16).padStart(4, '0')},${(ref.tag & 0xffff).toString(16).padStart(4, '0')}`;
    return value(inst[key]);
  };
}

function rules(entries: unknown[]): RuleSet {
  return rulesFromValue(entries, 'test-rules.json');
}

/** Types one instance gets from a single-entry rule set built from `rule`. */
function passes(rule: Record<string, unknown>, inst: Plain, series: Plain = {}): boolean {
  const rs = rules([{ type: 'X', rules: [rule] }]);
  return evaluateInstance(rs, lookupOf(inst, series), []).types.includes('X');
}

const GE: Plain = { '0008,0070': 'GE MEDICAL SYSTEMS' };

describe('operator regexp (the default)', () => {
  it('searches unanchored, with Python syntax', () => {
    expect(passes({ tag: ['0x0008', '0x0070'], value: 'MEDICAL' }, GE)).toBe(true);
    expect(passes({ tag: ['0x0008', '0x0070'], value: '^MEDICAL' }, GE)).toBe(false);
    expect(passes({ tag: ['0x0008', '0x0070'], value: '(?i)^ge medical' }, GE)).toBe(true);
    expect(passes({ tag: ['0x0008', '0x0070'], value: '^ge medical' }, GE)).toBe(false);
    expect(passes({ tag: ['Manufacturer'], value: '(?P<v>GE) MEDICAL' }, GE)).toBe(true);
  });

  it('matches one of the values of a multi-valued tag, or its list form', () => {
    const inst = { '0018,1310': ['0', '256', '256', '0'], '0008,0008': ['ORIGINAL', 'PRIMARY', 'M', 'ND'] };
    expect(passes({ tag: ['AcquisitionMatrix'], value: '0, 256, 256, 0' }, inst)).toBe(true);
    expect(passes({ tag: ['AcquisitionMatrix'], value: '^\\[0, 256' }, inst)).toBe(true);
    expect(passes({ tag: ['AcquisitionMatrix'], value: '0, 128, 128, 0' }, inst)).toBe(false);
    expect(passes({ tag: ['ImageType'], value: '^PRIMARY$' }, inst)).toBe(true);
    expect(passes({ tag: ['ImageType'], value: "'ORIGINAL', 'PRIMARY'" }, inst)).toBe(true);
  });

  it('fails on an absent tag (FIONA searched the empty string)', () => {
    expect(passes({ tag: ['SeriesDescription'], value: '.*' }, GE)).toBe(false);
    expect(passes({ tag: ['SeriesDescription'], value: '.*', negate: 'yes' }, GE)).toBe(true);
  });

  it('an element present with no value is searched as the empty string', () => {
    expect(passes({ tag: ['SeriesDescription'], value: '^$' }, { '0008,103e': '' })).toBe(true);
  });
});

describe('operator contains', () => {
  it('is a substring test on a single value', () => {
    expect(passes({ tag: ['Manufacturer'], operator: 'contains', value: 'MEDICAL' }, GE)).toBe(true);
    expect(passes({ tag: ['Manufacturer'], operator: 'contains', value: 'medical' }, GE)).toBe(false);
  });

  it('is membership on a multi-valued tag', () => {
    const inst = { '0008,0008': ['DERIVED', 'PRIMARY', 'DIS2D', 'MOSAIC'] };
    expect(passes({ tag: ['0x08', '0x08'], operator: 'contains', value: 'MOSAIC' }, inst)).toBe(true);
    expect(passes({ tag: ['0x08', '0x08'], operator: 'contains', value: 'DIS' }, inst)).toBe(false);
    expect(passes({ tag: ['0x08', '0x08'], operator: 'contains', value: 'DIS', negate: 'yes' }, inst)).toBe(true);
  });
});

describe('operators == != < > (numeric)', () => {
  const inst = { '0028,0010': '256', '0018,0081': '2.98', '0008,0060': 'MR', '0028,0030': ['0.9375', '0.9375'] };
  it('compare numbers as numbers', () => {
    expect(passes({ tag: ['0x28', '0x10'], operator: '==', value: '256' }, inst)).toBe(true);
    expect(passes({ tag: ['0x28', '0x10'], operator: '==', value: '256.0' }, inst)).toBe(true);
    expect(passes({ tag: ['0x28', '0x10'], operator: '==', value: 256 }, inst)).toBe(true);
    expect(passes({ tag: ['0x28', '0x10'], operator: '!=', value: '255' }, inst)).toBe(true);
    expect(passes({ tag: ['0x28', '0x10'], operator: '!=', value: '256' }, inst)).toBe(false);
    expect(passes({ tag: ['EchoTime'], operator: '<', value: 10 }, inst)).toBe(true);
    expect(passes({ tag: ['EchoTime'], operator: '>', value: '10' }, inst)).toBe(false);
    expect(passes({ tag: ['EchoTime'], operator: '>', value: '2.5' }, inst)).toBe(true);
  });

  it('compare other values as exact strings for == and !=', () => {
    expect(passes({ tag: ['Modality'], operator: '==', value: 'MR' }, inst)).toBe(true);
    expect(passes({ tag: ['Modality'], operator: '==', value: 'M' }, inst)).toBe(false);
    expect(passes({ tag: ['Modality'], operator: '!=', value: 'CT' }, inst)).toBe(true);
  });

  it('fail on a non-numeric value for < and > (FIONA let those rules pass)', () => {
    expect(passes({ tag: ['Modality'], operator: '<', value: 5 }, inst)).toBe(false);
    expect(passes({ tag: ['Modality'], operator: '>', value: 5 }, inst)).toBe(false);
  });

  it('fail on an absent tag, also for !=', () => {
    expect(passes({ tag: ['0x0018', '0x0050'], operator: '!=', value: '3' }, inst)).toBe(false);
    expect(passes({ tag: ['0x0018', '0x0050'], operator: '<', value: '3' }, inst)).toBe(false);
  });

  it('work element-wise on multi-valued tags', () => {
    expect(passes({ tag: ['PixelSpacing'], operator: '==', value: ['0.9375', '0.9375'] }, inst)).toBe(true);
    expect(passes({ tag: ['PixelSpacing'], operator: '==', value: '0.9375' }, inst)).toBe(false);
    expect(passes({ tag: ['PixelSpacing'], operator: '<', value: 1 }, inst)).toBe(true);
    expect(passes({ tag: ['PixelSpacing'], operator: '<', value: [1, 0.5] }, inst)).toBe(false);
  });
});

describe('operator approx', () => {
  const axial = { '0020,0037': ['1', '0', '0', '0', '1', '0'] };
  const tilted = { '0020,0037': ['0.9999', '0.0003', '0', '0', '1', '0'] };
  it('is element-wise on a multi-valued tag (FIONA failed on these)', () => {
    expect(passes({ tag: ['0x20', '0x37'], operator: 'approx', value: [1, 0, 0, 0, 1, 0] }, axial)).toBe(true);
    expect(passes({ tag: ['0x20', '0x37'], operator: 'approx', value: [0, 1, 0, 0, 0, -1] }, axial)).toBe(false);
    expect(passes({ tag: ['0x20', '0x37'], operator: 'approx', value: [1, 0, 0, 0, 1, 0], approxLevel: '0.0004' }, tilted)).toBe(true);
    expect(passes({ tag: ['0x20', '0x37'], operator: 'approx', value: [1, 0, 0, 0, 1, 0] }, tilted)).toBe(false);
    expect(passes({ tag: ['0x20', '0x37'], operator: 'approx', value: [1, 0, 0] }, axial)).toBe(false);
  });

  it('compares a single value', () => {
    expect(passes({ tag: ['SliceThickness'], operator: 'approx', value: 1.2, approxLevel: 0.05 }, { '0018,0050': '1.23' })).toBe(true);
    expect(passes({ tag: ['SliceThickness'], operator: 'approx', value: 1.2, approxLevel: 0.01 }, { '0018,0050': '1.23' })).toBe(false);
  });
});

describe('operators exist and notexist (FIONA crashed on both)', () => {
  it('test presence, also of an element without a value', () => {
    expect(passes({ tag: ['BurnedInAnnotation'], operator: 'exist' }, { '0028,0301': 'YES' })).toBe(true);
    expect(passes({ tag: ['BurnedInAnnotation'], operator: 'exist' }, { '0028,0301': '' })).toBe(true);
    expect(passes({ tag: ['BurnedInAnnotation'], operator: 'exist' }, {})).toBe(false);
    expect(passes({ tag: ['BurnedInAnnotation'], operator: 'notexist' }, {})).toBe(true);
    expect(passes({ tag: ['0x0028', '0x0301'], operator: 'notexist' }, { '0028,0301': 'NO' })).toBe(false);
    expect(passes({ tag: ['BurnedInAnnotation'], operator: 'exists' }, { '0028,0301': 'NO' })).toBe(true);
    expect(passes({ tag: ['BurnedInAnnotation'], operator: 'exist', negate: 'yes' }, {})).toBe(true);
  });
});

describe('tag references', () => {
  it('select one value of a multi-valued tag by index, negative from the end', () => {
    const inst = { '0020,0037': ['0', '1', '0', '0', '0', '-1'], '0008,0008': ['ORIGINAL', 'PRIMARY'] };
    expect(passes({ tag: ['0x0020', '0x0037', '5'], operator: '==', value: '-1' }, inst)).toBe(true);
    expect(passes({ tag: ['0x0020', '0x0037', '-1'], operator: '==', value: '-1' }, inst)).toBe(true);
    expect(passes({ tag: ['0x0008', '0x0008', '0'], value: '^ORIGINAL$' }, inst)).toBe(true);
    expect(passes({ tag: ['0x0008', '0x0008', '0x1'], value: '^PRIMARY$' }, inst)).toBe(true);
    expect(passes({ tag: ['0x0008', '0x0008', '7'], operator: 'exist' }, inst)).toBe(false);
  });

  it('look in the series JSON first, then the header', () => {
    const inst = { '0008,103e': 'from header' };
    expect(passes({ tag: ['SeriesDescription'], value: 'series json' }, inst, { SeriesDescription: 'series json' })).toBe(true);
    expect(passes({ tag: ['SeriesDescription'], value: 'from header' }, inst)).toBe(true);
    expect(passes({ tag: ['0x0008', '0x103e'], value: 'from header' }, inst, { SeriesDescription: 'series json' })).toBe(true);
  });

  it('allow value to be another tag', () => {
    const inst = { '0018,0050': '3', '0018,0088': '3', '0028,0010': '256', '0028,0011': '512' };
    expect(passes({ tag: ['SliceThickness'], operator: '==', value: ['0x0018', '0x0088'] }, inst)).toBe(true);
    expect(passes({ tag: ['SliceThickness'], operator: '==', value: ['SpacingBetweenSlices'] }, inst)).toBe(true);
    expect(passes({ tag: ['0x0028', '0x0010'], operator: '<', value: { tag: ['0x0028', '0x0011'] } }, inst)).toBe(true);
    expect(passes({ tag: ['0x0028', '0x0011'], operator: '<', value: ['0x0028', '0x0010'] }, inst)).toBe(false);
    // The other tag absent: the rule fails (FIONA fell back to the literal list).
    expect(passes({ tag: ['SliceThickness'], operator: '==', value: ['0x0018', '0x9999'] }, inst)).toBe(false);
    // A value from a tag used as a pattern.
    expect(passes({ tag: ['0x0018', '0x0050'], value: ['0x0018', '0x0088'] }, inst)).toBe(true);
  });
});

describe('entries: AND within, OR across a type, order, references', () => {
  it('needs every rule of an entry; entries sharing a type are alternatives', () => {
    const rs = rules([
      { type: 'T1', rules: [{ tag: ['Modality'], value: '^MR$' }, { tag: ['SeriesDescription'], value: '(?i)mprage' }] },
      { type: 'T1', rules: [{ tag: ['Modality'], value: '^MR$' }, { tag: ['SeriesDescription'], value: '(?i)bravo' }] },
    ]);
    const types = (d: string): string[] => evaluateInstance(rs, lookupOf({ '0008,0060': 'MR', '0008,103e': d }), []).types;
    expect(types('t1_mprage_sag')).toEqual(['T1']);
    expect(types('Sag 3D T1 BRAVO')).toEqual(['T1']);
    expect(types('t2_tse')).toEqual([]);
    expect(evaluateInstance(rs, lookupOf({ '0008,0060': 'CT', '0008,103e': 'mprage' }), []).types).toEqual([]);
  });

  it('lets later entries test ClassifyType from earlier ones and from the series', () => {
    const rs = rules([
      { type: 'axial', rules: [{ tag: ['0x20', '0x37'], operator: 'approx', value: [1, 0, 0, 0, 1, 0] }] },
      { type: 'notaxial', rules: [{ tag: ['ClassifyType'], operator: 'contains', value: 'axial', negate: 'yes' }] },
      { type: 'both', rules: [{ tag: ['ClassifyType'], operator: 'contains', value: 'axial' }, { tag: ['ClassifyType'], operator: 'contains', value: 'sagittal' }] },
    ]);
    const ax = lookupOf({ '0020,0037': ['1', '0', '0', '0', '1', '0'] });
    expect(evaluateInstance(rs, ax, []).types).toEqual(['axial']);
    expect(evaluateInstance(rs, ax, ['sagittal']).types).toEqual(['axial', 'both']);
  });

  it('inlines {"rule": id}, and {"notrule": id} negates each inlined rule', () => {
    const rs = rules([
      { type: 'SIEMENS', id: 'SIEMENSBYMANUFACTURER', rules: [{ tag: ['0x08', '0x70'], value: '^SIEMENS' }] },
      { type: 'mosaic', rules: [{ tag: ['0x08', '0x08'], operator: 'contains', value: 'MOSAIC' }, { rule: 'SIEMENSBYMANUFACTURER' }] },
      { type: 'notsiemens', rules: [{ notrule: 'SIEMENSBYMANUFACTURER' }] },
      { type: 'NOTNEG', id: 'NEG', rules: [{ tag: ['Modality'], value: 'CT', negate: 'yes' }] },
      { type: 'doubleneg', rules: [{ notrule: 'NEG' }] },
    ]);
    const siemensMosaic = lookupOf({ '0008,0070': 'SIEMENS', '0008,0008': ['ORIGINAL', 'MOSAIC'], '0008,0060': 'MR' });
    expect(evaluateInstance(rs, siemensMosaic, []).types).toEqual(['SIEMENS', 'mosaic', 'NOTNEG']);
    const geMosaic = lookupOf({ '0008,0070': 'GE MEDICAL SYSTEMS', '0008,0008': ['ORIGINAL', 'MOSAIC'], '0008,0060': 'CT' });
    // notrule of a negated rule negates it back (FIONA set negate to "yes" and lost this).
    expect(evaluateInstance(rs, geMosaic, []).types).toEqual(['notsiemens', 'doubleneg']);
  });

  it('notrule on a multi-rule entry means "none of its rules passes" (with a warning)', () => {
    const rs = rules([
      { type: 'A', id: 'A', rules: [{ tag: ['Modality'], value: 'MR' }, { tag: ['Manufacturer'], value: 'GE' }] },
      { type: 'notA', rules: [{ notrule: 'A' }] },
    ]);
    expect(rs.warnings.join('\n')).toMatch(/negates each of its 2 rules/);
    expect(evaluateInstance(rs, lookupOf({ '0008,0060': 'MR', '0008,0070': 'SIEMENS' }), []).types).toEqual([]);
    expect(evaluateInstance(rs, lookupOf({ '0008,0060': 'CT', '0008,0070': 'SIEMENS' }), []).types).toEqual(['notA']);
  });
});

describe('check: SeriesLevel', () => {
  const rs = rules([
    { type: 'axial', rules: [{ tag: ['0x20', '0x37'], operator: 'approx', value: [1, 0, 0, 0, 1, 0] }] },
    {
      type: 'oblique',
      check: 'SeriesLevel',
      rules: [
        { tag: ['0x20', '0x37'], operator: 'exist' },
        { tag: ['ClassifyType'], operator: 'contains', value: 'axial', negate: 'yes' },
      ],
    },
    { type: 'any', rules: [{ tag: ['0x20', '0x37'], operator: 'exist' }] },
  ]);
  /** Run a series of instances through the rules the way the classifier does. */
  function series(orientations: string[][]): string[] {
    const passed = new Set<string>();
    const failed = new Set<string>();
    for (const o of orientations) {
      const prior = deriveTypes(rs, [...passed], [...failed]);
      const r = evaluateInstance(rs, lookupOf({ '0020,0037': o }), prior);
      r.passed.forEach((k) => passed.add(k));
      r.failedSeriesLevel.forEach((k) => failed.add(k));
    }
    return deriveTypes(rs, [...passed], [...failed]);
  }
  const OBL = ['0.8', '0.6', '0', '0', '0', '-1'];
  const AX = ['1', '0', '0', '0', '1', '0'];

  it('holds only when every instance passes', () => {
    expect(series([OBL, OBL, OBL])).toEqual(['oblique', 'any']);
    expect(series([OBL, AX, OBL])).toEqual(['axial', 'any']);
    // FIONA re-added the type when a later instance passed again; here it stays off.
    expect(series([AX, OBL])).toEqual(['axial', 'any']);
  });

  it('a type without SeriesLevel holds once any instance passed', () => {
    expect(series([OBL, AX])).toContain('axial');
  });
});

describe('rule files with errors are refused, naming the entry and the field', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an array', { type: 'x' }, /top level must be an array/],
    ['no type', [{ rules: [] }], /entry 0: field "type"/],
    ['rules not a list', [{ type: 'T1', rules: {} }], /entry 0 type "T1": field "rules" must be an array/],
    ['unknown operator', [{ type: 'T1', id: 'X', rules: [{ tag: ['Modality'], value: 'MR' }, { tag: ['Modality'], operator: '=~', value: 'x' }] }], /entry 0 type "T1" id "X" rules\[1\]: field "operator"/],
    ['bad regexp', [{ type: 'T1', rules: [{ tag: ['Modality'], value: '(MR' }] }], /rules\[0\]: field "value" is not a usable regular expression/],
    ['untranslatable regexp', [{ type: 'T1', rules: [{ tag: ['Modality'], value: '(?>MR)' }] }], /atomic groups/],
    ['missing value', [{ type: 'T1', rules: [{ tag: ['Modality'], operator: 'contains' }] }], /field "value" is missing/],
    ['numeric operator, text value', [{ type: 'T1', rules: [{ tag: ['Rows'], operator: '<', value: 'big' }] }], /must be numeric for operator "<"/],
    ['bad tag', [{ type: 'T1', rules: [{ tag: ['0018', '0050'], value: 'x' }] }], /field "tag" group "0018" is not a number \(write "0x0018"\)/],
    ['tag too long', [{ type: 'T1', rules: [{ tag: ['0x18', '0x50', '0', '1'], value: 'x' }] }], /must have 1, 2 or 3 entries/],
    ['negate not yes/no', [{ type: 'T1', rules: [{ tag: ['Modality'], value: 'x', negate: 'true' }] }], /field "negate" must be "yes" or "no"/],
    ['bad check', [{ type: 'T1', check: 'StudyLevel', rules: [] }], /field "check" must be "SeriesLevel"/],
    ['unknown id', [{ type: 'T1', rules: [{ rule: 'NOPE' }] }], /field "rule" refers to id "NOPE", which no entry has/],
    ['ambiguous id', [{ type: 'A', id: 'D', rules: [] }, { type: 'B', id: 'D', rules: [] }, { type: 'C', rules: [{ rule: 'D' }] }], /which entries 0, 1 share/],
    ['cycle', [{ type: 'A', id: 'A', rules: [{ rule: 'B' }] }, { type: 'B', id: 'B', rules: [{ rule: 'A' }] }], /a cycle/],
    ['bad approxLevel', [{ type: 'T1', rules: [{ tag: ['Rows'], operator: 'approx', value: 1, approxLevel: 'close' }] }], /field "approxLevel"/],
  ];
  it.each(cases)('%s', (_name, raw, message) => {
    expect(() => rulesFromValue(raw, 'bad.json')).toThrow(RuleFileError);
    expect(() => rulesFromValue(raw, 'bad.json')).toThrow(message);
  });
});

describe("FIONA's published rule files", () => {
  const abcd = JSON.parse(readFileSync(new URL('../fixtures/classify/fiona-abcd-classifyRules.json', import.meta.url), 'utf8')) as unknown[];
  const docs = JSON.parse(readFileSync(new URL('../fixtures/classify/fiona-docs-examples.json', import.meta.url), 'utf8')) as unknown[];

  it('load; every name they test is known (CSA values included); the shared GEDTI id is a warning', () => {
    const rs = rulesFromValue(abcd, 'fiona-abcd-classifyRules.json');
    expect(rs.entries).toHaveLength(68);
    expect(rs.types).toContain('ABCD-T1');
    expect(rs.warnings.some((w) => w.includes('"GEDTI" is used by entries 46, 47, 48'))).toBe(true);
    expect(rs.warnings.filter((w) => w.includes('is neither a DICOM keyword nor a series JSON field'))).toEqual([]);
  });

  it('classify a GE ABCD T1 (FIONA wrote AcquisitionMatrix as "[0, 256, 256, 0]")', () => {
    const rs = rulesFromValue(abcd, 'fiona-abcd-classifyRules.json');
    const ge = lookupOf(
      { '0008,0070': 'GE MEDICAL SYSTEMS', '0018,1310': ['0', '256', '256', '0'], '0019,109c': 'research/mprage_promo', '0018,0022': ['FAST_GEMS', 'EDR_GEMS'], '0008,0008': ['ORIGINAL', 'PRIMARY', 'OTHER'] },
    );
    const types = evaluateInstance(rs, ge, []).types;
    expect(types).toContain('GE');
    expect(types).toContain('ABCD-T1');
    expect(types).not.toContain('ABCD-T1-NORM');
    expect(types).toContain('original');
    const filtered = lookupOf({ '0008,0070': 'GE MEDICAL SYSTEMS', '0018,1310': ['0', '256', '256', '0'], '0019,109c': 'research/mprage_promo', '0018,0022': ['FILTERED_GEMS'] });
    expect(evaluateInstance(rs, filtered, []).types).toContain('ABCD-T1-NORM');
  });

  it('classify a Siemens mosaic and a localizer with the documentation examples', () => {
    const rs = rulesFromValue(docs, 'fiona-docs-examples.json');
    const mosaic = lookupOf({ '0008,0070': 'SIEMENS', '0008,0008': ['ORIGINAL', 'PRIMARY', 'M', 'MOSAIC'], '0020,0037': ['1', '0', '0', '0', '1', '0'] });
    expect(evaluateInstance(rs, mosaic, []).types).toEqual(['SIEMENS', 'mosaic', 'axial']);
    const sag = lookupOf({ '0008,0070': 'GE MEDICAL SYSTEMS', '0020,0037': ['0', '1', '0', '0', '0', '-1'] });
    expect(evaluateInstance(rs, sag, []).types).toEqual(['GE', 'sagittal']);
    const obl = lookupOf({ '0008,0070': 'GE MEDICAL SYSTEMS', '0020,0037': ['0.7', '0.7', '0', '0', '0', '-1'] });
    expect(evaluateInstance(rs, obl, []).types).toEqual(['GE', 'oblique']);
  });
});
