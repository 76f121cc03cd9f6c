import { execa } from 'execa';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { PassThrough, Writable } from 'node:stream';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { indexFile, parseDicom, readHeader, rewriteDicom, type DicomElement } from '../../src/lib/dicom/index.js';
import type { Header } from '../../src/lib/dicom/header.js';
import { ROOT } from '../helpers/cli.js';
import { requireProgram } from '../peers/process.js';
import { dcmdumpText, diffFlat, ourFlat, parseDcmdump, type Flat } from './compare.js';
import { synth, useFixtures } from './fixtures.js';

const { fx, dir } = useFixtures('fiona-dicom-rewrite-');

const ALL = [
  'synth', 'synthImplicit', 'synthBig', 'synthDeflated', 'synthRle', 'synthJpeg', 'synthJpegLs',
  'odd', 'oddImplicit', 'oddBig', 'oddDeflated', 'oddUndefined', 'oddGroupLength', 'oddNoMeta', 'unDefined', 'unUndefined',
  'charset-japanese', 'charset-korean', 'charset-chinese',
];

const PATIENT_NAME = 0x00100010;

function out(name: string): string {
  return join(dir(), `${name}.out.dcm`);
}

/** Every leaf element (not a sequence) with its path, as raw bytes of the whole element. */
function leaves(h: Header, bytes: Uint8Array): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  const walk = (list: DicomElement[], prefix: string): void => {
    for (const el of list) {
      const path = `${prefix}${el.tag.toString(16).padStart(8, '0')}`;
      if (el.items) el.items.forEach((item, k) => walk(item, `${path}[${k}].`));
      else m.set(path, Buffer.from(bytes.subarray(el.headerOffset, el.end)));
    }
  };
  walk(h.elements, '');
  return m;
}

async function dciodvfyErrors(file: string): Promise<Set<string>> {
  const bin = requireProgram('dciodvfy', 'dicom3tools');
  const r = await execa(bin, [file], { reject: false, all: true });
  return new Set(
    String(r.all ?? '')
      .split('\n')
      .filter((l) => l.startsWith('Error'))
      // Values are not part of what we compare: only which rule failed where.
      .map((l) => l.replace(/<[^>]*>/g, '<>').replace(/ = .*$/, '')),
  );
}

describe('no change gives a byte-identical file', () => {
  for (const name of ALL) {
    it(name, async () => {
      const seen: number[] = [];
      const r = await rewriteDicom(fx[name]!, out(name), {
        visit: (ctx) => {
          seen.push(ctx.tag);
          return ctx.tag === PATIENT_NAME ? { op: 'keep' } : undefined;
        },
      });
      expect(r.changed).toBe(0);
      expect(seen.length).toBeGreaterThan(3);
      expect(Buffer.compare(await readFile(fx[name]!), await readFile(out(name)))).toBe(0);
    });
  }
});

