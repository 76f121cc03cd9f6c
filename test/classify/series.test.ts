import { describe, expect, it } from 'vitest';
import { emptyDelta, mergeSeries, minSlice, rulesFromValue, type SeriesJson } from '../../src/lib/classify/index.js';

const rules = rulesFromValue(
  [
    { type: 'MR', rules: [{ tag: ['Modality'], value: 'MR' }] },
    { type: 'upper', check: 'SeriesLevel', rules: [{ tag: ['0x0020', '0x1041'], operator: '>', value: 0 }] },
    { type: 'T1', rules: [{ tag: ['SeriesDescription'], value: 't1' }] },
  ],
  'series-test.json',
);

describe('series JSON merges', () => {
  it('commute: two processes writing in either order give the same file', () => {
    const base = { IncomingConnection: { AETitleCaller: 'A', AETitleCalled: 'B', CallerIP: 'x' }, StudyInstanceUID: '1', SeriesInstanceUID: '2', NumFiles: 0, ClassifyType: [], ClassifyEntries: { passed: [], failedSeriesLevel: [] } } as SeriesJson;
    const d1 = { ...emptyDelta(), sliceMin: '-12.5' };
    d1.passed.add('MR#0');
    d1.passed.add('upper#0');
    d1.failedSeriesLevel.add('upper#0');
    const d2 = { ...emptyDelta(), sliceMin: '3' };
    d2.passed.add('upper#0');
    d2.passed.add('T1#0');
    const a = mergeSeries(mergeSeries(base, d1, rules, 10), d2, rules, 20);
    const b = mergeSeries(mergeSeries(base, d2, rules, 10), d1, rules, 20);
    expect(a).toEqual(b);
    expect(a.ClassifyType).toEqual(['MR', 'T1']);
    expect(a.SliceLocation).toBe('-12.5');
    expect(a.NumFiles).toBe(20);
  });

  it("take over a series JSON that FIONA wrote (strings for lists and counts, no ClassifyEntries)", () => {
    const fiona = {
      IncomingConnection: { AETitleCaller: 'SCANNER', AETitleCalled: 'FIONA', CallerIP: '10.0.0.1' },
      Modality: [],
      ImageType: "['ORIGINAL', 'PRIMARY', 'M', 'ND']",
      AcquisitionMatrix: '[0, 256, 256, 0]',
      NumFiles: '12',
      SliceLocation: '-40.5',
      ClassifyType: ['GE', 'ABCD-T1'],
      StudyInstanceUID: '1.2',
      SeriesInstanceUID: '1.2.3',
    } as unknown as SeriesJson;
    const d = { ...emptyDelta(), sliceMin: '-50' };
    d.passed.add('MR#0');
    const out = mergeSeries(fiona, d, rules, 13);
    expect(out.NumFiles).toBe(13);
    expect(out.SliceLocation).toBe('-50');
    expect(out.ClassifyType).toEqual(['MR']);
    expect(out.ImageType).toBe("['ORIGINAL', 'PRIMARY', 'M', 'ND']");
    expect(out.IncomingConnection).toEqual(fiona.IncomingConnection);
  });

  it('keep the smaller SliceLocation by number, ignoring values that are not numbers', () => {
    expect(minSlice('-1.5', '-10')).toBe('-10');
    expect(minSlice('2', '10')).toBe('2');
    expect(minSlice(undefined, '3')).toBe('3');
    expect(minSlice('abc', '3')).toBe('3');
    expect(minSlice('4', 'abc')).toBe('4');
  });
});
