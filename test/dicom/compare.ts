import { execa } from 'execa';
import type { Header } from '../../src/lib/dicom/header.js';
import type { DicomElement } from '../../src/lib/dicom/types.js';
import { requireProgram } from '../peers/process.js';

/**
 * Flat views of a header, one entry per element with its path through sequences, so our
 * reading can be compared with dcmdump's line by line.
 */
export interface Flat {
  path: string; // e.g. "0008,1140[1].0008,1155"
  vr: string;
  values: string[] | null; // null: not compared (bulk data, sequences)
}

const NUMERIC = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV', 'AT']);
const SINGLE = new Set(['LT', 'ST', 'UT', 'UR']);
const BULK = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN', '??']);

function tagText(tag: number): string {
  const g = (tag >>> 16).toString(16).padStart(4, '0');
  const e = (tag & 0xffff).toString(16).padStart(4, '0');
  return `${g},${e}`;
}

export async function dcmdumpText(file: string, args: string[] = []): Promise<string> {
  const bin = requireProgram('dcmdump', 'dcmtk');
  const r = await execa(bin, ['-Un', '+L', ...args, file], { encoding: 'buffer', reject: false });
  if (r.exitCode !== 0) throw new Error(`dcmdump failed on ${file}: ${Buffer.from(r.stderr as Uint8Array).toString()}`);
  return Buffer.from(r.stdout as Uint8Array).toString('utf8');
}

/** Parse dcmdump's indented output (data set part only) into flat entries. */
export function parseDcmdump(text: string): Flat[] {
  const out: Flat[] = [];
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('# Dicom-Data-Set'));
  const prefixes: string[] = [''];
  const seqs: { path: string; count: number }[] = [];
  const re = /^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\S\S) (.*)\s#\s*(u\/l|\d+), (\d+) (.*)$/;
  for (const line of lines.slice(start + 1)) {
    const m = re.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 2;
    const tag = `${m[2]},${m[3]}`;
    const vr = m[4]!;
    const value = m[5]!.trim();
    if (m[2] === 'fffe') {
      if (tag === 'fffe,e000' && vr === 'na') {
        const seq = seqs[depth - 1]!;
        prefixes[depth + 1] = `${seq.path}[${seq.count++}].`;
      }
      continue;
    }
    const path = `${prefixes[depth] ?? ''}${tag}`;
    if (value.startsWith('(Sequence')) {
      seqs[depth] = { path, count: 0 };
      out.push({ path, vr, values: null });
      continue;
    }
    out.push({ path, vr, values: parseValue(vr, value) });
  }
  return out;
}

function parseValue(vr: string, value: string): string[] | null {
  if (value === '(no value available)') return [];
  if (value.startsWith('(PixelSequence') || BULK.has(vr)) return null;
  if (value.startsWith('[') && value.endsWith(']')) {
    const inner = value.slice(1, -1);
    return SINGLE.has(vr) ? [norm(inner)] : inner.split('\\').map(norm);
  }
  if (NUMERIC.has(vr)) return value.split('\\').map(norm);
  return null;
}

function norm(s: string): string {
  return s.replace(/\0/g, '').trim();
}

/** Our reading, flattened the same way. `descendUn`: also list items of sequences read from VR UN. */
export function ourFlat(header: Header, opts: { descendUn?: boolean } = {}): Flat[] {
  const out: Flat[] = [];
  const walk = (list: DicomElement[], prefix: string, implicitLE: boolean): void => {
    for (const el of list) {
      const path = `${prefix}${tagText(el.tag)}`;
      if (el.items && (el.vr === 'SQ' || opts.descendUn)) {
        out.push({ path, vr: el.vr, values: null });
        el.items.forEach((item, k) => walk(item, `${path}[${k}].`, implicitLE || Boolean(el.itemsImplicit)));
        continue;
      }
      if (el.fragments || BULK.has(el.vr)) {
        out.push({ path, vr: el.vr, values: el.length === 0 ? [] : null });
        continue;
      }
      out.push({ path, vr: el.vr, values: header.valuesOf(el, { implicitLE }).map(norm) });
    }
  };
  walk(header.elements, '', false);
  return out;
}

/** Values equal as dcmdump prints them: floats compared as numbers, tags case-insensitively. */
export function sameValues(vr: string, a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, k) => {
    const y = b[k]!;
    if (vr === 'FL' || vr === 'FD' || vr === 'DS') {
      const nx = Number(x);
      const ny = Number(y);
      if (Number.isFinite(nx) && Number.isFinite(ny)) return Math.abs(nx - ny) <= 1e-6 * Math.max(1, Math.abs(nx));
    }
    return x.toLowerCase() === y.toLowerCase();
  });
}

/** Differences between two flat views (empty when they agree). */
export function diffFlat(ours: Flat[], theirs: Flat[], opts: { ignore?: string[] } = {}): string[] {
  const problems: string[] = [];
  const ignore = new Set(opts.ignore ?? []);
  ours = ours.filter((o) => !ignore.has(o.path));
  theirs = theirs.filter((t) => !ignore.has(t.path));
  const byPath = new Map(theirs.map((t) => [t.path, t]));
  if (ours.length !== theirs.length) problems.push(`element count: ours ${ours.length}, dcmdump ${theirs.length}`);
  for (const o of ours) {
    const t = byPath.get(o.path);
    if (!t) {
      problems.push(`${o.path}: not in dcmdump`);
      continue;
    }
    // dcmdump shows an unknown VR as ??, and a VR UN sequence (CP-246) as SQ.
    if (t.vr !== o.vr && !(t.vr === '??' && o.vr === 'UN') && !(t.vr === 'SQ' && o.vr === 'UN' && o.values === null)) problems.push(`${o.path}: VR ours ${o.vr}, dcmdump ${t.vr}`);
    if (o.values && t.values && !sameValues(o.vr, o.values, t.values)) {
      problems.push(`${o.path}: ours ${JSON.stringify(o.values)}, dcmdump ${JSON.stringify(t.values)}`);
    }
  }
  for (const t of theirs) if (!ours.some((o) => o.path === t.path)) problems.push(`${t.path}: only in dcmdump`);
  return problems;
}
