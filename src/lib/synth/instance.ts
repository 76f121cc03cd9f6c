import { type Element, type Item, tag } from './encode.js';
import { MOSAIC_TILES, ds, dsList, firstPixelPosition, instanceGeometry, normalOf, type InstanceGeometry } from './geometry.js';
import { type Charset, SPECIFIC_CHARACTER_SET, daString, dayOf } from './identity.js';
import { burnInBar, renderSlice } from './pixels.js';
import { DWI_B1000, type Contrast } from './protocols.js';
import { type SeriesPlan, type StudyPlan, sopInstanceUid } from './plan.js';
import { hash32 } from './random.js';
import { VENDORS } from './vendors.js';

export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
/** The private creator of fiona-synth's private block in group 0029. */
export const PRIVATE_CREATOR = 'FIONA SYNTH 1.0';

export interface InstanceInput {
  seed: string;
  plan: StudyPlan;
  series: SeriesPlan;
  instance: number;
  rows: number;
  charset: Charset;
}

export interface BuiltInstance {
  sopInstanceUid: string;
  elements: Element[];
  pixels: Uint16Array;
}

const el = (g: number, e: number, vr: Element['vr'], value: Element['value'], undefinedLength = false): Element =>
  undefinedLength ? { tag: tag(g, e), vr, value, undefinedLength } : { tag: tag(g, e), vr, value };

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Date (DA) and time (TM, microseconds) of a moment `second` seconds after midnight of `date`. */
function moment(date: string, second: number): { da: string; tm: string } {
  const whole = Math.floor(second);
  const micro = Math.round((second - whole) * 1e6);
  const day = dayOf(date) + Math.floor(whole / 86400);
  const s = whole % 86400;
  return {
    da: daString(day),
    tm: `${pad2(Math.floor(s / 3600))}${pad2(Math.floor((s % 3600) / 60))}${pad2(s % 60)}.${String(micro).padStart(6, '0')}`,
  };
}

function isMosaic(plan: StudyPlan, series: SeriesPlan): boolean {
  return series.type === 'fmri' && plan.study.vendor === 'siemens';
}

/** Acquisition matrix (0018,1310): frequency rows, frequency columns, phase rows, phase columns. */
function acquisitionMatrix(n: number, phase: 'ROW' | 'COL'): number[] {
  return phase === 'ROW' ? [0, n, n, 0] : [n, 0, 0, n];
}

function contrastOf(series: SeriesPlan, g: InstanceGeometry): Contrast {
  if (series.type === 'dwi' && g.volume > 0) return DWI_B1000;
  return series.protocol.contrast;
}

function renderPixels(input: InstanceInput, g: InstanceGeometry, spacing: number, mosaic: boolean): Uint16Array {
  const { rows, series, plan } = input;
  const pixels = new Uint16Array(rows * rows);
  const noiseSeed = hash32(input.seed, 'noise', plan.study.patientIndex, plan.study.index, series.index, input.instance);
  // fMRI: a 1% signal change every other time point, so a time series is not flat.
  const gain = series.type === 'fmri' && g.volume % 2 === 1 ? 1.01 : 1;
  const contrast = contrastOf(series, g);
  if (!mosaic) {
    const origin = firstPixelPosition(g.centre, g.orientation, rows, rows, spacing);
    renderSlice({ pixels, stride: rows, offset: 0, rows, cols: rows }, { origin, orientation: g.orientation, pixelSpacing: spacing }, contrast, noiseSeed, gain);
  } else {
    const tile = Math.floor(rows / MOSAIC_TILES);
    const normal = normalOf(g.orientation);
    const n = MOSAIC_TILES * MOSAIC_TILES;
    for (let k = 0; k < n; k++) {
      const d = (k - (n - 1) / 2) * series.protocol.sliceSpacing;
      const centre = [normal[0] * d, normal[1] * d, normal[2] * d];
      const origin = firstPixelPosition(centre, g.orientation, tile, tile, spacing);
      const offset = Math.floor(k / MOSAIC_TILES) * tile * rows + (k % MOSAIC_TILES) * tile;
      renderSlice({ pixels, stride: rows, offset, rows: tile, cols: tile }, { origin, orientation: g.orientation, pixelSpacing: spacing }, contrast, noiseSeed, gain);
    }
  }
  if (series.burnedIn) burnInBar(pixels, rows, rows);
  return pixels;
}

function referenceItem(sopClass: string, sop: string): Item {
  return [el(0x0008, 0x1150, 'UI', sopClass), el(0x0008, 0x1155, 'UI', sop)];
}

