import { describe, expect, it } from 'vitest';
import { parseDicom } from '../../src/lib/dicom/index.js';

/** A bare explicit VR little endian dataset of short string elements, in the order given. */
function dataset(elements: Array<[number, string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [tag, vr, text] of elements) {
    const value = Buffer.from(text.length % 2 ? `${text} ` : text, 'latin1');
    const h = Buffer.alloc(8);
    h.writeUInt16LE(tag >>> 16, 0);
    h.writeUInt16LE(tag & 0xffff, 2);
    h.write(vr, 4, 'latin1');
    h.writeUInt16LE(value.length, 6);
    parts.push(h, value);
  }
  return Buffer.concat(parts);
}

describe('element lookup', () => {
  const tags: Array<[number, string, string]> = [
    [0x00080016, 'UI', '1.2.840.10008.5.1.4.1.1.4'],
    [0x00080018, 'UI', '1.2.3.4'],
    [0x00080060, 'CS', 'MR'],
    [0x00100010, 'PN', 'Doe^Jane'],
    [0x00100020, 'LO', 'ID-1'],
    [0x0020000d, 'UI', '1.2.3'],
    [0x0020000e, 'UI', '1.2.3.5'],
  ];

  it('finds every element of a file in tag order, and none that is absent', () => {
    const h = parseDicom(dataset(tags));
    for (const [tag, , text] of tags) expect(h.string(tag)).toBe(text);
    expect(h.string('PatientName')).toBe('Doe^Jane');
    for (const absent of [0x00000000, 0x00080005, 0x00100030, 0x7fe00010, 0xfffffffe]) expect(h.element(absent)).toBeUndefined();
  });

  it('finds elements of a file out of tag order, the first of a tag given twice', () => {
    const shuffled: Array<[number, string, string]> = [tags[3]!, tags[0]!, tags[6]!, [0x00100010, 'PN', 'Second^Copy'], tags[2]!, tags[1]!];
    const h = parseDicom(dataset(shuffled));
    expect(h.string('PatientName')).toBe('Doe^Jane');
    expect(h.string('Modality')).toBe('MR');
    expect(h.string(0x0020000e)).toBe('1.2.3.5');
    expect(h.string(0x00080018)).toBe('1.2.3.4');
    expect(h.element(0x0020000d)).toBeUndefined();
  });
});
