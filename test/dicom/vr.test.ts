import { describe, expect, it } from 'vitest';
import { parseDicom } from '../../src/lib/dicom/index.js';
import { KNOWN_VRS, LONG_VRS, isLongVrBytes, vrFromBytes } from '../../src/lib/dicom/vr.js';

/**
 * The parser takes an element's VR and its header layout from two tables indexed by the VR's
 * two bytes (vr.ts). Checked here against PS3.5 itself, written out independently of vr.ts:
 * every VR of Table 6.2-1, and those with a 2-byte reserved field and a 4-byte length in
 * explicit VR (7.1.2, Table 7.1-1). Every one of the 65,536 byte pairs is asked.
 */
const PS35_VRS = [
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
];
const PS35_LONG = ['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'];

describe('VR tables (PS3.5)', () => {
  it('name exactly the VRs of PS3.5, and the 4-byte-length ones among them', () => {
    expect([...KNOWN_VRS].sort()).toEqual(PS35_VRS);
    expect([...LONG_VRS].sort()).toEqual(PS35_LONG);
  });

  it('give every byte pair its VR (or none) and its length size', () => {
    const wrong: string[] = [];
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) {
        const name = String.fromCharCode(a, b);
        const known = PS35_VRS.includes(name);
        const vr = vrFromBytes(a, b);
        if (vr !== (known ? name : undefined)) wrong.push(`${a},${b}: vr ${vr}`);
        if (isLongVrBytes(a, b) !== PS35_LONG.includes(name)) wrong.push(`${a},${b}: long ${isLongVrBytes(a, b)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('parse an element of every VR with its header layout, then the element after it', () => {
    for (const vr of PS35_VRS) {
      const long = PS35_LONG.includes(vr);
      const value = Buffer.from(vr === 'SQ' ? '' : 'ABCD', 'latin1');
      const head = Buffer.alloc(long ? 12 : 8);
      head.writeUInt16LE(0x0009, 0); // a private group: no dictionary VR to disagree with
      head.writeUInt16LE(0x1010, 2);
      head.write(vr, 4, 'latin1');
      if (long) head.writeUInt32LE(value.length, 8);
      else head.writeUInt16LE(value.length, 6);
      const next = Buffer.from([0x10, 0x00, 0x20, 0x00, 0x4c, 0x4f, 0x04, 0x00, 0x49, 0x44, 0x2d, 0x31]); // (0010,0020) LO "ID-1"
      const first = Buffer.from([0x08, 0x00, 0x60, 0x00, 0x43, 0x53, 0x02, 0x00, 0x4d, 0x52]); // (0008,0060) CS "MR"
      const h = parseDicom(Buffer.concat([first, head, value, next]));
      const el = h.element(0x00091010);
      expect(el?.vr, vr).toBe(vr);
      expect(el?.length, vr).toBe(value.length);
      expect(h.string(0x00100020), vr).toBe('ID-1');
    }
  });
});
