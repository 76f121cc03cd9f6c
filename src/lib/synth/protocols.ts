/**
 * The series types fiona-synth writes and the acquisition parameters that tell them apart
 * (what FIONA's classifyRules.json and dcm2niix look at). Values are typical of a 3T
 * research brain protocol; they are plausible, not a vendor's exact defaults.
 */
export type SeriesType = 'localizer' | 't1' | 't2' | 'flair' | 'dwi' | 'fmri';

/** `--series N` cycles through these, in this order. */
export const SERIES_CYCLE: readonly SeriesType[] = ['localizer', 't1', 't2', 'flair', 'dwi', 'fmri'];

export type Plane = 'axial' | 'sagittal' | 'coronal';

/** Signal of each tissue of the phantom, 0..4095 (12 bits stored). */
export interface Contrast {
  scalp: number;
  gm: number;
  wm: number;
  csf: number;
}

export interface Protocol {
  type: SeriesType;
  /** Value 3 onward of ImageType (ORIGINAL\PRIMARY come first). */
  imageType: string;
  scanningSequence: string;
  sequenceVariant: string;
  scanOptions: string;
  acquisitionType: '2D' | '3D';
  repetitionTime: string;
  echoTime: string;
  inversionTime?: string;
  flipAngle: string;
  echoTrainLength: string;
  numberOfAverages: string;
  pixelBandwidth: string;
  /** Slice thickness and the step between slice centres, mm. */
  sliceThickness: number;
  sliceSpacing: number;
  /** Field of view, mm (square). */
  fov: number;
  /** Localizers cycle through all three planes, one per instance. */
  planes: readonly Plane[];
  phaseDirection: 'ROW' | 'COL';
  contrast: Contrast;
}

export const PROTOCOLS: Readonly<Record<SeriesType, Protocol>> = {
  localizer: {
    type: 'localizer', imageType: 'LOCALIZER', scanningSequence: 'GR', sequenceVariant: 'SP\\OSP', scanOptions: '',
    acquisitionType: '2D', repetitionTime: '8.6', echoTime: '4', flipAngle: '20', echoTrainLength: '1',
    numberOfAverages: '2', pixelBandwidth: '320', sliceThickness: 7, sliceSpacing: 7, fov: 250,
    planes: ['sagittal', 'coronal', 'axial'], phaseDirection: 'ROW',
    contrast: { scalp: 1500, gm: 900, wm: 1100, csf: 500 },
  },
  t1: {
    type: 't1', imageType: 'M\\ND\\NORM', scanningSequence: 'GR\\IR', sequenceVariant: 'SK\\SP\\MP', scanOptions: 'IR',
    acquisitionType: '3D', repetitionTime: '2300', echoTime: '2.98', inversionTime: '900', flipAngle: '9',
    echoTrainLength: '1', numberOfAverages: '1', pixelBandwidth: '240', sliceThickness: 1, sliceSpacing: 1, fov: 256,
    planes: ['sagittal'], phaseDirection: 'ROW',
    contrast: { scalp: 1800, gm: 1100, wm: 1600, csf: 300 },
  },
  t2: {
    type: 't2', imageType: 'M\\ND\\NORM', scanningSequence: 'SE', sequenceVariant: 'SK\\SP\\OSP', scanOptions: 'PFP',
    acquisitionType: '2D', repetitionTime: '6000', echoTime: '95', flipAngle: '150', echoTrainLength: '15',
    numberOfAverages: '1', pixelBandwidth: '220', sliceThickness: 4, sliceSpacing: 4.8, fov: 230,
    planes: ['axial'], phaseDirection: 'ROW',
    contrast: { scalp: 900, gm: 1500, wm: 1000, csf: 3000 },
  },
  flair: {
    type: 'flair', imageType: 'M\\ND\\NORM', scanningSequence: 'SE\\IR', sequenceVariant: 'SK\\SP\\MP', scanOptions: 'IR',
    acquisitionType: '2D', repetitionTime: '9000', echoTime: '81', inversionTime: '2500', flipAngle: '150',
    echoTrainLength: '16', numberOfAverages: '1', pixelBandwidth: '290', sliceThickness: 5, sliceSpacing: 6, fov: 230,
    planes: ['axial'], phaseDirection: 'ROW',
    contrast: { scalp: 1200, gm: 1500, wm: 1100, csf: 150 },
  },
  dwi: {
    type: 'dwi', imageType: 'DIFFUSION\\NONE\\ND\\NORM', scanningSequence: 'EP', sequenceVariant: 'SK\\SP',
    scanOptions: 'PFP\\FS', acquisitionType: '2D', repetitionTime: '5000', echoTime: '89', flipAngle: '90',
    echoTrainLength: '1', numberOfAverages: '1', pixelBandwidth: '1502', sliceThickness: 5, sliceSpacing: 6.5, fov: 230,
    planes: ['axial'], phaseDirection: 'COL',
    contrast: { scalp: 700, gm: 1200, wm: 900, csf: 2600 },
  },
  fmri: {
    type: 'fmri', imageType: 'M\\ND\\MOSAIC', scanningSequence: 'EP', sequenceVariant: 'SK', scanOptions: 'FS',
    acquisitionType: '2D', repetitionTime: '2000', echoTime: '30', flipAngle: '90', echoTrainLength: '1',
    numberOfAverages: '1', pixelBandwidth: '2232', sliceThickness: 3, sliceSpacing: 3.6, fov: 216,
    planes: ['axial'], phaseDirection: 'COL',
    contrast: { scalp: 900, gm: 1500, wm: 1300, csf: 2000 },
  },
};

/** The b=1000 contrast of the diffusion series (CSF dark, grey matter a little brighter). */
export const DWI_B1000: Contrast = { scalp: 150, gm: 800, wm: 700, csf: 150 };

/** Row and column direction cosines (ImageOrientationPatient) of each plane, LPS. */
export const ORIENTATION: Readonly<Record<Plane, readonly [number, number, number, number, number, number]>> = {
  axial: [1, 0, 0, 0, 1, 0],
  sagittal: [0, 1, 0, 0, 0, -1],
  coronal: [1, 0, 0, 0, 0, -1],
};

export function isSeriesType(s: string): s is SeriesType {
  return (SERIES_CYCLE as readonly string[]).includes(s);
}