describe('one element edited: everything else byte-identical', () => {
  for (const name of ALL.filter((n) => !n.startsWith('charset'))) {
    it(`${name}: PatientName replaced`, async () => {
      const input = fx[name]!;
      const output = out(`${name}-pn`);
      const r = await rewriteDicom(input, output, { visit: (c) => (c.tag === PATIENT_NAME && c.depth === 0 ? { op: 'replace', value: 'Doe^Jane' } : undefined) });
      expect(r.changed).toBe(1);
      const before = (await indexFile(input)) as Header;
      const after = (await indexFile(output)) as Header;
      expect(after.string('PatientName')).toBe('Doe^Jane');
      // Every other leaf element has the same bytes (for deflated files: in the inflated stream).
      const inBytes = before.inflated ? before.store.windows[0]!.bytes : await readFile(input);
      const outBytes = after.inflated ? after.store.windows[0]!.bytes : await readFile(output);
      const a = leaves(before, inBytes);
      const b = leaves(after, outBytes);
      // The edit changes that element and, in files that have one, its group's length.
      for (const k of ['00100010', '00100000']) {
        a.delete(k);
        b.delete(k);
      }
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [k, v] of a) expect(Buffer.compare(v, b.get(k)!), k).toBe(0);
      // Top level, not deflated: the output is the input with that one element's bytes swapped.
      if (!before.inflated && !before.has('00100000')) {
        const el = before.element('PatientName')!;
        const nu = after.element('PatientName')!;
        expect(Buffer.compare(outBytes.subarray(0, nu.headerOffset), inBytes.subarray(0, el.headerOffset))).toBe(0);
        expect(Buffer.compare(outBytes.subarray(nu.end), inBytes.subarray(el.end))).toBe(0);
      }
      // dcmdump reads the same file apart from that value.
      const theirsIn = parseDcmdump(await dcmdumpText(input));
      const theirsOut = parseDcmdump(await dcmdumpText(output));
      expect(theirsOut.find((t) => t.path === '0010,0010')?.values).toEqual(['Doe^Jane']);
      const strip = (l: Flat[]): Flat[] => l.filter((t) => t.path !== '0010,0010' && t.path !== '0010,0000');
      expect(diffFlat(strip(theirsOut), strip(theirsIn))).toEqual([]);
    });
  }

  it('dciodvfy finds no new errors after an edit, in every encoding', async () => {
    for (const name of ALL.filter((n) => !n.startsWith('charset'))) {
      const output = out(`${name}-pn`);
      const before = await dciodvfyErrors(fx[name]!);
      const after = await dciodvfyErrors(output);
      const added = [...after].filter((e) => !before.has(e));
      expect(added, name).toEqual([]);
    }
  });
});

