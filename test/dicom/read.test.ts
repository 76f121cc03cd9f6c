import { execa } from 'execa';
import { open, readFile, stat, truncate, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DicomParseError,
  lookupKeyword,
  lookupTag,
  parseDicom,
  parseTagKey,
  readHeader,
  readHeaderFull,
  verifyDicomFile,
  formatTag,
  rewriteDicom,
  type DicomHeader,
} from '../../src/lib/dicom/index.js';
import { PassThrough } from 'node:stream';
import type { Header } from '../../src/lib/dicom/header.js';
import { CHARSET_EXAMPLES, useFixtures } from './fixtures.js';
import { dcmdumpText, diffFlat, ourFlat, parseDcmdump } from './compare.js';

const { fx, dir } = useFixtures('fiona-dicom-read-');

const COMPARED = [
  'synth', 'synthImplicit', 'synthBig', 'synthDeflated', 'synthRle', 'synthJpeg', 'synthJpegLs',
  'odd', 'oddImplicit', 'oddBig', 'oddDeflated', 'oddUndefined', 'oddGroupLength', 'oddNoMeta', 'unDefined',
  'charset-latin1', 'charset-cyrillic', 'charset-korean', 'charset-chinese',
];

describe('values read agree with dcmdump', () => {
  for (const name of COMPARED) {
    it(`${name}: every element, at every depth`, async () => {
      const file = fx[name]!;
      const header = (await readHeaderFull(file, { stopBeforePixels: false })) as Header;
      const theirs = parseDcmdump(await dcmdumpText(file, ['+U8']));
      const ours = ourFlat(header);
      expect(ours.length).toBeGreaterThan(3);
      expect(diffFlat(ours, theirs, { ignore: ['0008,0005'] })).toEqual([]);
    });
  }
});

describe('transfer syntaxes and layouts', () => {
  it('reports the transfer syntax of each encoding', async () => {
    const ts = async (n: string): Promise<string> => (await readHeader(fx[n]!)).transferSyntaxUid;
    expect(await ts('synth')).toBe('1.2.840.10008.1.2.1');
    expect(await ts('synthImplicit')).toBe('1.2.840.10008.1.2');
    expect(await ts('synthBig')).toBe('1.2.840.10008.1.2.2');
    expect(await ts('synthDeflated')).toBe('1.2.840.10008.1.2.1.99');
    expect(await ts('synthRle')).toBe('1.2.840.10008.1.2.5');
    expect(await ts('synthJpegLs')).toMatch(/^1\.2\.840\.10008\.1\.2\.4\.8[01]$/);
  });

  it('reads a bare dataset without preamble or File Meta (implicit VR detected)', async () => {
    const h = await readHeader(fx.oddNoMeta!);
    expect(h.meta).toEqual([]);
    expect(h.datasetOffset).toBe(0);
    expect(h.transferSyntaxUid).toBe('1.2.840.10008.1.2');
    expect(h.string('PatientID')).toBe('PAT-001');
  });

  it('gives the same values in every encoding of the same dataset', async () => {
    const names = ['odd', 'oddImplicit', 'oddBig', 'oddDeflated', 'oddUndefined', 'oddNoMeta'];
    const keys = ['PatientName', 'PatientID', 'ImagePositionPatient', 'Rows', 'LargestImagePixelValue', 'RescaleIntercept', 'DimensionIndexPointer', 'SpacingBetweenSlices'];
    const views = await Promise.all(names.map(async (n) => {
      const h = await readHeader(fx[n]!);
      return keys.map((k) => h.strings(k));
    }));
    for (const v of views) expect(v).toEqual(views[0]);
    expect(views[0]![0]).toEqual(['Müller^Jürgen']);
  });

  it('finds encapsulated fragments without reading them', async () => {
    const h = await verifyDicomFile(fx.synthRle!);
    const px = h.element('PixelData')!;
    expect(px.length).toBe(0xffffffff);
    expect(px.fragments!.length).toBeGreaterThanOrEqual(2); // offset table + one frame
    const bytes = await readFile(fx.synthRle!);
    const frame = px.fragments![1]!;
    // An RLE frame starts with its header: the number of segments (1 for 16-bit MONO is 2).
    expect(bytes.readUInt32LE(frame.offset)).toBe(2);
    expect(frame.offset + frame.length).toBeLessThanOrEqual(bytes.length);
  });
});

