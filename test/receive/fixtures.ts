/**
 * Fixtures for the receiver tests: synthetic MR images from fiona-synth, converted by DCMTK
 * into every transfer syntax it can write, plus hand-built files for what DCMTK cannot make
 * (encapsulated JPEG 2000 / MPEG / HEVC data sets, invalid UIDs).
 *
 * storescu re-serialises a data set as DCMTK writes it (e.g. sequences get explicit lengths),
 * so sources are first passed through dcmconv: the bytes storescu sends are then exactly the
 * file's data set bytes, which is what the tests compare.
 */
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { binPath } from '../helpers/cli.js';
import { dcmcjpeg, dcmcjpls, dcmconv, dcmcrle } from '../peers/dcmtk.js';

export const MR = '1.2.840.10008.5.1.4.1.1.4';
export const SC = '1.2.840.10008.5.1.4.1.1.7';

/** fiona-synth into dir; returns the file paths. */
export async function synth(dir: string, args: string[]): Promise<string[]> {
  const r = await execa(binPath('fiona-synth'), ['--out', dir, '--paths', '-q', ...args], { reject: false });
  if (r.exitCode !== 0) throw new Error(`fiona-synth failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

export interface TsFixture {
  name: string;
  file: string;
  ts: string;
  /** storescu option that proposes this transfer syntax. */
  propose: string[];
}

/** One source image in every transfer syntax DCMTK writes, each with the storescu flag for it. */
export async function transferSyntaxFixtures(dir: string, source: string): Promise<TsFixture[]> {
  const f = (n: string): string => join(dir, `${n}.dcm`);
  await dcmconv(source, f('explicit-le'), ['+te']);
  const base = f('explicit-le');
  await dcmconv(base, f('implicit-le'), ['+ti']);
  await dcmconv(base, f('explicit-be'), ['+tb']);
  await dcmconv(base, f('deflated'), ['+td']);
  await dcmcrle(base, f('rle'));
  await dcmcjpeg(base, f('jpeg-baseline'), ['+eb']);
  await dcmcjpeg(base, f('jpeg-extended'), ['+ee']);
  await dcmcjpeg(base, f('jpeg-lossless-sv1'), ['+e1']);
  await dcmcjpls(base, f('jpeg-ls-lossless'));
  await dcmcjpls(base, f('jpeg-ls-near-lossless'), ['+en']);
  return [
    { name: 'explicit-le', file: base, ts: '1.2.840.10008.1.2.1', propose: [] },
    { name: 'implicit-le', file: f('implicit-le'), ts: '1.2.840.10008.1.2', propose: ['-xi'] },
    { name: 'explicit-be', file: f('explicit-be'), ts: '1.2.840.10008.1.2.2', propose: ['-xb'] },
    { name: 'deflated', file: f('deflated'), ts: '1.2.840.10008.1.2.1.99', propose: ['-xd'] },
    { name: 'rle', file: f('rle'), ts: '1.2.840.10008.1.2.5', propose: ['-xr'] },
    { name: 'jpeg-baseline', file: f('jpeg-baseline'), ts: '1.2.840.10008.1.2.4.50', propose: ['-xy'] },
    { name: 'jpeg-extended', file: f('jpeg-extended'), ts: '1.2.840.10008.1.2.4.51', propose: ['-xx'] },
    { name: 'jpeg-lossless-sv1', file: f('jpeg-lossless-sv1'), ts: '1.2.840.10008.1.2.4.70', propose: ['-xs'] },
    { name: 'jpeg-ls-lossless', file: f('jpeg-ls-lossless'), ts: '1.2.840.10008.1.2.4.80', propose: ['-xt'] },
    { name: 'jpeg-ls-near-lossless', file: f('jpeg-ls-near-lossless'), ts: '1.2.840.10008.1.2.4.81', propose: ['-xu'] },
  ];
}

// --- hand-built files -------------------------------------------------------------------------

function el(group: number, elem: number, vr: string, value: Buffer | string): Buffer {
  let v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  if (v.length % 2 === 1) v = Buffer.concat([v, Buffer.from([vr === 'UI' || vr === 'OB' ? 0 : 0x20])]);
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(elem, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(v.length, 8);
  else h.writeUInt16LE(v.length, 6);
  return Buffer.concat([h, v]);
}

function us(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function fileMeta(sopClass: string, sop: string, ts: string): Buffer {
  const body = Buffer.concat([
    el(2, 1, 'OB', Buffer.from([0, 1])),
    el(2, 2, 'UI', sopClass),
    el(2, 3, 'UI', sop),
    el(2, 0x10, 'UI', ts),
    el(2, 0x12, 'UI', '1.2.826.0.1.3680043.9.7433.1'),
  ]);
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(body.length);
  const pre = Buffer.alloc(132);
  pre.write('DICM', 128, 'latin1');
  return Buffer.concat([pre, el(2, 0, 'UL', gl), body]);
}

export interface Ids {
  study: string;
  series: string;
  sop: string;
  sopClass?: string;
}

/** Explicit VR LE data set, 16-bit native pixels (rows x rows), any UIDs (also invalid ones). */
export function nativeDataset(ids: Ids, rows = 16): Buffer {
  const px = Buffer.alloc(rows * rows * 2);
  for (let i = 0; i < px.length; i += 2) px.writeUInt16LE((i * 13) & 0xfff, i);
  return Buffer.concat([
    el(0x0008, 0x0016, 'UI', ids.sopClass ?? SC),
    el(0x0008, 0x0018, 'UI', ids.sop),
    el(0x0008, 0x0060, 'CS', 'OT'),
    el(0x0010, 0x0010, 'PN', 'Test^Receive'),
    el(0x0010, 0x0020, 'LO', 'RCV001'),
    el(0x0020, 0x000d, 'UI', ids.study),
    el(0x0020, 0x000e, 'UI', ids.series),
    el(0x0028, 0x0002, 'US', us(1)),
    el(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
    el(0x0028, 0x0010, 'US', us(rows)),
    el(0x0028, 0x0011, 'US', us(rows)),
    el(0x0028, 0x0100, 'US', us(16)),
    el(0x0028, 0x0101, 'US', us(12)),
    el(0x0028, 0x0102, 'US', us(11)),
    el(0x0028, 0x0103, 'US', us(0)),
    el(0x7fe0, 0x0010, 'OW', px),
  ]);
}

export async function writeNative(path: string, ids: Ids, rows = 16): Promise<Buffer> {
  const ds = nativeDataset(ids, rows);
  await writeFile(path, Buffer.concat([fileMeta(ids.sopClass ?? SC, ids.sop, '1.2.840.10008.1.2.1'), ds]));
  return ds;
}

/**
 * An encapsulated data set in transfer syntax `ts`: empty basic offset table, then the given
 * fragments (bytes stand in for a JPEG 2000 code stream or an MPEG/HEVC stream; the receiver
 * never decodes them, and neither does storescu).
 */
export async function writeEncapsulated(path: string, ts: string, ids: Ids, fragments: Buffer[]): Promise<Buffer> {
  const item = (b: Buffer): Buffer => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0xfffe, 0);
    h.writeUInt16LE(0xe000, 2);
    h.writeUInt32LE(b.length, 4);
    return Buffer.concat([h, b]);
  };
  const pixelHead = Buffer.alloc(12);
  pixelHead.writeUInt16LE(0x7fe0, 0);
  pixelHead.writeUInt16LE(0x0010, 2);
  pixelHead.write('OB', 4, 'latin1');
  pixelHead.writeUInt32LE(0xffffffff, 8);
  const seqDelim = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const ds = Buffer.concat([
    el(0x0008, 0x0016, 'UI', ids.sopClass ?? SC),
    el(0x0008, 0x0018, 'UI', ids.sop),
    el(0x0008, 0x0060, 'CS', 'OT'),
    el(0x0020, 0x000d, 'UI', ids.study),
    el(0x0020, 0x000e, 'UI', ids.series),
    el(0x0028, 0x0002, 'US', us(1)),
    el(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
    el(0x0028, 0x0008, 'IS', '1'),
    el(0x0028, 0x0010, 'US', us(16)),
    el(0x0028, 0x0011, 'US', us(16)),
    el(0x0028, 0x0100, 'US', us(8)),
    el(0x0028, 0x0101, 'US', us(8)),
    el(0x0028, 0x0102, 'US', us(7)),
    el(0x0028, 0x0103, 'US', us(0)),
    pixelHead,
    item(Buffer.alloc(0)),
    ...fragments.map((f) => item(f.length % 2 ? Buffer.concat([f, Buffer.from([0])]) : f)),
    seqDelim,
  ]);
  await writeFile(path, Buffer.concat([fileMeta(ids.sopClass ?? SC, ids.sop, ts), ds]));
  return ds;
}

