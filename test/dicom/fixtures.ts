import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readdirSync, statSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { binPath } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { requireProgram } from '../peers/process.js';

/**
 * Test fixtures, made fresh in a private folder by the real tools: fiona-synth (realistic
 * MR images with identifying values and private blocks), DCMTK's dump2dcm for odd cases,
 * dcmconv / dcmcrle / dcmcjpeg / dcmcjpls for the other encodings. A few byte-exact odd
 * files (VR UN sequences of undefined length) are assembled here and checked by dcmdump.
 */

export const ESC = '\u001b';

/** The PS3.5 Annex H/I/K examples: bytes as stored, and the text they mean. */
export const CHARSET_EXAMPLES = {
  japanese: {
    charset: '\\ISO 2022 IR 87',
    bytes: Buffer.from(`Yamada^Tarou=${ESC}$B;3ED${ESC}(B^${ESC}$BB@O:${ESC}(B=${ESC}$B$d$^$@${ESC}(B^${ESC}$B$?$m$&${ESC}(B`, 'latin1'),
    text: 'Yamada^Tarou=山田^太郎=やまだ^たろう',
  },
  japaneseKatakana: {
    charset: 'ISO 2022 IR 13\\ISO 2022 IR 87',
    bytes: Buffer.concat([
      Buffer.from([0xd4, 0xcf, 0xc0, 0xde, 0x5e, 0xc0, 0xdb, 0xb3, 0x3d]),
      Buffer.from(`${ESC}$B;3ED${ESC}(J^${ESC}$BB@O:${ESC}(J=${ESC}$B$d$^$@${ESC}(J^${ESC}$B$?$m$&${ESC}(J`, 'latin1'),
    ]),
    text: 'ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう',
  },
  korean: {
    charset: '\\ISO 2022 IR 149',
    bytes: Buffer.concat([
      Buffer.from(`Hong^Gildong=${ESC}$)C`, 'latin1'),
      Buffer.from([0xfb, 0xf3]),
      Buffer.from(`^${ESC}$)C`, 'latin1'),
      Buffer.from([0xd1, 0xce, 0xd4, 0xd7]),
      Buffer.from(`=${ESC}$)C`, 'latin1'),
      Buffer.from([0xc8, 0xab]),
      Buffer.from(`^${ESC}$)C`, 'latin1'),
      Buffer.from([0xb1, 0xe6, 0xb5, 0xbf]),
    ]),
    text: 'Hong^Gildong=洪^吉洞=홍^길동',
  },
  chinese: {
    charset: 'GB18030',
    bytes: Buffer.from([0x57, 0x61, 0x6e, 0x67, 0x5e, 0x58, 0x69, 0x61, 0x6f, 0x44, 0x6f, 0x6e, 0x67, 0x3d, 0xcd, 0xf5, 0x5e, 0xd0, 0xa1, 0xb6, 0xab, 0x3d]),
    text: 'Wang^XiaoDong=王^小东=',
  },
  latin1: {
    charset: 'ISO_IR 100',
    bytes: Buffer.from('Müller^Jürgen', 'latin1'),
    text: 'Müller^Jürgen',
  },
  cyrillic: {
    charset: 'ISO_IR 144',
    bytes: Buffer.from([0xbb, 0xee, 0xda, 0x63, 0x65, 0xdc, 0xd1, 0x79, 0x70, 0xd3]),
    // Latin c, e, y, p among the Cyrillic letters, as in pydicom's test file.
    text: '\u041b\u044e\u043a' + 'ce' + '\u043c\u0431' + 'yp' + '\u0433',
  },
} as const;