describe('edits at depth', () => {
  it('removes, empties and replaces inside nested private sequences; lengths recomputed', async () => {
    const input = fx.odd!;
    const output = out('odd-nested');
    const r = await rewriteDicom(input, output, {
      visit: (c) => {
        if (c.tag === PATIENT_NAME && c.path.join() === [0x00091002, 0x00091002].join()) return { op: 'replace', value: 'Anonymous^Deep' };
        if (c.tag === 0x00091001 && c.depth === 1) return { op: 'remove' };
        if (c.tag === 0x00081155 && c.depth === 1) return { op: 'replace', value: '2.25.123456789' };
        if (c.tag === 0x00181320) return { op: 'empty' };
        return undefined;
      },
    });
    expect(r.changed).toBe(5); // two ReferencedSOPInstanceUIDs
    const h = (await readHeader(output)) as Header;
    const ref = h.element('ReferencedImageSequence')!;
    expect(ref.items!.map((it) => h.valuesOf(it.find((e) => e.tag === 0x00081155)!))).toEqual([['2.25.123456789'], ['2.25.123456789']]);
    const inner = h.element('0009,1002')!.items![0]!;
    expect(inner.find((e) => e.tag === 0x00091001)).toBeUndefined();
    expect(inner.find((e) => e.tag === 0x00090010)).toBeDefined(); // the creator stays
    const deep = inner.find((e) => e.tag === 0x00091002)!.items![0]![0]!;
    expect(h.valuesOf(deep)).toEqual(['Anonymous^Deep']);
    expect(h.has('0018,1320')).toBe(true);
    expect(h.element('0018,1320')!.length).toBe(0);
    // dcmdump agrees with our reading of the result, everywhere.
    const theirs = parseDcmdump(await dcmdumpText(output, ['+U8']));
    expect(diffFlat(ourFlat(h), theirs, { ignore: ['0008,0005'] })).toEqual([]);
  });

  it('keeps undefined lengths undefined, and recomputes defined ones', async () => {
    for (const name of ['odd', 'oddUndefined']) {
      const output = out(`${name}-len`);
      await rewriteDicom(fx[name]!, output, { visit: (c) => (c.tag === 0x00081155 ? { op: 'replace', value: '1.2.3.4.5.6.7.8.9.10.11' } : undefined) });
      const a = (await indexFile(fx[name]!)).element('ReferencedImageSequence')!;
      const b = (await indexFile(output)).element('ReferencedImageSequence')!;
      if (a.length === 0xffffffff) {
        expect(b.length).toBe(0xffffffff);
        expect(b.itemRanges!.map((r) => r.length)).toEqual(a.itemRanges!.map((r) => r.length));
      } else {
        // Each item's UID grows from 14 to 24 bytes.
        expect(b.length).toBe(a.length + 20);
        expect(b.itemRanges!.map((r) => r.length)).toEqual(a.itemRanges!.map((r) => r.length + 10));
      }
    }
  });

  it('removes and empties whole sequences', async () => {
    const output = out('odd-seq');
    await rewriteDicom(fx.oddUndefined!, output, {
      visit: (c) => (c.tag === 0x00081140 ? { op: 'empty' } : c.tag === 0x00091002 ? { op: 'remove' } : undefined),
    });
    const h = await readHeader(output);
    expect(h.element('ReferencedImageSequence')!.items).toEqual([]);
    expect(h.has('0009,1002')).toBe(false);
    const theirs = parseDcmdump(await dcmdumpText(output, ['+U8']));
    expect(theirs.some((t) => t.path.startsWith('0009,1002'))).toBe(false);
    expect(theirs.find((t) => t.path === '0010,0010')?.values).toEqual(['Müller^Jürgen']);
  });

  it('edits inside VR UN sequences (undefined and defined length)', async () => {
    const o1 = out('un-undef');
    await rewriteDicom(fx.unUndefined!, o1, { visit: (c) => (c.tag === PATIENT_NAME && c.depth === 1 ? { op: 'remove' } : undefined) });
    const h1 = (await readHeader(o1)) as Header;
    const un = h1.element('0029,1020')!;
    expect(un.length).toBe(0xffffffff);
    expect(un.items![0]!.map((e) => e.tag)).toEqual([0x00100020]);
    expect(h1.string('0029,1030')).toBe('after the UN');
    const theirs = parseDcmdump(await dcmdumpText(o1));
    expect(theirs.some((t) => t.path === '0029,1020[0].0010,0010')).toBe(false);
    expect(theirs.find((t) => t.path === '0029,1020[0].0010,0020')?.values).toEqual(['UN-ID-7']);

    const o2 = out('un-def');
    await rewriteDicom(fx.unDefined!, o2, { visit: (c) => (c.tag === PATIENT_NAME && c.depth === 2 ? { op: 'replace', value: 'X^Y' } : undefined) });
    const h2 = (await readHeader(o2)) as Header;
    const deep = h2.element('0009,1002')!.items![0]!.find((e) => e.tag === 0x00091002)!.items![0]![0]!;
    expect(h2.valuesOf(deep, { implicitLE: true })).toEqual(['X^Y']);
    await dcmdumpText(o2); // DCMTK still reads the file (the UN length was recomputed)
  });

  it('updates group length elements of old files', async () => {
    const output = out('odd-gl');
    await rewriteDicom(fx.oddGroupLength!, output, { visit: (c) => (c.tag === PATIENT_NAME ? { op: 'replace', value: 'A-much-longer^Patient^Name' } : undefined) });
    // Let DCMTK recompute the group lengths of our output: they must come out the same.
    const check = join(dir(), 'odd-gl-dcmtk.dcm');
    await execa(requireProgram('dcmconv', 'dcmtk'), ['+te', '+g', output, check]);
    const ours = await readHeader(output);
    const dcmtk = await readHeader(check);
    expect(ours.number('00100000')).toBe(dcmtk.number('00100000'));
    expect(ours.number('00080000')).toBe(dcmtk.number('00080000'));
  });
});

