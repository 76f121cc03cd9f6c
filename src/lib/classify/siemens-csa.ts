import type { Header } from '../dicom/index.js';
import { privateElement } from './header-values.js';

/**
 * Siemens CSA headers: private OB values in group 0029 (creator "SIEMENS CSA HEADER") that
 * hold named values. FIONA parsed them for two values its rules test by name:
 *   PhaseEncodingDirectionPositive  from the image header (0029,xx10)
 *   NumSlices                       from the series header (0029,xx20), MrPhoenixProtocol
 *                                   "sGroupArray.asGroup[0].nSize"
 * The CSA2 layout ("SV10", every Siemens MR since VB) is read; the older CSA1 layout is not
 * (its item lengths are encoded differently). Anything that does not fit is ignored (the values
 * are then absent), never thrown: a vendor blob must not stop classification.
 */
export function parseCsa(bytes: Uint8Array): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const csa2 = bytes.length >= 16 && bytes[0] === 0x53 && bytes[1] === 0x56 && bytes[2] === 0x31 && bytes[3] === 0x30;
  if (!csa2) return out;
  let p = 8;
  const nTags = dv.getUint32(p, true);
  p += 8;
  if (nTags === 0 || nTags > 1000) return out;
  for (let t = 0; t < nTags; t++) {
    if (p + 84 > bytes.length) return out;
    const name = cString(bytes, p, 64);
    const vm = dv.getInt32(p + 64, true);
    const nItems = dv.getInt32(p + 76, true);
    p += 84;
    if (nItems < 0 || nItems > 10_000) return out;
    const values: string[] = [];
    for (let i = 0; i < nItems; i++) {
      if (p + 16 > bytes.length) return out;
      const len = dv.getInt32(p + 4, true);
      p += 16;
      if (len < 0 || p + len > bytes.length) return out;
      if (i < Math.max(vm, 1)) values.push(cString(bytes, p, len).trim());
      p += len + ((4 - (len % 4)) % 4);
    }
    out.set(name, values.filter((v) => v !== ''));
  }
  return out;
}

function cString(bytes: Uint8Array, start: number, max: number): string {
  let end = start;
  while (end < start + max && end < bytes.length && bytes[end] !== 0) end++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

/** The CSA blob of block element `low` (0x10 image, 0x20 series) under a SIEMENS CSA HEADER creator. */
function csaBlob(h: Header, low: number): Uint8Array | undefined {
  const el = privateElement(h, 0x0029, low, 'SIEMENS CSA HEADER');
  return el ? h.bytesOf(el) : undefined;
}

/** FIONA's CSA-derived series fields, when the file has them. */
export function csaFields(h: Header): Record<string, string> {
  const out: Record<string, string> = {};
  const image = csaBlob(h, 0x10);
  if (image) {
    const v = parseCsa(image).get('PhaseEncodingDirectionPositive')?.[0];
    if (v !== undefined) out.PhaseEncodingDirectionPositive = v;
  }
  const series = csaBlob(h, 0x20);
  if (series) {
    const protocol = parseCsa(series).get('MrPhoenixProtocol')?.[0] ?? '';
    const m = /sGroupArray\.asGroup\[0\]\.nSize\s*=\s*(\d+)/.exec(protocol);
    if (m) out.NumSlices = m[1]!;
  }
  return out;
}
