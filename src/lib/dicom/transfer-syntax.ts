/** Transfer syntaxes: how a dataset's bytes are laid out (PS3.5 10, PS3.6 Annex A). */

export const TS = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  RLELossless: '1.2.840.10008.1.2.5',
  JPEGBaseline: '1.2.840.10008.1.2.4.50',
  JPEGLSLossless: '1.2.840.10008.1.2.4.80',
} as const;

export interface Encoding {
  explicit: boolean;
  littleEndian: boolean;
  deflated: boolean;
}

/** The byte layout a transfer syntax UID means. Unknown UIDs are explicit VR little endian (all encapsulated ones are). */
export function encodingOf(uid: string): Encoding {
  switch (uid) {
    case TS.ImplicitVRLittleEndian:
      return { explicit: false, littleEndian: true, deflated: false };
    case TS.ExplicitVRBigEndian:
      return { explicit: true, littleEndian: false, deflated: false };
    case TS.DeflatedExplicitVRLittleEndian:
    case '1.2.840.10008.1.2.1.98': // Encapsulated Uncompressed Explicit VR LE is not deflated; keep list explicit
      return { explicit: true, littleEndian: true, deflated: uid === TS.DeflatedExplicitVRLittleEndian };
    default:
      return { explicit: true, littleEndian: true, deflated: false };
  }
}

/** The UID that names an encoding (for files without File Meta). */
export function uidOf(enc: { explicit: boolean; littleEndian: boolean }): string {
  if (!enc.explicit) return TS.ImplicitVRLittleEndian;
  return enc.littleEndian ? TS.ExplicitVRLittleEndian : TS.ExplicitVRBigEndian;
}