describe('set, meta and encodings', () => {
  it('inserts in tag order at top level and inside the first item along a path', async () => {
    for (const name of ['odd', 'oddImplicit', 'oddBig']) {
      const output = out(`${name}-set`);
      await rewriteDicom(fx[name]!, output, {
        set: [
          { tag: 0x00100030, value: '19700101' },
          { tag: 0x00120062, value: 'YES' },
          { tag: 0x00280010, value: 4 }, // replace (same value)
          { tag: 0x00081160, value: [1, 2], path: [0x00081140] }, // ReferencedFrameNumber IS in item 1
          { tag: 0x00091003, vr: 'LO', value: 'inserted private' },
        ],
      });
      const h = (await readHeader(output)) as Header;
      expect(h.string('PatientBirthDate')).toBe('19700101');
      expect(h.string('PatientIdentityRemoved')).toBe('YES');
      expect(h.number('Rows')).toBe(4);
      const item = h.element('ReferencedImageSequence')!.items![0]!;
      expect(h.numbersOf(item.find((e) => e.tag === 0x00081160)!)).toEqual([1, 2]);
      const tags = h.elements.map((e) => e.tag);
      expect(tags).toEqual([...tags].sort((a, b) => a - b));
      const theirs = parseDcmdump(await dcmdumpText(output, ['+U8']));
      expect(diffFlat(ourFlat(h), theirs, { ignore: ['0008,0005'] })).toEqual([]);
    }
  });

  it('sets a sequence from its encoded items, in every encoding (deflated included); bad items refused', async () => {
    /** One item holding CodeValue (0008,0100) SH "113100", in the file's encoding. */
    const itemBytes = (explicit: boolean, le: boolean): Buffer => {
      const value = Buffer.from('113100', 'latin1');
      const el = Buffer.alloc(explicit ? 8 : 8);
      const w16 = (b: Buffer, v: number, o: number): number => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
      const w32 = (b: Buffer, v: number, o: number): number => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
      w16(el, 0x0008, 0);
      w16(el, 0x0100, 2);
      if (explicit) {
        el.write('SH', 4, 'latin1');
        w16(el, value.length, 6);
      } else w32(el, value.length, 4);
      const item = Buffer.alloc(8);
      w16(item, 0xfffe, 0);
      w16(item, 0xe000, 2);
      w32(item, el.length + value.length, 4);
      return Buffer.concat([item, el, value]);
    };
    const cases: [string, boolean, boolean][] = [['synth', true, true], ['synthImplicit', false, true], ['synthBig', true, false], ['synthDeflated', true, true]];
    for (const [name, explicit, le] of cases) {
      const target = out(`${name}-setsq`);
      await rewriteDicom(fx[name]!, target, { set: [{ tag: 0x00120064, vr: 'SQ', value: itemBytes(explicit, le) }] });
      const text = await dcmdumpText(target);
      expect(text, name).toMatch(/\(0012,0064\) SQ/);
      expect(text, name).toContain('(0008,0100) SH [113100]');
      const h = (await indexFile(target)) as Header;
      const seq = h.element(0x00120064)!;
      expect(seq.items?.length, name).toBe(1);
      expect(h.valuesOf(seq.items![0]![0]!, { implicitLE: !explicit })).toEqual(['113100']);
    }
    const bad = itemBytes(true, true);
    bad.writeUInt32LE(99, 4); // the item's length runs past the end
    await expect(rewriteDicom(fx.synth!, out('setsq-bad'), { set: [{ tag: 0x00120064, vr: 'SQ', value: bad }] })).rejects.toThrow(/\(0012,0064\).*past the end/);
    await expect(rewriteDicom(fx.synth!, out('setsq-text'), { set: [{ tag: 0x00120064, vr: 'SQ', value: 'text' }] })).rejects.toThrow(/encoded items/);
  });

  it('writes numbers in the dataset byte order (big endian)', async () => {
    const output = out('big-rows');
    await rewriteDicom(fx.oddBig!, output, { visit: (c) => (c.tag === 0x00280107 ? { op: 'replace', value: 1234 } : undefined) });
    const theirs = parseDcmdump(await dcmdumpText(output));
    expect(theirs.find((t) => t.path === '0028,0107')?.values).toEqual(['1234']);
  });

  it('changes the File Meta and recomputes its group length', async () => {
    const output = out('meta');
    await rewriteDicom(fx.synth!, output, { meta: { MediaStorageSOPInstanceUID: '2.25.1234567890123', SourceApplicationEntityTitle: 'FIONA' } });
    const h = await readHeader(output);
    expect(h.string('MediaStorageSOPInstanceUID')).toBe('2.25.1234567890123');
    expect(h.string('SourceApplicationEntityTitle')).toBe('FIONA');
    const glEnd = h.meta[0]!.end;
    expect(h.number('FileMetaInformationGroupLength')).toBe(h.datasetOffset - glEnd);
    const text = await dcmdumpText(output);
    expect(text).toContain('[2.25.1234567890123]');
    expect(text).toMatch(/\(0002,0016\) AE \[FIONA\s*\]/);
  });

  it('encodes replaced text in the file character set, with ISO 2022 escapes', async () => {
    const output = out('jp');
    await rewriteDicom(fx['charset-japanese']!, output, { visit: (c) => (c.tag === PATIENT_NAME ? { op: 'replace', value: 'Suzuki^Hanako=鈴木^花子' } : undefined) });
    expect((await readHeader(output)).string('PatientName')).toBe('Suzuki^Hanako=鈴木^花子');
    const py = await execa('/usr/bin/python3', ['-c', 'import sys, pydicom\nprint(str(pydicom.dcmread(sys.argv[1]).PatientName))', output]);
    expect(py.stdout).toBe('Suzuki^Hanako=鈴木^花子');
  });

  it('reads and writes an item in its own SpecificCharacterSet', async () => {
    const { dump2dcm } = await import('./fixtures.js');
    const dump = Buffer.from(
      [
        '(0008,0005) CS [ISO_IR 100]',
        '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]',
        '(0008,0018) UI [1.2.3.55]',
        '(0010,0010) PN [M\xfcller]',
        '(0040,0275) SQ (Sequence)',
        '(fffe,e000) na (Item)',
        '(0008,0005) CS [ISO_IR 192]',
        '(0040,1001) SH [x]',
        '(0040,0009) SH [M\xc3\xbcller]',
        '(fffe,e00d) na',
        '(fffe,e0dd) na',
      ].join('\n').replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))) + '\n',
      'latin1',
    );
    const f = await dump2dcm(dir(), 'item-charset', dump);
    const seen: string[] = [];
    const output = out('item-charset');
    await rewriteDicom(f, output, {
      visit: (c) => {
        if (c.tag === 0x00100010 || c.tag === 0x00400009) seen.push(c.values()[0]!);
        return c.tag === 0x00400009 ? { op: 'replace', value: 'Jürgen' } : undefined;
      },
    });
    expect(seen).toEqual(['Müller', 'Müller']);
    const h = (await readHeader(output)) as Header;
    const item = h.element('RequestAttributesSequence')!.items![0]!;
    const el = item.find((e) => e.tag === 0x00400009)!;
    expect(Buffer.from(h.bytesOf(el)!).toString('utf8')).toBe('Jürgen '); // 7 bytes in UTF-8, padded
    expect(Buffer.from(h.bytesOf(h.element('PatientName')!)!).toString('latin1').trim()).toBe('Müller');
  });

  it('refuses a value the character set cannot hold, naming the tag', async () => {
    await expect(rewriteDicom(fx.synth!, out('bad'), { visit: (c) => (c.tag === PATIENT_NAME ? { op: 'replace', value: '王^小东' } : undefined) })).rejects.toThrow(/\(0010,0010\).*cannot be encoded/);
    await expect(rewriteDicom(fx.synth!, out('bad'), { set: [{ tag: 0x00291099, value: 'x' }] })).rejects.toThrow(/give a VR/);
  });

  it('writes to a stream the same bytes as to a file', async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    const edit = { visit: (c: { tag: number }) => (c.tag === PATIENT_NAME ? ({ op: 'replace', value: 'Stream^Test' } as const) : undefined) };
    await rewriteDicom(fx.synthRle!, stream, edit);
    await rewriteDicom(fx.synthRle!, out('stream'), edit);
    expect(Buffer.compare(Buffer.concat(chunks), await readFile(out('stream')))).toBe(0);
  });

  it('stream chunks stay valid after the rewrite returns (a reader may keep them)', async () => {
    // A value of 128 KiB is handed to the stream as one chunk; it must not be a view of a
    // block the next rewrite reads into.
    const [a] = await synth(join(dir(), 'keep-chunks'), { rows: 256 });
    const b = join(dir(), 'keep-chunks-b.dcm');
    const bytesA = await readFile(a!);
    const bytesB = Buffer.from(bytesA);
    for (let k = bytesB.length - 100_000; k < bytesB.length; k++) bytesB[k] = bytesB[k]! ^ 0xff; // other pixel bytes
    await writeFile(b, bytesB);
    const kept: Buffer[] = [];
    const keeper = new Writable({
      write(chunk: Buffer, _enc, cb) {
        kept.push(chunk); // kept as given, not copied
        cb();
      },
    });
    const edit = { visit: (c: { tag: number }) => (c.tag === PATIENT_NAME ? ({ op: 'replace', value: 'Kept^Chunks' } as const) : undefined) };
    await rewriteDicom(a!, out('keep-chunks'), edit);
    const expected = await readFile(out('keep-chunks'));
    await rewriteDicom(a!, keeper, edit);
    await rewriteDicom(b, join(dir(), 'keep-chunks-b.out.dcm'), edit);
    expect(Buffer.concat(kept).equals(expected)).toBe(true);
  });

  it('rewrites from bytes already read (and parsed) exactly as from the file, in every encoding', async () => {
    const edit = {
      visit: (c: { tag: number }) => (c.tag === PATIENT_NAME ? ({ op: 'replace', value: 'From^Memory' } as const) : undefined),
      meta: { ImplementationVersionName: 'FIONA_SRC' },
    };
    for (const name of ALL) {
      const f = fx[name]!;
      const bytes = await readFile(f);
      // A file without File Meta has none to change.
      const e = name === 'oddNoMeta' ? { visit: edit.visit } : edit;
      await rewriteDicom(f, out(`${name}-file`), e);
      const expected = await readFile(out(`${name}-file`));
      await rewriteDicom(f, out(`${name}-src`), { ...e, source: { bytes } });
      expect(Buffer.compare(await readFile(out(`${name}-src`)), expected), name).toBe(0);
      const header = parseDicom(bytes) as Header;
      await rewriteDicom(f, out(`${name}-hdr`), { ...e, source: { bytes, header } });
      expect(Buffer.compare(await readFile(out(`${name}-hdr`)), expected), name).toBe(0);
      // No change: the bytes as they are (a deflated file too).
      await rewriteDicom(f, out(`${name}-same`), { source: { bytes } });
      expect(Buffer.compare(await readFile(out(`${name}-same`)), bytes), name).toBe(0);
    }
  });

  it('writes to a synchronous byte sink the same bytes as to a file (pieces valid only during the call)', async () => {
    const edit = { visit: (c: { tag: number }) => (c.tag === PATIENT_NAME ? ({ op: 'replace', value: 'Byte^Sink' } as const) : undefined) };
    for (const name of ['synth', 'synthDeflated', 'synthRle', 'oddUndefined']) {
      const f = fx[name]!;
      const copies: Buffer[] = [];
      const r = await rewriteDicom(f, { accept: (b) => void copies.push(Buffer.from(b)) }, edit);
      await rewriteDicom(f, out(`${name}-sink`), edit);
      const expected = await readFile(out(`${name}-sink`));
      expect(Buffer.concat(copies).equals(expected), name).toBe(true);
      expect(r.bytesOut).toBe(expected.length);
    }
  });

  it('refuses a source header that stopped before the pixel data', async () => {
    const bytes = await readFile(fx.synth!);
    const header = parseDicom(bytes, { stopBeforePixels: true }) as Header;
    await expect(rewriteDicom(fx.synth!, out('stopped'), { source: { bytes, header } })).rejects.toThrow(/whole file/);
  });

  it('edits a file in place (temp name, then rename)', async () => {
    const f = join(dir(), 'inplace.dcm');
    await writeFile(f, await readFile(fx.synth!));
    await rewriteDicom(f, f, { visit: (c) => (c.tag === PATIENT_NAME ? { op: 'replace', value: 'In^Place' } : undefined) });
    expect((await readHeader(f)).string('PatientName')).toBe('In^Place');
    expect(parseDicom(await readFile(f)).element('PixelData')).toBeDefined();
  });

  it('visit sees values (charset honoured) and raw bytes at every depth', async () => {
    const seen: string[] = [];
    await rewriteDicom(fx.unUndefined!, out('visit'), {
      visit: async (c) => {
        if (c.tag === PATIENT_NAME) seen.push(`${c.depth}:${c.values().join()}:${Buffer.from(await c.bytes()).toString('latin1').trim()}`);
        return undefined;
      },
    });
    expect(seen).toEqual(['0:Top^Level:Top^Level', '1:Hidden^InUN:Hidden^InUN']);
  });
});