/** A dump2dcm input: the odd cases a scanner or a PACS writes. */
export function oddDump(): Buffer {
  const lines = [
    '(0008,0005) CS [ISO_IR 100]',
    '(0008,0008) CS [ORIGINAL\\PRIMARY\\AXIAL]',
    '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]',
    '(0008,0018) UI [1.2.826.0.1.3680043.2.1125.1.42]',
    '(0008,0020) DA [20240131]',
    '(0008,1140) SQ (Sequence with undefined length)',
    '(fffe,e000) na (Item with undefined length)',
    '(0008,1150) UI [1.2.840.10008.5.1.4.1.1.4]',
    '(0008,1155) UI [1.2.3.4.5.6.7]',
    '(fffe,e00d) na',
    '(fffe,e000) na (Item with undefined length)',
    '(0008,1150) UI [1.2.840.10008.5.1.4.1.1.4]',
    '(0008,1155) UI [1.2.3.4.5.6.8]',
    '(fffe,e00d) na',
    '(fffe,e0dd) na',
    '(0009,0010) LO [ACME 1.0]',
    '(0009,0011) LO [OTHER VENDOR]',
    '(0009,1001) LO [private one]',
    '(0009,1002) SQ (Sequence)',
    '(fffe,e000) na (Item)',
    '(0009,0010) LO [ACME INNER]',
    '(0009,1001) LO [nested private secret]',
    '(0009,1002) SQ (Sequence)',
    '(fffe,e000) na (Item)',
    '(0010,0010) PN [Deep^Nested]',
    '(fffe,e00d) na',
    '(fffe,e0dd) na',
    '(fffe,e00d) na',
    '(fffe,e0dd) na',
    '(0009,1101) SH [other block]',
    '(0010,0010) PN [Müller^Jürgen]',
    '(0010,0020) LO [  PAT-001  ]',
    '(0010,1010) AS [042Y]',
    '(0018,0050) DS []',
    '(0018,0088) DS [ 1.5\\2.25 \\-3e-2]',
    '(0020,0011) IS []',
    '(0020,0013) IS [ 7 ]',
    '(0020,0032) DS [-125.5\\-130\\42.75]',
    '(0020,4000) LT [  leading spaces kept\\backslash kept  ]',
    '(0028,0002) US 1',
    '(0028,0004) CS [MONOCHROME2]',
    '(0028,0010) US 4',
    '(0028,0011) US 4',
    '(0028,0100) US 16',
    '(0028,0101) US 12',
    '(0028,0102) US 11',
    '(0028,0103) US 0',
    '(0028,1052) DS [-1024]',
    '(0028,1053) DS [1]',
    '(0028,9001) UL 4294967295',
    '(0018,9087) FD 1000.5',
    '(0018,9089) FD 0\\0.5\\-0.75',
    '(0018,1320) FL 0.25',
    '(0020,9157) UL 1\\2\\3',
    '(0028,0106) US 0',
    '(0028,0107) US 4095',
    '(0020,9165) AT (0020,0032)\\(0028,0030)',
    '(0040,0244) DA []',
    '(7fe0,0010) OW 0001\\0002\\0003\\0004\\0005\\0006\\0007\\0008\\0009\\000a\\000b\\000c\\000d\\000e\\000f\\0010',
  ];
  return Buffer.from(`${lines.join('\n')}\n`, 'latin1');
}

/** A dump2dcm input for one charset example. */
export function charsetDump(charset: string, pn: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`(0008,0005) CS [${charset}]\n(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]\n(0008,0018) UI [1.2.3.99]\n(0010,0010) PN [`, 'latin1'),
    pn,
    Buffer.from(']\n(0010,0020) LO [ID-1]\n', 'latin1'),
  ]);
}

async function run(bin: string, deb: string, args: string[]): Promise<void> {
  const file = requireProgram(bin, deb);
  await execa(file, args, { env: { TCP_NODELAY: '1' } });
}

export async function dump2dcm(dir: string, name: string, dump: Buffer, args: string[] = []): Promise<string> {
  const src = join(dir, `${name}.dump`);
  const out = join(dir, `${name}.dcm`);
  await writeFile(src, dump);
  await run('dump2dcm', 'dcmtk', ['-q', '+l', '1000000', ...args, src, out]);
  return out;
}

export async function dcmconv(dir: string, input: string, name: string, args: string[]): Promise<string> {
  const out = join(dir, `${name}.dcm`);
  await run('dcmconv', 'dcmtk', ['-q', ...args, input, out]);
  return out;
}

async function dcmtool(bin: string, dir: string, input: string, name: string, args: string[] = []): Promise<string> {
  const out = join(dir, `${name}.dcm`);
  await run(bin, 'dcmtk', [...args, input, out]);
  return out;
}

