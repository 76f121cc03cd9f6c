import { BASIC_PROFILE_CODE, CLEAN_PIXEL_DATA_CODE, type MethodCode, OPTION_CODES, PROFILE_OPTIONS, type ProfileOption, optionCliName } from './options.js';

/**
 * Marking a de-identified instance (PS3.15 E.1.1 item 6, PS3.3 C.7.1.1):
 * PatientIdentityRemoved YES, DeidentificationMethod (text), DeidentificationMethodCodeSequence
 * (CID 7050 codes for the profile and every option applied), and
 * LongitudinalTemporalInformationModified.
 */
export const PATIENT_IDENTITY_REMOVED = 0x00120062;
export const DEIDENTIFICATION_METHOD = 0x00120063;
export const DEIDENTIFICATION_METHOD_CODE_SEQUENCE = 0x00120064;
export const LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED = 0x00280303;

const CODE_VALUE = 0x00080100;
const CODING_SCHEME_DESIGNATOR = 0x00080102;
const CODE_MEANING = 0x00080104;

export interface MarkingInput {
  options: ReadonlySet<ProfileOption>;
  /** Pixel data was masked (Clean Pixel Data Option). */
  pixelsCleaned: boolean;
  /** Dates shifted by a non-zero offset. */
  datesShifted: boolean;
  version: string;
}

export function methodCodes(m: MarkingInput): MethodCode[] {
  const codes = [BASIC_PROFILE_CODE];
  if (m.pixelsCleaned) codes.push(CLEAN_PIXEL_DATA_CODE);
  for (const o of PROFILE_OPTIONS) if (m.options.has(o)) codes.push(OPTION_CODES[o]);
  return codes.sort((a, b) => a.value.localeCompare(b.value));
}

/**
 * DeidentificationMethod (LO, VM 1-n): one value per part so no value passes LO's 64
 * characters: "fiona <version>", "PS3.15 E.1 Basic Profile 2024b", then each option's name.
 */
export function methodText(m: MarkingInput): string[] {
  const parts = [`fiona ${m.version}`, 'PS3.15 E.1 Basic Profile 2024b'];
  if (m.pixelsCleaned) parts.push('clean-pixel-data');
  for (const o of PROFILE_OPTIONS) if (m.options.has(o)) parts.push(optionCliName(o));
  return parts.map((p) => p.slice(0, 64));
}

/** MODIFIED when dates moved, UNMODIFIED when kept whole, REMOVED otherwise (PS3.3 C.7.1.1). */
export function longitudinalValue(m: MarkingInput): 'MODIFIED' | 'UNMODIFIED' | 'REMOVED' {
  if (m.options.has('retainLongitudinalModifiedDates')) return m.datesShifted ? 'MODIFIED' : 'UNMODIFIED';
  if (m.options.has('retainLongitudinalFullDates')) return 'UNMODIFIED';
  return 'REMOVED';
}

export interface Encoding {
  explicit: boolean;
  littleEndian: boolean;
}

function padText(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from(' ')]) : b;
}

/** One short string element (SH, LO, CS) in the given encoding. */
function encodeTextElement(tag: number, vr: string, text: string, enc: Encoding): Buffer {
  const value = padText(text);
  const head = Buffer.alloc(enc.explicit ? 8 : 8);
  const g = tag >>> 16;
  const e = tag & 0xffff;
  if (enc.littleEndian) {
    head.writeUInt16LE(g, 0);
    head.writeUInt16LE(e, 2);
  } else {
    head.writeUInt16BE(g, 0);
    head.writeUInt16BE(e, 2);
  }
  if (enc.explicit) {
    head.write(vr, 4, 'latin1');
    if (enc.littleEndian) head.writeUInt16LE(value.length, 6);
    else head.writeUInt16BE(value.length, 6);
  } else if (enc.littleEndian) head.writeUInt32LE(value.length, 4);
  else head.writeUInt32BE(value.length, 4);
  return Buffer.concat([head, value]);
}

/** An item (FFFE,E000) of defined length around a dataset's bytes. */
function encodeItem(content: Buffer, enc: Encoding): Buffer {
  const head = Buffer.alloc(8);
  if (enc.littleEndian) {
    head.writeUInt16LE(0xfffe, 0);
    head.writeUInt16LE(0xe000, 2);
    head.writeUInt32LE(content.length, 4);
  } else {
    head.writeUInt16BE(0xfffe, 0);
    head.writeUInt16BE(0xe000, 2);
    head.writeUInt32BE(content.length, 4);
  }
  return Buffer.concat([head, content]);
}

/** The items of DeidentificationMethodCodeSequence, encoded (the value of the SQ element). */
export function encodeCodeItems(codes: MethodCode[], enc: Encoding): Uint8Array {
  return Buffer.concat(
    codes.map((c) =>
      encodeItem(
        Buffer.concat([
          encodeTextElement(CODE_VALUE, 'SH', c.value, enc),
          encodeTextElement(CODING_SCHEME_DESIGNATOR, 'SH', 'DCM', enc),
          encodeTextElement(CODE_MEANING, 'LO', c.meaning, enc),
        ]),
        enc,
      ),
    ),
  );
}
