/**
 * Which abstract and transfer syntaxes the receiver accepts.
 *
 * Storage: every standard storage SOP class lives under 1.2.840.10008.5.1.4.1.1 (PS3.6 A.1),
 * plus a few storage classes outside that arc, plus the private storage classes scanners send
 * to research gateways (Siemens CSA non-image, GE and Philips private objects; UIDs as
 * dcm4che's UID table names them). A research receiver must not turn away a vendor's raw data.
 * Anything else (query/retrieve, worklist, print, ...) is refused at association time: we
 * would have no way to serve it.
 *
 * Transfer syntaxes: every standard one (1.2.840.10008.1.2 and below), taken as proposed and
 * never transcoded. Private transfer syntaxes are refused: we could not check the data set.
 */

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

const STORAGE_ARC = '1.2.840.10008.5.1.4.1.1.';

/** Storage SOP classes outside the main arc (PS3.6 A.1) and private ones seen in the field. */
const OTHER_STORAGE = new Set([
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol Storage
  '1.2.840.10008.5.1.4.39.1', // Color Palette Storage
  '1.2.840.10008.5.1.4.43.1', // Generic Implant Template Storage
  '1.2.840.10008.5.1.4.44.1', // Implant Assembly Template Storage
  '1.2.840.10008.5.1.4.45.1', // Implant Template Group Storage
  '1.2.840.10008.5.1.4.34.10', // RT Beams Delivery Instruction Storage - Trial (retired, still sent)
  '1.3.12.2.1107.5.9.1', // Private Siemens CSA Non Image Storage (spectroscopy, raw, physio)
  '1.3.12.2.1107.5.99.3.10', // Private Siemens CT MR Volume Storage
  '1.3.12.2.1107.5.99.3.11', // Private Siemens AX Frame Sets Storage
  '1.2.840.113619.4.2', // Private GE Dicom MR Image Info Object
  '1.2.840.113619.4.3', // Private GE Dicom CT Image Info Object
  '1.2.840.113619.4.4', // Private GE Dicom Display Image Info Object
  '1.2.840.113619.4.26', // Private GE 3D Model Storage
  '1.2.840.113619.4.27', // Private GE eNTEGRA Protocol or NM Genie Storage
  '1.2.840.113619.4.30', // Private GE PET Raw Data Storage
  '1.2.840.113619.4.5.249', // Private GE RT Plan Storage
  '1.2.528.1.1001.5.1.1.1', // Private GE Collage Storage
  '1.3.46.670589.2.3.1.1', // Private Philips Specialised XA Storage
  '1.3.46.670589.2.4.1.1', // Private Philips CX Image Storage
  '1.3.46.670589.2.5.1.1', // Private Philips 3D Presentation State Storage
  '1.3.46.670589.2.8.1.1', // Private Philips VRML Storage
  '1.3.46.670589.2.11.1.1', // Private Philips Volume Set Storage
  '1.3.46.670589.5.0.1', // Private Philips Volume Storage (retired)
  '1.3.46.670589.5.0.1.1', // Private Philips Volume Storage
  '1.3.46.670589.5.0.2', // Private Philips 3D Object Storage (retired)
  '1.3.46.670589.5.0.2.1', // Private Philips 3D Object Storage
  '1.3.46.670589.5.0.3', // Private Philips Surface Storage (retired)
  '1.3.46.670589.5.0.3.1', // Private Philips Surface Storage
  '1.3.46.670589.5.0.4', // Private Philips Composite Object Storage
  '1.3.46.670589.5.0.7', // Private Philips MR Cardio Profile Storage
  '1.3.46.670589.5.0.8', // Private Philips MR Cardio Storage (retired)
  '1.3.46.670589.5.0.8.1', // Private Philips MR Cardio Storage
  '1.3.46.670589.5.0.9', // Private Philips CT Synthetic Image Storage
  '1.3.46.670589.5.0.10', // Private Philips MR Synthetic Image Storage
  '1.3.46.670589.5.0.11', // Private Philips MR Cardio Analysis Storage (retired)
  '1.3.46.670589.5.0.11.1', // Private Philips MR Cardio Analysis Storage
  '1.3.46.670589.5.0.12', // Private Philips CX Synthetic Image Storage
  '1.3.46.670589.5.0.13', // Private Philips Perfusion Storage
  '1.3.46.670589.5.0.14', // Private Philips Perfusion Image Storage
  '1.3.46.670589.11.0.0.12.1', // Private Philips MR Spectrum Storage
  '1.3.46.670589.11.0.0.12.2', // Private Philips MR Series Data Storage
  '1.3.46.670589.11.0.0.12.3', // Private Philips MR Color Image Storage
  '1.3.46.670589.11.0.0.12.4', // Private Philips MR Examcard Storage
  '1.2.392.200036.9116.7.8.1.1.1', // Private Toshiba US Image Storage
  '1.2.392.200036.9125.1.1.2', // Private Fuji CR Image Storage
  '1.3.6.1.4.1.5962.301.1', // Private PixelMed Legacy Converted Enhanced CT Image Storage
  '1.3.6.1.4.1.5962.301.2', // Private PixelMed Legacy Converted Enhanced MR Image Storage
  '1.3.6.1.4.1.5962.301.3', // Private PixelMed Legacy Converted Enhanced PET Image Storage
  '1.3.6.1.4.1.5962.301.9', // Private PixelMed Floating Point Image Storage
  '2.16.840.1.114033.5.1.4.1.1.130', // Private PMOD Multi-frame Image Storage
]);

export function isStorageSopClass(uid: string): boolean {
  return (uid.startsWith(STORAGE_ARC) && /^[0-9.]+$/.test(uid) && !uid.endsWith('.')) || OTHER_STORAGE.has(uid);
}

export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
} as const;

/** A standard transfer syntax UID: 1.2.840.10008.1.2 or an arc below it. */
export function isStandardTransferSyntax(uid: string): boolean {
  return uid === TransferSyntax.ImplicitVRLittleEndian || /^1\.2\.840\.10008\.1\.2(\.[0-9]+)+$/.test(uid);
}

/**
 * Pick the transfer syntax for one proposed presentation context: the first one the sender
 * proposed that we take (senders list the file's own encoding first), except that Explicit VR
 * Big Endian (retired) is taken only when it is the only choice.
 */
export function chooseTransferSyntax(proposed: string[]): string | undefined {
  const usable = proposed.filter(isStandardTransferSyntax);
  return usable.find((ts) => ts !== TransferSyntax.ExplicitVRBigEndian) ?? usable[0];
}

/** How the data set bytes of a transfer syntax are laid out. */
export interface DatasetEncoding {
  explicitVr: boolean;
  littleEndian: boolean;
  deflated: boolean;
}

export function datasetEncoding(ts: string): DatasetEncoding {
  switch (ts) {
    case TransferSyntax.ImplicitVRLittleEndian:
      return { explicitVr: false, littleEndian: true, deflated: false };
    case TransferSyntax.ExplicitVRBigEndian:
      return { explicitVr: true, littleEndian: false, deflated: false };
    case TransferSyntax.DeflatedExplicitVRLittleEndian:
      return { explicitVr: true, littleEndian: true, deflated: true };
    default:
      // Every other standard syntax (encapsulated: JPEG, JPEG-LS, JPEG 2000, RLE, MPEG, HEVC,
      // JPEG XL, HTJ2K; and 1.2.840.10008.1.2.1.98) is explicit VR little endian.
      return { explicitVr: true, littleEndian: true, deflated: false };
  }
}
