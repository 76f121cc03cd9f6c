/**
 * Dummy values for the D action: non-zero length, consistent with the VR, carrying nothing
 * about the patient. Strings say what happened; dates are the first day of 1900 (an
 * obviously artificial date that still parses); numbers are zero; binary values keep their
 * length and become zero bytes. UIDs are never dummies: they go through the keyed mapping.
 */
export const DUMMY_TEXT = 'ANONYMIZED';

const STRING_DUMMIES: Record<string, string> = {
  AE: 'ANONYMIZED',
  AS: '000D',
  CS: 'ANONYMIZED',
  DA: '19000101',
  DT: '19000101000000',
  TM: '000000',
  DS: '0',
  IS: '0',
  LO: DUMMY_TEXT,
  LT: DUMMY_TEXT,
  PN: DUMMY_TEXT,
  SH: DUMMY_TEXT,
  ST: DUMMY_TEXT,
  UC: DUMMY_TEXT,
  UT: DUMMY_TEXT,
  UR: 'urn:fiona:anonymized',
};

const NUMBER_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV']);

export type DummyValue = { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'bytes'; length: number };

/** The dummy for a VR; `length` is the original value length (binary dummies keep it). */
export function dummyFor(vr: string, length: number): DummyValue {
  const s = STRING_DUMMIES[vr];
  if (s !== undefined) return { kind: 'string', value: s };
  if (NUMBER_VRS.has(vr)) return { kind: 'number', value: 0 };
  // OB, OW, OD, OF, OL, OV, UN, AT: zero bytes, even length, at least 2 (D is non-zero).
  const n = Math.max(2, length + (length % 2));
  return { kind: 'bytes', length: n };
}
