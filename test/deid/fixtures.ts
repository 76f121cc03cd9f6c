import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump2dcm } from '../peers/dcmtk.js';
import { requireProgram } from '../peers/process.js';

/**
 * Fixtures for the de-identification tests, made by DCMTK's dump2dcm from text dumps, and
 * an independent reader (pydicom, Debian's /usr/bin/python3) to look at the results.
 */

export interface TableAttribute {
  tag: string; // 8 hex digits
  keyword: string;
  vr: string;
  basic: string;
  options: Record<string, string>;
}

interface TableFile {
  attributes: TableAttribute[];
}

export const TABLE = JSON.parse(readFileSync(new URL('../../rules/deid/ps3.15-e1-1-2024b.json', import.meta.url), 'utf8')) as TableFile;

/** Attributes that can sit in a data set (not command, File Meta, or the trailing padding that must come last). */
export const DATASET_ATTRIBUTES = TABLE.attributes.filter((a) => !['0000', '0002'].includes(a.tag.slice(0, 4)) && a.tag !== 'fffcfffc');

/** Sequences the table does not list (so they are kept and walked into): the nesting used by the fixture. */
export const NEST_1 = '00400260'; // Performed Protocol Code Sequence
export const NEST_2 = '00189346'; // CTDI Phantom Type Code Sequence

export const FIXTURE_SOP = '1.2.826.0.1.3680043.2.1143.900.1';
export const FIXTURE_STUDY = '1.2.826.0.1.3680043.2.1143.900.2';
export const FIXTURE_SERIES = '1.2.826.0.1.3680043.2.1143.900.3';

/** A value for an attribute that says which attribute it is (so a survivor is recognisable). */
export function markerValue(a: { tag: string; vr: string }): string {
  const t = a.tag.toUpperCase();
  switch (a.vr) {
    case 'AE':
    case 'CS':
    case 'SH':
    case 'LO':
    case 'ST':
    case 'LT':
    case 'UT':
    case 'UC':
      return `M${t}`;
    case 'PN':
      return `M${t}^Given`;
    case 'AS':
      return '042Y';
    case 'DA':
      return '20010203';
    case 'DT':
      return '20010203040506';
    case 'TM':
      return '040506';
    case 'DS':
      return '1.5';
    case 'IS':
    case 'US':
      return '7';
    case 'UI':
      return `1.2.826.0.1.3680043.2.1143.${Number.parseInt(t, 16)}`;
    case 'UR':
      return `http://example.org/M${t}`;
    default:
      return '4d\\58\\01\\02'; // OB, UN: bytes
  }
}