describe('encapsulated pixel data with many fragments', () => {
  it('indexes 400 fragments across windows and copies them untouched', async () => {
    const src = await readFile(fx.synthRle!);
    const h0 = parseDicom(src);
    const px = h0.element('PixelData')!;
    const frame = src.subarray(px.fragments![1]!.offset, px.fragments![1]!.offset + px.fragments![1]!.length);
    const item = (data: Uint8Array): Buffer => {
      const hdr = Buffer.alloc(8);
      hdr.writeUInt16LE(0xfffe, 0);
      hdr.writeUInt16LE(0xe000, 2);
      hdr.writeUInt32LE(data.length, 4);
      return Buffer.concat([hdr, data]);
    };
    // Fragments of 150 KiB (larger than a window), each the RLE frame padded with its index.
    const frags = Array.from({ length: 400 }, (_, k) => {
      const b = Buffer.alloc(150 * 1024, k & 0xff);
      frame.copy(b);
      return item(b);
    });
    const delim = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
    const f = join(dir(), 'multiframe.dcm');
    await writeFile(f, Buffer.concat([src.subarray(0, px.valueOffset), item(new Uint8Array(0)), ...frags, delim]));
    const v = await indexFile(f);
    const el = v.element('PixelData')!;
    expect(el.fragments!.length).toBe(401);
    expect(v.store.windows.reduce((n, w) => n + w.bytes.length, 0)).toBeLessThan(2 * 1024 * 1024);
    const output = out('multiframe');
    await rewriteDicom(f, output, { visit: (c) => (c.tag === PATIENT_NAME ? { op: 'replace', value: 'Multi^Frame' } : undefined) });
    const a = await readFile(f);
    const b = await readFile(output);
    const nu = parseDicom(b).element('PixelData')!;
    expect(Buffer.compare(b.subarray(nu.headerOffset), a.subarray(el.headerOffset))).toBe(0);
    expect((await readHeader(output)).string('PatientName')).toBe('Multi^Frame');
    // DCMTK reads the whole file (its dump is too long to print: ask for one element).
    const d = await execa(requireProgram('dcmdump', 'dcmtk'), ['+P', '0010,0010', output]);
    expect(d.stdout).toContain('[Multi^Frame]');
  });
});