/** The private block: identifying values again, as LO, and a two-level private sequence. */
function privateBlock(plan: StudyPlan): Element[] {
  const p = plan.patient;
  const creator = el(0x0029, 0x0010, 'LO', PRIVATE_CREATOR);
  const inner: Item = [creator, el(0x0029, 0x1023, 'LO', p.PatientAddress)];
  const outer: Item = [
    creator,
    el(0x0029, 0x1021, 'LO', p.OtherPatientIDs),
    el(0x0029, 0x1022, 'SQ', [inner], true),
  ];
  return [
    creator,
    el(0x0029, 0x1010, 'LO', p.PatientName),
    el(0x0029, 0x1011, 'LO', p.PatientID),
    el(0x0029, 0x1012, 'LO', plan.study.AccessionNumber),
    el(0x0029, 0x1020, 'SQ', [outer], true),
  ];
}

/** Siemens puts mosaic and diffusion facts in its own private group 0019 (dcm2niix reads them). */
function siemensBlock(g: InstanceGeometry, bValue: number | undefined, mosaic: boolean): Element[] {
  const out: Element[] = [];
  if (mosaic) out.push(el(0x0019, 0x100a, 'US', [g.slicesPerVolume]));
  if (bValue !== undefined) out.push(el(0x0019, 0x100c, 'IS', String(bValue)));
  if (out.length > 0) out.push(el(0x0019, 0x0010, 'LO', 'SIEMENS MR HEADER'));
  return out;
}

