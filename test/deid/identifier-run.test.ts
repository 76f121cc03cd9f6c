import { describe, expect, it } from 'vitest';
import { type Header, parseDicom } from '../../src/lib/dicom/index.js';
import { IdentifierRun, collectIdentifiers } from '../../src/lib/deid/identifiers.js';

/**
 * IdentifierRun hands back the previous file's identifiers when a file's identifying
 * elements hold the same bytes. Whatever it hands back must be what collectIdentifiers gives
 * that file: the cases here have the same bytes where the identifiers still differ (another
 * VR, another character set) or differ where an element is present in one file only. The
 * anonymizer's whole-file test (patient-run.test.ts) cannot see these when the difference does
 * not reach the output (a replaced PatientName with the pseudonym from the PatientID).
 */
type El = [number, string, Buffer | string];

function dataset(elements: El[], littleEndian = true): Header {
  const parts: Buffer[] = [];
  for (const [tag, vr, v] of [...elements].sort((a, b) => a[0] - b[0])) {
    let value = typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
    if (value.length % 2) value = Buffer.concat([value, Buffer.from(' ')]);
    const long = ['UT', 'UC', 'UN'].includes(vr);
    const h = Buffer.alloc(long ? 12 : 8);
    const w16 = (n: number, at: number): number => (littleEndian ? h.writeUInt16LE(n, at) : h.writeUInt16BE(n, at));
    w16(tag >>> 16, 0);
    w16(tag & 0xffff, 2);
    h.write(vr, 4, 'latin1');
    if (long) {
      if (littleEndian) h.writeUInt32LE(value.length, 8);
      else h.writeUInt32BE(value.length, 8);
    } else w16(value.length, 6);
    parts.push(h, value);
  }
  const bytes = Buffer.concat(parts);
  // A bare dataset: its byte order is recognised from the first tag.
  return parseDicom(bytes) as Header;
}

const NAME = 0x00100010;
const ID = 0x00100020;
const OTHER_IDS = 0x00101000;
const STEP = 0x00400253;
const CHARSET = 0x00080005;
const MODALITY: El = [0x00080060, 'CS', 'MR'];

const base: El[] = [MODALITY, [NAME, 'PN', 'Alpha^Ann'], [ID, 'LO', 'PATA0001']];
const latinName = Buffer.from('M\xfcller^Ann', 'latin1');

/** [what the file is, its elements, whether the run should call it the previous file's]. */
const RUN: Array<[string, Header, boolean]> = [
  ['A', dataset(base), false],
  ['A again', dataset(base), true],
  ['another PatientID', dataset([MODALITY, [NAME, 'PN', 'Alpha^Ann'], [ID, 'LO', 'PATB0002']]), false],
  ['A', dataset(base), false],
  ['one more identifying element', dataset([...base, [STEP, 'SH', 'STEP77']]), false],
  ['that element again', dataset([...base, [STEP, 'SH', 'STEP77']]), true],
  ['without it', dataset(base), false],
  // The same bytes at another identifying tag.
  ['the ID as OtherPatientIDs', dataset([MODALITY, [NAME, 'PN', 'Alpha^Ann'], [OTHER_IDS, 'LO', 'PATA0001']]), false],
  ['A', dataset(base), false],
  // The same bytes, another VR: two values as LO, none as UN (not text).
  ['two IDs in LO', dataset([MODALITY, [NAME, 'PN', 'Alpha^Ann'], [ID, 'LO', 'PATA\\PATC']]), false],
  ['the same bytes as UN', dataset([MODALITY, [NAME, 'PN', 'Alpha^Ann'], [ID, 'UN', 'PATA\\PATC']]), false],
  ['two IDs in LO again', dataset([MODALITY, [NAME, 'PN', 'Alpha^Ann'], [ID, 'LO', 'PATA\\PATC']]), false],
  // The same bytes in another character set: other text.
  ['Latin-1 name', dataset([MODALITY, [CHARSET, 'CS', 'ISO_IR 100'], [NAME, 'PN', latinName], [ID, 'LO', 'PATA0001']]), false],
  ['the same bytes in UTF-8', dataset([MODALITY, [CHARSET, 'CS', 'ISO_IR 192'], [NAME, 'PN', latinName], [ID, 'LO', 'PATA0001']]), false],
  ['the same bytes in UTF-8 again', dataset([MODALITY, [CHARSET, 'CS', 'ISO_IR 192'], [NAME, 'PN', latinName], [ID, 'LO', 'PATA0001']]), true],
  // The same bytes, big endian: the same text, but not taken for the same file.
  ['A big endian', dataset(base, false), false],
  ['A big endian again', dataset(base, false), true],
  ['no identifying element', dataset([MODALITY]), false],
  ['none again', dataset([MODALITY]), true],
  ['A', dataset(base), false],
];

describe('IdentifierRun', () => {
  it('hands back the previous identifiers only for the same identifying bytes, and always what collectIdentifiers gives', () => {
    const run = new IdentifierRun();
    const got: Array<[string, boolean]> = [];
    for (const [what, h] of RUN) {
      const r = run.collect(h);
      expect(r.ids, what).toEqual(collectIdentifiers(h));
      got.push([what, r.same]);
    }
    expect(got).toEqual(RUN.map(([what, , same]) => [what, same]));
  });

  it('sees the difference in the text these cases are about', () => {
    const ids = (k: number): string[] => collectIdentifiers(RUN[k]![1]).map((i) => i.value);
    expect(ids(9)).not.toEqual(ids(10)); // LO vs UN
    expect(ids(12)).not.toEqual(ids(13)); // Latin-1 vs UTF-8
    expect(ids(15)).toEqual(ids(0)); // big endian read right
    expect(ids(0)).toEqual(['Alpha^Ann', 'PATA0001']);
  });
});