function tagText(hex: string): string {
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

function attributeLines(attrs: TableAttribute[], indent: string): string[] {
  const lines: string[] = [];
  for (const a of attrs) {
    if (a.vr === 'SQ') {
      lines.push(`${indent}${tagText(a.tag)} SQ (Sequence with undefined length)`);
      lines.push(`${indent}  (fffe,e000) na (Item with undefined length)`);
      lines.push(`${indent}    (0008,0100) SH [CV${a.tag.slice(4).toUpperCase()}]`);
      lines.push(`${indent}  (fffe,e00d) na (ItemDelimitationItem)`);
      lines.push(`${indent}(fffe,e0dd) na (SequenceDelimitationItem)`);
    } else {
      lines.push(`${indent}${tagText(a.tag)} ${a.vr} [${markerValue(a)}]`);
    }
  }
  return lines;
}

function sequence(tag: string, inner: string[], indent: string): string[] {
  return [
    `${indent}${tagText(tag)} SQ (Sequence with undefined length)`,
    `${indent}  (fffe,e000) na (Item with undefined length)`,
    ...inner,
    `${indent}  (fffe,e00d) na (ItemDelimitationItem)`,
    `${indent}(fffe,e0dd) na (SequenceDelimitationItem)`,
  ];
}

/**
 * A data set holding every attribute of the table with a marker value: at top level, in an
 * item of an unlisted sequence (depth 1), and in an item of a sequence in that item (depth 2);
 * plus an overlay group, a curve group and a private block.
 */
export function profileDump(attrs: TableAttribute[] = DATASET_ATTRIBUTES): string {
  const nestedAttrs = attrs.filter((a) => a.tag !== NEST_1 && a.tag !== NEST_2);
  const top = attrs.filter((a) => !['00080016', '00080018', '0020000d', '0020000e'].includes(a.tag) && a.tag !== NEST_1);
  const depth2 = sequence(NEST_2, attributeLines(nestedAttrs, '    '), '    ');
  const depth1 = sequence(NEST_1, [...attributeLines(nestedAttrs, '    '), ...depth2], '');
  const lines = [
    '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]',
    `(0008,0018) UI [${FIXTURE_SOP}]`,
    `(0020,000d) UI [${FIXTURE_STUDY}]`,
    `(0020,000e) UI [${FIXTURE_SERIES}]`,
    ...attributeLines(top, ''),
    ...depth1,
    '(0009,0010) LO [FIONA TEST CREATOR]',
    '(0009,1001) LO [PrivateSecretValue]',
    '(0009,1002) LO [KeptPrivateValue]',
    '(5000,0005) US 1',
    '(5000,3000) OB 4d\\58\\01\\02',
    '(6000,0010) US 4',
    '(6000,0011) US 4',
    '(6000,0040) CS [G]',
    '(6000,0050) SS 1\\1',
    '(6000,0100) US 1',
    '(6000,0102) US 0',
    '(6000,3000) OW 0000',
    '(6000,4000) LT [Overlay by Dr Marker]',
  ];
  // dump2dcm wants its lines in tag order within each level.
  return `${sortTopLevel(lines).join('\n')}\n`;
}

/** Sort top-level dump entries (a line and its indented continuation) by tag. */
function sortTopLevel(lines: string[]): string[] {
  const blocks: string[][] = [];
  for (const l of lines) {
    if (/^\(/.test(l) && !l.startsWith('(fffe,')) blocks.push([l]);
    else blocks[blocks.length - 1]!.push(l);
  }
  const key = (b: string[]): number => Number.parseInt(b[0]!.slice(1, 5) + b[0]!.slice(6, 10), 16);
  return blocks.sort((a, b) => key(a) - key(b)).flat();
}

export async function makeProfileFixture(dir: string, name = 'profile'): Promise<string> {
  const dump = join(dir, `${name}.dump`);
  const out = join(dir, `${name}.dcm`);
  await writeFile(dump, profileDump());
  await dump2dcm(dump, out, ['--write-xfer-little']);
  return out;
}

/** What pydicom sees of an element. */
export interface SeenElement {
  vr: string;
  empty: boolean;
  value: string;
  items?: number;
}

export type SeenLevel = Record<string, SeenElement>;

const PYDICOM_DUMP = String.raw`
import json, sys
import pydicom
def seen(ds):
    out = {}
    for el in ds:
        key = '%08x' % int(el.tag)
        if el.VR == 'SQ':
            out[key] = {'vr': 'SQ', 'empty': len(el.value) == 0, 'value': '', 'items': len(el.value)}
            continue
        v = el.value
        if isinstance(v, (bytes, bytearray)):
            text = v.hex()
        elif v is None:
            text = ''
        elif isinstance(v, (list, tuple)) or type(v).__name__ == 'MultiValue':
            text = '\\'.join(str(x) for x in v)
        else:
            text = str(v)
        out[key] = {'vr': el.VR, 'empty': el.is_empty, 'value': text}
    return out
def levels(path, nest1, nest2):
    ds = pydicom.dcmread(path)
    res = {'top': seen(ds), 'meta': seen(ds.file_meta)}
    n1 = ds.get(int(nest1, 16))
    if n1 is not None and len(n1.value):
        res['d1'] = seen(n1.value[0])
        n2 = n1.value[0].get(int(nest2, 16))
        if n2 is not None and len(n2.value):
            res['d2'] = seen(n2.value[0])
    return res
print(json.dumps({p: levels(p, sys.argv[1], sys.argv[2]) for p in sys.argv[3:]}))
`;

export interface SeenFile {
  top: SeenLevel;
  meta: SeenLevel;
  d1?: SeenLevel;
  d2?: SeenLevel;
}

/** Read files with pydicom: the elements at top level, in File Meta, and at the fixture's two nesting depths. */
export async function pydicomLevels(files: string[]): Promise<Record<string, SeenFile>> {
  requireProgram('dump2dcm', 'dcmtk');
  const r = await execa('/usr/bin/python3', ['-c', PYDICOM_DUMP, NEST_1, NEST_2, ...files], { reject: false });
  if (r.exitCode !== 0) {
    throw new Error(`pydicom failed (install it with: apt-get install -y python3-pydicom): ${String(r.stderr).slice(-2000)}`);
  }
  return JSON.parse(String(r.stdout)) as Record<string, SeenFile>;
}