export function buildInstance(input: InstanceInput): BuiltInstance {
  const { seed, plan, series, instance, rows, charset } = input;
  const { patient: pt, study: st } = plan;
  const proto = series.protocol;
  const vendor = VENDORS[st.vendor];
  const mosaic = isMosaic(plan, series);
  const g = instanceGeometry(series.type, proto, series.instances, instance, mosaic);
  // Mosaic tiles keep the field of view; the whole mosaic image has the tiles' spacing.
  const acqN = mosaic ? Math.floor(rows / MOSAIC_TILES) : rows;
  const spacing = proto.fov / acqN;
  const position = firstPixelPosition(g.centre, g.orientation, rows, rows, spacing);
  const sop = sopInstanceUid(seed, st, series, instance);

  const perInstance = series.type === 'fmri' ? Number(proto.repetitionTime) / 1000 / (mosaic ? 1 : g.slicesPerVolume) : 0.5;
  const seriesStart = moment(st.StudyDate, series.startSecond);
  const acq = moment(st.StudyDate, series.startSecond + instance * perInstance);
  const content = moment(st.StudyDate, series.startSecond + instance * perInstance + 2);
  const bValue = series.type === 'dwi' ? (g.volume === 0 ? 0 : 1000) : undefined;

  let sequenceName = series.names.sequence;
  if (series.type === 'dwi' && st.vendor === 'siemens') sequenceName = g.volume === 0 ? '*ep_b0' : `*ep_b1000#${g.volume}`;
  let imageType = `ORIGINAL\\PRIMARY\\${proto.imageType}`;
  if (series.type === 'fmri' && !mosaic) imageType = 'ORIGINAL\\PRIMARY\\M\\ND';

  const e: Element[] = [
    // SOP Common
    el(0x0008, 0x0012, 'DA', seriesStart.da),
    el(0x0008, 0x0013, 'TM', content.tm),
    el(0x0008, 0x0016, 'UI', MR_IMAGE_STORAGE),
    el(0x0008, 0x0018, 'UI', sop),
    el(0x0008, 0x0201, 'SH', st.TimezoneOffsetFromUTC),
    // Patient
    el(0x0010, 0x0010, 'PN', pt.PatientName),
    el(0x0010, 0x0020, 'LO', pt.PatientID),
    el(0x0010, 0x0021, 'LO', pt.IssuerOfPatientID),
    el(0x0010, 0x0030, 'DA', pt.PatientBirthDate),
    el(0x0010, 0x0040, 'CS', pt.PatientSex),
    el(0x0010, 0x1000, 'LO', pt.OtherPatientIDs),
    el(0x0010, 0x1002, 'SQ', [[
      el(0x0010, 0x0020, 'LO', pt.OtherPatientIDs),
      el(0x0010, 0x0021, 'LO', pt.IssuerOfPatientID),
      el(0x0010, 0x0022, 'CS', 'TEXT'),
    ]]),
    el(0x0010, 0x1010, 'AS', st.PatientAge),
    el(0x0010, 0x1020, 'DS', pt.PatientSize),
    el(0x0010, 0x1030, 'DS', pt.PatientWeight),
    el(0x0010, 0x1040, 'LO', pt.PatientAddress),
    el(0x0010, 0x2154, 'SH', pt.PatientTelephoneNumbers),
    // General Study
    el(0x0008, 0x0020, 'DA', st.StudyDate),
    el(0x0008, 0x0030, 'TM', st.StudyTime),
    el(0x0008, 0x0050, 'SH', st.AccessionNumber),
    el(0x0008, 0x0090, 'PN', st.ReferringPhysicianName),
    el(0x0008, 0x1030, 'LO', st.StudyDescription),
    el(0x0008, 0x1032, 'SQ', [[
      el(0x0008, 0x0100, 'SH', '24590-2'),
      el(0x0008, 0x0102, 'SH', 'LN'),
      el(0x0008, 0x0104, 'LO', 'MR Brain'),
    ]]),
    el(0x0008, 0x1110, 'SQ', [referenceItem('1.2.840.10008.3.1.2.3.1', st.ReferencedStudyUID)]),
    el(0x0020, 0x000d, 'UI', st.StudyInstanceUID),
    el(0x0020, 0x0010, 'SH', st.StudyID),
    el(0x0032, 0x1060, 'LO', st.StudyDescription),
    // General Series, MR
    el(0x0008, 0x0021, 'DA', seriesStart.da),
    el(0x0008, 0x0031, 'TM', seriesStart.tm),
    el(0x0008, 0x0060, 'CS', 'MR'),
    el(0x0008, 0x103e, 'LO', series.names.description),
    el(0x0008, 0x1050, 'PN', st.PerformingPhysicianName),
    el(0x0008, 0x1070, 'PN', st.OperatorsName),
    el(0x0018, 0x0015, 'CS', 'HEAD'),
    el(0x0018, 0x1030, 'LO', series.names.protocol),
    el(0x0018, 0x5100, 'CS', 'HFS'),
    el(0x0020, 0x000e, 'UI', series.SeriesInstanceUID),
    el(0x0020, 0x0011, 'IS', String(series.SeriesNumber)),
    el(0x0040, 0x0244, 'DA', st.StudyDate),
    el(0x0040, 0x0245, 'TM', st.StudyTime),
    el(0x0040, 0x0253, 'SH', st.PerformedProcedureStepID),
    el(0x0040, 0x0254, 'LO', st.StudyDescription),
    el(0x0040, 0x0275, 'SQ', [[
      el(0x0008, 0x0050, 'SH', st.AccessionNumber),
      el(0x0032, 0x1060, 'LO', st.StudyDescription),
      el(0x0040, 0x0007, 'LO', st.StudyDescription),
      el(0x0040, 0x0009, 'SH', st.ScheduledProcedureStepID),
      el(0x0040, 0x1001, 'SH', st.RequestedProcedureID),
    ]]),
    // Frame of Reference
    el(0x0020, 0x0052, 'UI', st.FrameOfReferenceUID),
    el(0x0020, 0x1040, 'LO', ''),
    // General Equipment
    el(0x0008, 0x0070, 'LO', st.Manufacturer),
    el(0x0008, 0x0080, 'LO', st.InstitutionName),
    el(0x0008, 0x0081, 'ST', st.InstitutionAddress),
    el(0x0008, 0x1010, 'SH', st.StationName),
    el(0x0008, 0x1040, 'LO', st.InstitutionalDepartmentName),
    el(0x0008, 0x1090, 'LO', st.ManufacturerModelName),
    el(0x0018, 0x1000, 'LO', st.DeviceSerialNumber),
    el(0x0018, 0x1020, 'LO', st.SoftwareVersions),
    // General Image, Image Plane
    el(0x0008, 0x0008, 'CS', imageType),
    el(0x0008, 0x0022, 'DA', acq.da),
    el(0x0008, 0x0023, 'DA', content.da),
    el(0x0008, 0x002a, 'DT', `${acq.da}${acq.tm}`),
    el(0x0008, 0x0032, 'TM', acq.tm),
    el(0x0008, 0x0033, 'TM', content.tm),
    el(0x0020, 0x0012, 'IS', String(series.type === 'fmri' ? g.volume + 1 : 1)),
    el(0x0020, 0x0013, 'IS', String(instance + 1)),
    el(0x0020, 0x0032, 'DS', dsList(position)),
    el(0x0020, 0x0037, 'DS', dsList(g.orientation)),
    el(0x0020, 0x1041, 'DS', ds(g.sliceLocation)),
    el(0x0018, 0x0050, 'DS', ds(proto.sliceThickness)),
    el(0x0028, 0x0030, 'DS', dsList([spacing, spacing])),
    el(0x0028, 0x0301, 'CS', series.burnedIn ? 'YES' : 'NO'),
    // Image Pixel
    el(0x0028, 0x0002, 'US', [1]),
    el(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
    el(0x0028, 0x0010, 'US', [rows]),
    el(0x0028, 0x0011, 'US', [rows]),
    el(0x0028, 0x0100, 'US', [16]),
    el(0x0028, 0x0101, 'US', [12]),
    el(0x0028, 0x0102, 'US', [11]),
    el(0x0028, 0x0103, 'US', [0]),
    el(0x0028, 0x1050, 'DS', '1200'),
    el(0x0028, 0x1051, 'DS', '2400'),
    // MR Image
    el(0x0018, 0x0020, 'CS', proto.scanningSequence),
    el(0x0018, 0x0021, 'CS', proto.sequenceVariant),
    el(0x0018, 0x0022, 'CS', proto.scanOptions),
    el(0x0018, 0x0023, 'CS', proto.acquisitionType),
    el(0x0018, 0x0025, 'CS', 'N'),
    el(0x0018, 0x0080, 'DS', proto.repetitionTime),
    el(0x0018, 0x0081, 'DS', proto.echoTime),
    el(0x0018, 0x0083, 'DS', proto.numberOfAverages),
    el(0x0018, 0x0084, 'DS', vendor.imagingFrequency),
    el(0x0018, 0x0085, 'SH', '1H'),
    el(0x0018, 0x0086, 'IS', '1'),
    el(0x0018, 0x0087, 'DS', st.MagneticFieldStrength),
    el(0x0018, 0x0088, 'DS', ds(proto.sliceSpacing)),
    el(0x0018, 0x0089, 'IS', String(acqN)),
    el(0x0018, 0x0091, 'IS', proto.echoTrainLength),
    el(0x0018, 0x0093, 'DS', '100'),
    el(0x0018, 0x0094, 'DS', '100'),
    el(0x0018, 0x0095, 'DS', proto.pixelBandwidth),
    el(0x0018, 0x1250, 'SH', vendor.receiveCoil),
    el(0x0018, 0x1251, 'SH', vendor.transmitCoil),
    el(0x0018, 0x1310, 'US', acquisitionMatrix(acqN, proto.phaseDirection)),
    el(0x0018, 0x1312, 'CS', proto.phaseDirection),
    el(0x0018, 0x1314, 'DS', proto.flipAngle),
    el(0x0018, 0x1316, 'DS', '0.05'),
    ...privateBlock(plan),
    ...(st.vendor === 'siemens' ? siemensBlock(g, bValue, mosaic) : []),
  ];
  if (SPECIFIC_CHARACTER_SET[charset]) e.push(el(0x0008, 0x0005, 'CS', SPECIFIC_CHARACTER_SET[charset]!));
  if (sequenceName) e.push(el(0x0018, 0x0024, 'SH', sequenceName));
  if (proto.inversionTime) e.push(el(0x0018, 0x0082, 'DS', proto.inversionTime));
  if (series.type === 'fmri') {
    e.push(el(0x0020, 0x0100, 'IS', String(g.volume + 1)), el(0x0020, 0x0105, 'IS', String(g.volumes)));
  }
  if (bValue !== undefined) {
    e.push(el(0x0018, 0x9087, 'FD', [bValue]));
    e.push(el(0x0018, 0x9075, 'CS', bValue === 0 ? 'NONE' : 'DIRECTIONAL'));
    if (bValue > 0) {
      const dir = [0, 0, 0];
      dir[(g.volume - 1) % 3] = 1;
      e.push(el(0x0018, 0x9089, 'FD', dir));
    }
  }
  // Cross-references inside the study, so UID remapping can be tested: every later series
  // points at localizer images (ReferencedImageSequence) and at an image of the series
  // before it (SourceImageSequence).
  const localizer = plan.series.find((s) => s.type === 'localizer');
  if (localizer && localizer !== series) {
    const refs = Array.from({ length: Math.min(3, localizer.instances) }, (_, k) =>
      referenceItem(MR_IMAGE_STORAGE, sopInstanceUid(seed, st, localizer, k)),
    );
    e.push(el(0x0008, 0x1140, 'SQ', refs, true));
  }
  if (series.index >= 1) {
    const prev = plan.series[series.index - 1]!;
    e.push(el(0x0008, 0x2112, 'SQ', [referenceItem(MR_IMAGE_STORAGE, sopInstanceUid(seed, st, prev, instance % prev.instances))]));
  }
  const pixels = renderPixels(input, g, spacing, mosaic);
  return { sopInstanceUid: sop, elements: e, pixels };
}