/** fiona-synth: one series of small realistic MR images; returns the file paths. */
export async function synth(dir: string, opts: { instances?: number; rows?: number; ts?: string; charset?: string } = {}): Promise<string[]> {
  const args = ['--out', dir, '--patients', '1', '--series', '1', '--instances', String(opts.instances ?? 1), '--rows', String(opts.rows ?? 16), '--vendor', 'siemens'];
  if (opts.ts) args.push('--transfer-syntax', opts.ts);
  if (opts.charset) args.push('--charset', opts.charset);
  await execa(binPath('fiona-synth'), args);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.dcm')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * A file with a private sequence stored as VR UN of undefined length (PS3.5 6.2.2): the
 * items inside are implicit VR little endian. Assembled from bytes: DCMTK never writes it.
 */
export function unUndefinedLengthFile(): Buffer {
  const le16 = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8]);
  const le32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return b;
  };
  const tag = (g: number, e: number): Buffer => Buffer.concat([le16(g), le16(e)]);
  const explicitShort = (g: number, e: number, vr: string, v: string): Buffer => {
    const val = Buffer.from(v.length % 2 ? `${v}${vr === 'UI' ? '\0' : ' '}` : v, 'latin1');
    return Buffer.concat([tag(g, e), Buffer.from(vr, 'latin1'), le16(val.length), val]);
  };
  const implicit = (g: number, e: number, v: string): Buffer => {
    const val = Buffer.from(v.length % 2 ? `${v} ` : v, 'latin1');
    return Buffer.concat([tag(g, e), le32(val.length), val]);
  };
  const item = Buffer.concat([
    tag(0xfffe, 0xe000), le32(0xffffffff),
    implicit(0x0010, 0x0010, 'Hidden^InUN'),
    implicit(0x0010, 0x0020, 'UN-ID-7'),
    tag(0xfffe, 0xe00d), le32(0),
  ]);
  const unSeq = Buffer.concat([tag(0x0029, 0x1020), Buffer.from('UN\0\0', 'latin1'), le32(0xffffffff), item, tag(0xfffe, 0xe0dd), le32(0)]);
  const metaBody = Buffer.concat([
    Buffer.concat([tag(2, 1), Buffer.from('OB\0\0', 'latin1'), le32(2), Buffer.from([0, 1])]),
    explicitShort(2, 2, 'UI', '1.2.840.10008.5.1.4.1.1.7'),
    explicitShort(2, 3, 'UI', '1.2.3.4.77'),
    explicitShort(2, 0x10, 'UI', '1.2.840.10008.1.2.1'),
    explicitShort(2, 0x12, 'UI', '1.2.3.4'),
  ]);
  const meta = Buffer.concat([tag(2, 0), Buffer.from('UL', 'latin1'), le16(4), le32(metaBody.length), metaBody]);
  const dataset = Buffer.concat([
    explicitShort(0x0008, 0x0016, 'UI', '1.2.840.10008.5.1.4.1.1.7'),
    explicitShort(0x0008, 0x0018, 'UI', '1.2.3.4.77'),
    explicitShort(0x0010, 0x0010, 'PN', 'Top^Level'),
    explicitShort(0x0029, 0x0010, 'LO', 'SIEMENS CSA HEADER'),
    unSeq,
    explicitShort(0x0029, 0x1030, 'LO', 'after the UN'),
  ]);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), meta, dataset]);
}

/** All fixtures used by the reading and rewriting tests, by name. */
export async function makeFixtures(dir: string): Promise<Record<string, string>> {
  const f: Record<string, string> = {};
  const [mr] = await synth(join(dir, 'synth'), { rows: 16 });
  f.synth = mr!;
  f.odd = await dump2dcm(dir, 'odd', oddDump());
  f.oddImplicit = await dcmconv(dir, f.odd, 'odd-ti', ['+ti']);
  f.oddBig = await dcmconv(dir, f.odd, 'odd-tb', ['+tb']);
  f.oddDeflated = await dcmconv(dir, f.odd, 'odd-td', ['+td']);
  f.oddUndefined = await dcmconv(dir, f.odd, 'odd-undef', ['+te', '-e']);
  f.oddGroupLength = await dcmconv(dir, f.odd, 'odd-gl', ['+te', '+g']);
  f.oddNoMeta = await dcmconv(dir, f.odd, 'odd-nometa', ['+ti', '-F']);
  f.synthImplicit = await dcmconv(dir, f.synth, 'synth-ti', ['+ti']);
  f.synthBig = await dcmconv(dir, f.synth, 'synth-tb', ['+tb']);
  f.synthDeflated = await dcmconv(dir, f.synth, 'synth-td', ['+td']);
  f.synthRle = await dcmtool('dcmcrle', dir, f.synth, 'synth-rle');
  f.synthJpeg = await dcmtool('dcmcjpeg', dir, f.synth, 'synth-jpeg');
  f.synthJpegLs = await dcmtool('dcmcjpls', dir, f.synth, 'synth-jls');
  // A private sequence in implicit VR with defined lengths, converted to explicit: DCMTK
  // keeps it as VR UN with explicit length, items inside in implicit VR (PS3.5 6.2.2).
  const privImplicit = await dump2dcm(dir, 'priv-ti', oddDump(), ['+ti']);
  f.privImplicit = privImplicit;
  f.unDefined = await dcmconv(dir, privImplicit, 'un-defined', ['+te']);
  const unUndef = join(dir, 'un-undefined.dcm');
  await writeFile(unUndef, unUndefinedLengthFile());
  f.unUndefined = unUndef;
  for (const [name, ex] of Object.entries(CHARSET_EXAMPLES)) {
    f[`charset-${name}`] = await dump2dcm(dir, `charset-${name}`, charsetDump(ex.charset, ex.bytes));
  }
  return f;
}

/**
 * For a test file: makeFixtures in a private folder made before all its tests and removed
 * after. `fx` is filled in place by then; `dir()` is the folder, for a test's own files.
 */
export function useFixtures(prefix: string): { fx: Record<string, string>; dir: () => string } {
  const fx: Record<string, string> = {};
  let dir = '';
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir(prefix));
    Object.assign(fx, await makeFixtures(dir));
  }, 120_000);
  afterAll(async () => {
    await cleanup();
  });
  return { fx, dir: () => dir };
}

export { readFile };
