import type { SeriesType } from './protocols.js';

export type VendorName = 'siemens' | 'ge' | 'philips';

/** What a scanner of one vendor calls each series type (what classifier rules match on). */
export interface SeriesNames {
  description: string;
  protocol: string;
  /** Left out when empty: Philips does not fill SequenceName. */
  sequence: string;
}

export interface VendorProfile {
  name: VendorName;
  manufacturer: string;
  model: string;
  software: string;
  fieldStrength: string;
  imagingFrequency: string;
  stationPrefix: string;
  transmitCoil: string;
  receiveCoil: string;
  series: Readonly<Record<SeriesType, SeriesNames>>;
}

export const VENDORS: Readonly<Record<VendorName, VendorProfile>> = {
  siemens: {
    name: 'siemens',
    manufacturer: 'SIEMENS',
    model: 'Prisma_fit',
    software: 'syngo MR E11',
    fieldStrength: '3',
    imagingFrequency: '123.251',
    stationPrefix: 'MRC',
    transmitCoil: 'Body',
    receiveCoil: 'Head_32',
    series: {
      localizer: { description: 'localizer', protocol: 'AAHead_Scout', sequence: '*fl2d1' },
      t1: { description: 't1_mprage_sag_p2_iso', protocol: 't1_mprage_sag_p2_iso', sequence: '*tfl3d1_16ns' },
      t2: { description: 't2_tse_tra', protocol: 't2_tse_tra', sequence: '*tse2d1_15' },
      flair: { description: 't2_tirm_tra_dark-fluid', protocol: 't2_tirm_tra_dark-fluid', sequence: '*tir2d1_16' },
      dwi: { description: 'ep2d_diff_3scan', protocol: 'ep2d_diff_3scan', sequence: '*ep_b0' },
      fmri: { description: 'ep2d_bold_rest', protocol: 'ep2d_bold_moco_rest', sequence: '*epfid2d1_64' },
    },
  },
  ge: {
    name: 'ge',
    manufacturer: 'GE MEDICAL SYSTEMS',
    model: 'DISCOVERY MR750',
    software: '27\\LX\\MR Software release:DV26.0_R03_1831.b',
    fieldStrength: '3',
    imagingFrequency: '127.761',
    stationPrefix: 'GEMR',
    transmitCoil: 'BODY',
    receiveCoil: '32Ch Head',
    series: {
      localizer: { description: '3Plane Loc FGRE', protocol: 'NEURO BRAIN', sequence: 'fgre' },
      t1: { description: 'Sag 3D T1 BRAVO', protocol: 'NEURO BRAIN', sequence: 'efgre3d' },
      t2: { description: 'Ax T2 FSE', protocol: 'NEURO BRAIN', sequence: 'fse-xl' },
      flair: { description: 'Ax T2 FLAIR', protocol: 'NEURO BRAIN', sequence: 'fse-ir' },
      dwi: { description: 'Ax DWI', protocol: 'NEURO BRAIN', sequence: 'epi2' },
      fmri: { description: 'rsfMRI EPI', protocol: 'NEURO BRAIN', sequence: 'epi' },
    },
  },
  philips: {
    name: 'philips',
    manufacturer: 'Philips Medical Systems',
    model: 'Ingenia',
    software: '5.4.1\\5.4.1.0',
    fieldStrength: '1.5',
    imagingFrequency: '63.898',
    stationPrefix: 'PHMR',
    transmitCoil: 'B',
    receiveCoil: 'MULTI COIL',
    series: {
      localizer: { description: 'Survey', protocol: 'Survey', sequence: '' },
      t1: { description: 'T1W_3D_TFE', protocol: 'WIP T1W_3D_TFE', sequence: '' },
      t2: { description: 'T2W_TSE', protocol: 'T2W_TSE', sequence: '' },
      flair: { description: 'T2W_FLAIR', protocol: 'T2W_FLAIR', sequence: '' },
      dwi: { description: 'DWI', protocol: 'DWI_SE', sequence: '' },
      fmri: { description: 'fMRI_rest', protocol: 'WIP fMRI_rest', sequence: '' },
    },
  },
};