describe('values by VR', () => {
  let h: DicomHeader;
  beforeAll(async () => {
    h = await readHeader(fx.odd!);
  });

  it('trims per VR: LO both ends, LT only trailing', () => {
    expect(h.string('PatientID')).toBe('PAT-001');
    expect(h.string('ImageComments')).toBe('  leading spaces kept\\backslash kept');
  });

  it('keeps empty IS/DS empty (never 0)', () => {
    expect(h.has('SliceThickness')).toBe(true);
    expect(h.number('SliceThickness')).toBeUndefined();
    expect(h.strings('SliceThickness')).toEqual([]);
    expect(h.number('SeriesNumber')).toBeUndefined();
    expect(h.number('InstanceNumber')).toBe(7);
  });

  it('reads multi-valued numbers, binary and text', () => {
    expect(h.numbers('SpacingBetweenSlices')).toEqual([1.5, 2.25, -0.03]);
    expect(h.numbers('ImagePositionPatient')).toEqual([-125.5, -130, 42.75]);
    expect(h.numbers('DimensionIndexValues')).toEqual([1, 2, 3]);
    expect(h.number('Rows')).toBe(4);
    expect(h.number('(0028,9001)')).toBe(4294967295);
    expect(h.numbers('DiffusionGradientOrientation')).toEqual([0, 0.5, -0.75]);
    expect(h.number('0018,1320')).toBeCloseTo(0.25);
    expect(h.strings('DimensionIndexPointer')).toEqual(['(0020,0032)', '(0028,0030)']);
    expect(h.strings('ImageType')).toEqual(['ORIGINAL', 'PRIMARY', 'AXIAL']);
  });

  it('accepts every key form', () => {
    expect(h.string('SOPInstanceUID')).toBe('1.2.826.0.1.3680043.2.1125.1.42');
    expect(h.string('(0008,0018)')).toBe('1.2.826.0.1.3680043.2.1125.1.42');
    expect(h.string('0008,0018')).toBe('1.2.826.0.1.3680043.2.1125.1.42');
    expect(h.string('00080018')).toBe('1.2.826.0.1.3680043.2.1125.1.42');
    expect(h.string(0x00080018)).toBe('1.2.826.0.1.3680043.2.1125.1.42');
    expect(h.string('TransferSyntaxUID')).toBe('1.2.840.10008.1.2.1');
    expect(() => h.string('NoSuchKeyword')).toThrow(/not a DICOM tag or keyword/);
  });

  it('names private creators, also in nested items', () => {
    const priv = h.elements.find((e) => e.tag === 0x00091001)!;
    expect(priv.privateCreator).toBe('ACME 1.0');
    expect(h.elements.find((e) => e.tag === 0x00091101)!.privateCreator).toBe('OTHER VENDOR');
    const seq = h.element('0009,1002')!;
    const inner = seq.items![0]!;
    expect(inner.find((e) => e.tag === 0x00091001)!.privateCreator).toBe('ACME INNER');
    const deep = inner.find((e) => e.tag === 0x00091002)!.items![0]!;
    expect((h as Header).valuesOf(deep[0]!)).toEqual(['Deep^Nested']);
  });
});