describe('memory stays bounded', () => {
  it('edits a 1 GB file with a peak RSS well under 150 MB', async () => {
    const big = join(dir(), 'big.dcm');
    const src = await readFile(fx.synth!);
    const px = parseDicom(src).element('PixelData')!;
    const len = 1024 * 1024 * 1024;
    const fh = await open(big, 'w');
    await fh.write(src, 0, px.headerOffset, 0);
    const hdr = Buffer.alloc(12);
    hdr.writeUInt16LE(0x7fe0, 0);
    hdr.writeUInt16LE(0x0010, 2);
    hdr.write('OW', 4, 'latin1');
    hdr.writeUInt32LE(len, 8);
    await fh.write(hdr, 0, 12, px.headerOffset);
    await fh.truncate(px.headerOffset + 12 + len); // sparse: reads as zeros
    await fh.close();
    const script = `
      import { rewriteDicom } from ${JSON.stringify(`${ROOT}dist/lib/dicom/index.js`)};
      import { readFileSync } from 'node:fs';
      const r = await rewriteDicom(process.argv[1], process.argv[2], { fsync: false, visit: (c) => c.tag === 0x00100010 ? { op: 'replace', value: 'Big^File' } : undefined });
      // VmHWM, not getrusage: Linux carries ru_maxrss over exec from the forking vitest worker.
      const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      console.log(JSON.stringify({ ...r, maxRss: hwm }));`;
    const output = join(dir(), 'big.out.dcm');
    const r = await execa(process.execPath, ['--input-type=module', '-e', script, big, output]);
    const res = JSON.parse(r.stdout) as { changed: number; bytesOut: number; maxRss: number };
    expect(res.changed).toBe(1);
    expect((await stat(output)).size).toBe(res.bytesOut);
    expect(res.maxRss, JSON.stringify(res)).toBeLessThan(150 * 1024 * 1024);
    expect((await readHeader(output)).string('PatientName')).toBe('Big^File');
  }, 120_000);
});
