import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finishParts } from '../../src/lib/deid/finish.js';
import { identifierNeedles } from '../../src/lib/deid/leak.js';
import { parseBytes } from '../../src/lib/dicom/read.js';
import { runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

/**
 * The leak check on an output in parts (the pixel data value kept by reference from the
 * input): the bytes before and after the value are checked, the value is not, and a split
 * that does not put the value where the output's header says it is, is refused.
 */
let tmp: { dir: string; cleanup: () => Promise<void> };
let file: Buffer;

beforeAll(async () => {
  tmp = await makeTempDir('fiona-finish-parts-');
  const r = await runTool('fiona-synth', ['--out', tmp.dir, '--patients', '1', '--series', '1', '--instances', '1', '--rows', '16', '--seed', '3', '--no-fsync', '-q']);
  if (r.exitCode !== 0) throw new Error(String(r.stderr));
  const f = (await readdir(tmp.dir, { recursive: true, withFileTypes: true })).find((e) => e.isFile())!;
  file = await readFile(join(f.parentPath, f.name));
}, 60_000);
afterAll(async () => tmp.cleanup());

function split(bytes: Buffer, tail: Buffer): Uint8Array[] {
  const px = parseBytes(bytes, {}).element(0x7fe00010)!;
  return [Buffer.from(bytes.subarray(0, px.valueOffset)), bytes.subarray(px.valueOffset, px.end), tail];
}

const needles = identifierNeedles([{ tag: 0x00101040, keyword: 'PatientAddress', kind: 'text', value: 'Secretstreet 12' }], new Set());

describe('finishParts', () => {
  it('passes an output whose only copy of the value is inside the pixel data, and zeroes the preamble', () => {
    const bytes = Buffer.from(file);
    bytes.fill(0x41, 0, 128); // a preamble with something in it
    const px = parseBytes(bytes, {}).element(0x7fe00010)!;
    const value = Buffer.from(bytes.subarray(px.valueOffset, px.end));
    Buffer.from('secretstreet 12').copy(value, 0);
    const parts = [Buffer.from(bytes.subarray(0, px.valueOffset)), value, Buffer.alloc(0)];
    expect(() => finishParts(parts, { needles })).not.toThrow();
    expect(Buffer.from(parts[0]!.subarray(0, 128)).equals(Buffer.alloc(128))).toBe(true);
  });

  it('checks an output of two parts (nothing after the pixel data) as one of three', () => {
    const withWord = Buffer.from(file);
    const el = parseBytes(withWord, {}).elements.find((e) => !e.items && e.length >= 16 && e.length < 200 && e.tag < 0x7fe00000 && e.vr !== 'UI' && e.vr !== 'OB')!;
    withWord.fill(0x20, el.valueOffset, el.valueOffset + el.length);
    Buffer.from('Secretstreet 12').copy(withWord, el.valueOffset);
    const [head, value] = split(withWord, Buffer.alloc(0));
    expect(() => finishParts([head!, value!], { needles })).toThrow(/leak check: the output still holds the PatientAddress/);
    const [cleanHead, cleanValue] = split(file, Buffer.alloc(0));
    expect(() => finishParts([cleanHead!, cleanValue!], { needles })).not.toThrow();
    expect(() => finishParts([cleanHead!, cleanValue!.subarray(1)], { needles })).toThrow(/a bug; nothing was released/);
  });

  it('finds a value after the pixel data and one before it', () => {
    expect(() => finishParts(split(file, Buffer.from('\0\0 SECRETSTREET 12 \0')), { needles })).toThrow(/leak check: the output still holds the PatientAddress/);
    // Written over the value of a header element (one long enough), padded with spaces.
    const withWord = Buffer.from(file);
    const el = parseBytes(withWord, {}).elements.find((e) => !e.items && e.length >= 16 && e.length < 200 && e.tag < 0x7fe00000 && e.vr !== 'UI' && e.vr !== 'OB')!;
    withWord.fill(0x20, el.valueOffset, el.valueOffset + el.length);
    Buffer.from('Secretstreet 12').copy(withWord, el.valueOffset);
    const tag = `(${(el.tag >>> 16).toString(16).padStart(4, '0')},${(el.tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();
    expect(() => finishParts(split(withWord, Buffer.alloc(0)), { needles })).toThrow(`(in ${tag})`);
  });

  it('refuses parts that do not put the pixel data value where the header says', () => {
    const [head, value, tail] = split(file, Buffer.alloc(0));
    expect(() => finishParts([head!.subarray(0, head!.length - 2), value!, tail!], { needles })).toThrow(/a bug; nothing was released/);
    expect(() => finishParts([head!, value!.subarray(1), tail!], { needles })).toThrow(/a bug; nothing was released/);
  });
});