describe('VR UN sequences (PS3.5 6.2.2)', () => {
  it('reads a UN of undefined length as an implicit VR sequence and goes on after it', async () => {
    const h = (await readHeader(fx.unUndefined!)) as Header;
    const un = h.element('0029,1020')!;
    expect(un.vr).toBe('UN');
    expect(un.itemsImplicit).toBe(true);
    expect(un.items!.length).toBe(1);
    const [name, id] = un.items![0]!;
    expect(h.valuesOf(name!, { implicitLE: true })).toEqual(['Hidden^InUN']);
    expect(h.valuesOf(id!, { implicitLE: true })).toEqual(['UN-ID-7']);
    expect(h.string('0029,1030')).toBe('after the UN');
    // dcmdump reads it the same way (CP-246 is its default).
    const theirs = parseDcmdump(await dcmdumpText(fx.unUndefined!));
    expect(theirs.find((t) => t.path === '0029,1020[0].0010,0010')?.values).toEqual(['Hidden^InUN']);
    expect(diffFlat(ourFlat(h, { descendUn: true }), theirs)).toEqual([]);
  });

  it('finds a private sequence of defined length in an implicit VR file (no VR to say so)', async () => {
    const h = (await readHeader(fx.privImplicit!)) as Header;
    const seq = h.element('0009,1002')!;
    expect(seq.vr).toBe('UN');
    expect(seq.items!.length).toBe(1);
    const inner = seq.items![0]!;
    expect(inner.find((e) => e.tag === 0x00091001)!.privateCreator).toBe('ACME INNER');
    const deep = inner.find((e) => e.tag === 0x00091002)!.items![0]![0]!;
    expect(h.valuesOf(deep, { implicitLE: true })).toEqual(['Deep^Nested']);
    // An anonymizer walking it sees the name hidden two private sequences down.
    const seen: string[] = [];
    await rewriteDicom(fx.privImplicit!, new PassThrough().resume(), { visit: (c) => void (c.tag === 0x00100010 && seen.push(`${c.depth}:${c.values()[0]}`)) });
    expect(seen).toEqual(['2:Deep^Nested', '0:Müller^Jürgen']);
  });

  it('finds the items of a defined-length UN that holds a sequence', async () => {
    const h = (await readHeader(fx.unDefined!)) as Header;
    const un = h.element('0009,1002')!;
    expect(un.vr).toBe('UN');
    expect(un.items!.length).toBe(1);
    const deep = un.items![0]!.find((e) => e.tag === 0x00091002)!;
    expect(deep.items![0]![0]!.tag).toBe(0x00100010);
    expect(h.valuesOf(deep.items![0]![0]!, { implicitLE: true })).toEqual(['Deep^Nested']);
  });
});

describe('character sets', () => {
  for (const [name, ex] of Object.entries(CHARSET_EXAMPLES)) {
    it(`${name} (${ex.charset}) decodes to the PS3.5 text`, async () => {
      const h = await readHeader(fx[`charset-${name}`]!);
      expect(h.string('PatientName')).toBe(ex.text);
    });
  }

  it('agrees with pydicom on the ISO 2022 names (DCMTK here cannot convert IR 87)', async () => {
    const files = ['japanese', 'japaneseKatakana', 'korean', 'chinese'].map((n) => fx[`charset-${n}`]!);
    const py = await execa('/usr/bin/python3', ['-c', 'import sys, pydicom\nfor f in sys.argv[1:]: print(str(pydicom.dcmread(f).PatientName))', ...files]);
    const ours = await Promise.all(files.map(async (f) => (await readHeader(f)).string('PatientName')));
    // pydicom drops empty trailing component groups ('=' at the end); the bytes keep them.
    expect(ours.map((s) => s?.replace(/=+$/, ''))).toEqual(py.stdout.split('\n'));
  });
});

describe('reading only the head', () => {
  it('stops before pixel data and reads only the first window of a large file', async () => {
    const big = join(dir(), 'big.dcm');
    await copyFile(fx.synth!, big);
    // Grow the file: a 200 MB pixel data element after the header (sparse, never read).
    const h0 = await verifyDicomFile(big);
    const px = h0.element('PixelData')!;
    const fh = await open(big, 'r+');
    const len = 200 * 1024 * 1024;
    const hdr = Buffer.alloc(12);
    hdr.writeUInt16LE(0x7fe0, 0);
    hdr.writeUInt16LE(0x0010, 2);
    hdr.write('OW', 4, 'latin1');
    hdr.writeUInt32LE(len, 8);
    await fh.write(hdr, 0, 12, px.headerOffset);
    await fh.truncate(px.headerOffset + 12 + len);
    await fh.close();
    const t = performance.now();
    const h = (await readHeaderFull(big)) as Header;
    const ms = performance.now() - t;
    expect(h.stoppedAtPixels).toBe(true);
    expect(h.element('PixelData')!.length).toBe(len);
    expect(h.store.windows.reduce((n, w) => n + w.bytes.length, 0)).toBeLessThanOrEqual(64 * 1024);
    expect(h.string('PatientName')).toBe((await readHeader(fx.synth!)).string('PatientName'));
    expect(ms).toBeLessThan(1000);
    // The whole walk seeks over the value: it checks the length against the file size.
    const v = await verifyDicomFile(big);
    expect(v.element('PixelData')!.length).toBe(len);
  });

  it('grows the read when the header is longer than the first window', async () => {
    const dump = Buffer.from(
      `(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]\n(0008,0018) UI [1.2.3]\n(0008,4000) LT [${'x'.repeat(9000)}]\n` +
        Array.from({ length: 40 }, (_, k) => `(0009,${(0x1000 + k).toString(16)}) LT [${String(k).repeat(3000)}]`).join('\n') +
        `\n(0009,0010) LO [LATE]\n(0010,0010) PN [Late^Name]\n(7fe0,0010) OW 0001\\0002\n`,
      'latin1',
    );
    const { dump2dcm } = await import('./fixtures.js');
    const f = await dump2dcm(dir(), 'long-header', dump);
    expect((await stat(f)).size).toBeGreaterThan(120_000);
    const h = await readHeader(f);
    expect(h.string('PatientName')).toBe('Late^Name');
  });
});

describe('bad input', () => {
  async function expectParseError(file: string, match: { reason: RegExp; tag?: string; offset?: number }): Promise<DicomParseError> {
    let caught: unknown;
    try {
      await verifyDicomFile(file);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DicomParseError);
    const e = caught as DicomParseError;
    expect(e.message).toContain(file);
    expect(e.message).toMatch(match.reason);
    expect(e.message).toMatch(/at offset \d+/);
    if (match.tag) expect(e.tag).toBe(match.tag);
    if (match.offset !== undefined) expect(e.offset).toBe(match.offset);
    return e;
  }

  it('a truncated file: names the pixel data and its offset', async () => {
    const f = join(dir(), 'trunc.dcm');
    await copyFile(fx.synth!, f);
    const size = (await stat(f)).size;
    await truncate(f, size - 100);
    const px = (await verifyDicomFile(fx.synth!)).element('PixelData')!;
    await expectParseError(f, { reason: /runs past the end of the file/, tag: '(7FE0,0010)', offset: px.headerOffset });
    // readHeader stops before the pixel data: the head is fine.
    expect((await readHeader(f)).string('Modality')).toBe('MR');
  });

  it('a file cut inside a sequence of undefined length', async () => {
    const f = join(dir(), 'trunc-seq.dcm');
    const bytes = await readFile(fx.oddUndefined!);
    const h = parseDicom(bytes);
    const seq = h.element('ReferencedImageSequence')!;
    await writeFile(f, bytes.subarray(0, seq.valueOffset + 30));
    const e = await expectParseError(f, { reason: /truncated/ });
    expect(e.message).toMatch(/\(0008,1140\)|\(0008,1150\)/);
  });

  it('a wrong length inside an item', async () => {
    const f = join(dir(), 'wrong-length.dcm');
    const bytes = Buffer.from(await readFile(fx.odd!));
    const h = parseDicom(bytes);
    const seq = h.element('ReferencedImageSequence')!;
    const inner = seq.items![0]!.find((e) => e.tag === 0x00081155)!;
    bytes.writeUInt16LE(inner.length + 200, inner.headerOffset + 6); // explicit VR: 2-byte length
    await writeFile(f, bytes);
    await expectParseError(f, { reason: /runs past the end of its item|wrong length/, tag: '(0008,1155)', offset: inner.headerOffset });
  });

  it('not DICOM at all', async () => {
    const f = join(dir(), 'notes.txt');
    await writeFile(f, 'These are not the images you are looking for.\n'.repeat(10));
    await expectParseError(f, { reason: /not a DICOM file/ });
    await expect(readHeader(f)).rejects.toThrow(/notes\.txt: not a DICOM file/);
  });

  it('a file that ends inside the File Meta', async () => {
    const f = join(dir(), 'meta-cut.dcm');
    await writeFile(f, (await readFile(fx.synth!)).subarray(0, 150));
    await expectParseError(f, { reason: /truncated/ });
  });

  it('parseDicom throws the same error on bytes, without a file name unless given', () => {
    expect(() => parseDicom(new Uint8Array(200), { file: 'mem.dcm' })).toThrow(DicomParseError);
  });
});

describe('dictionary', () => {
  it('maps keywords, tags and VRs (from dcmjs)', () => {
    expect(lookupKeyword('PatientName')).toEqual({ tag: 0x00100010, vr: 'PN', vm: '1' });
    expect(lookupTag(0x0020000d)).toMatchObject({ keyword: 'StudyInstanceUID', vr: 'UI' });
    expect(lookupTag(0x60020010)).toMatchObject({ keyword: 'OverlayRows' }); // repeating group 60xx
    expect(parseTagKey('StudyInstanceUID')).toBe(0x0020000d);
    expect(parseTagKey('(7fe0,0010)')).toBe(0x7fe00010);
    expect(formatTag(0x7fe00010)).toBe('(7FE0,0010)');
    expect(() => parseTagKey('0010,001G')).toThrow();
  });
});
