import {
  CITIES, FAMILY_ASCII, FAMILY_LATIN1, FAMILY_UTF8_ONLY, GIVEN_ASCII, GIVEN_LATIN1, GIVEN_UTF8_ONLY,
  INSTITUTIONS, MIDDLE_ASCII, STREETS_ASCII, STREETS_LATIN1, STUDY_DESCRIPTIONS,
} from './names.js';
import { rngFor, uidFor } from './random.js';
import { VENDORS, type VendorName, type VendorProfile } from './vendors.js';

export type Charset = 'ascii' | 'latin1' | 'utf8';

export const SPECIFIC_CHARACTER_SET: Readonly<Record<Charset, string | undefined>> = {
  ascii: undefined, // default repertoire: the element is left out, as most scanners do
  latin1: 'ISO_IR 100',
  utf8: 'ISO_IR 192',
};

/** The identifying values of one synthetic patient: what an anonymizer must remove or replace. */
export interface SynthPatient {
  index: number;
  PatientName: string;
  PatientID: string;
  IssuerOfPatientID: string;
  OtherPatientIDs: string;
  PatientBirthDate: string;
  PatientSex: 'F' | 'M';
  PatientAddress: string;
  PatientTelephoneNumbers: string;
  /** Height in metres and weight in kg (DS strings). */
  PatientSize: string;
  PatientWeight: string;
}

/** The identifying and descriptive values of one study of a patient. */
export interface SynthStudy {
  patientIndex: number;
  index: number;
  StudyInstanceUID: string;
  FrameOfReferenceUID: string;
  /** The study a ReferencedStudySequence points to (the previous one, or a prior outside the set). */
  ReferencedStudyUID: string;
  StudyDate: string;
  StudyTime: string;
  AccessionNumber: string;
  StudyID: string;
  StudyDescription: string;
  PatientAge: string;
  InstitutionName: string;
  InstitutionAddress: string;
  InstitutionalDepartmentName: string;
  TimezoneOffsetFromUTC: string;
  ReferringPhysicianName: string;
  PerformingPhysicianName: string;
  OperatorsName: string;
  StationName: string;
  DeviceSerialNumber: string;
  RequestedProcedureID: string;
  ScheduledProcedureStepID: string;
  PerformedProcedureStepID: string;
  Manufacturer: string;
  ManufacturerModelName: string;
  SoftwareVersions: string;
  MagneticFieldStrength: string;
  vendor: VendorName;
}

function personName(seed: string, charset: Charset, key: Array<string | number>, prefix = ''): string {
  const r = rngFor(seed, 'name', ...key);
  let family: string;
  let given: string;
  if (charset === 'ascii') {
    family = r.pick(FAMILY_ASCII);
    given = r.pick(GIVEN_ASCII);
  } else if (charset === 'latin1' || r.next() < 0.5) {
    family = r.pick(FAMILY_LATIN1);
    given = r.pick(GIVEN_LATIN1);
  } else {
    family = r.pick(FAMILY_UTF8_ONLY);
    given = r.pick(GIVEN_UTF8_ONLY);
  }
  const middle = r.next() < 0.3 ? r.pick(MIDDLE_ASCII) : '';
  if (prefix) return `${family}^${given}^${middle}^${prefix}`;
  return middle ? `${family}^${given}^${middle}` : `${family}^${given}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** YYYYMMDD of a day counted from 1970-01-01 (UTC, so no time zone can shift it). */
export function daString(day: number): string {
  const d = new Date(day * 86_400_000);
  return `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}`;
}

export function dayOf(da: string): number {
  return Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8))) / 86_400_000;
}

/**
 * The identifying values of patient `index` for a seed. Exported for leak tests: these are
 * exactly the strings written into the files (before DICOM padding).
 */
export function synthPatient(seed: string, index: number, charset: Charset = 'ascii'): SynthPatient {
  const r = rngFor(seed, 'patient', index);
  const birthDay = dayOf('19400101') + r.int(0, 65 * 365);
  const birth = daString(birthDay);
  const sex = r.next() < 0.5 ? 'F' : 'M';
  const place = r.pick(CITIES);
  const street = charset === 'ascii' ? r.pick(STREETS_ASCII) : r.pick(STREETS_LATIN1);
  const inst = INSTITUTIONS[index % INSTITUTIONS.length]!;
  // A national-ID-like PatientID (Norwegian fødselsnummer shape: DDMMYY + 5 digits), a
  // realistic worst case because it embeds the birth date.
  const patientId = `${birth.slice(6, 8)}${birth.slice(4, 6)}${birth.slice(2, 4)}${r.digits(5)}`;
  const address = `${street} ${r.int(1, 180)}, ${place.zip} ${place.city}, ${place.country}`;
  return {
    index,
    PatientName: personName(seed, charset, ['patient', index]),
    PatientID: patientId,
    IssuerOfPatientID: inst.issuer,
    OtherPatientIDs: `${inst.issuer}-MRN${r.digits(7)}`,
    PatientBirthDate: birth,
    PatientSex: sex,
    PatientAddress: address,
    PatientTelephoneNumbers: `${place.phone} ${r.digits(2)} ${r.digits(2)} ${r.digits(2)}`,
    PatientSize: (sex === 'F' ? 1.55 + r.int(0, 25) / 100 : 1.65 + r.int(0, 30) / 100).toFixed(2),
    PatientWeight: String(r.int(50, 110)),
  };
}

function ageString(birth: string, studyDate: string): string {
  const years = Math.floor((dayOf(studyDate) - dayOf(birth)) / 365.25);
  return `${String(Math.max(0, years)).padStart(3, '0')}Y`;
}

export function vendorFor(vendor: VendorName | 'mixed', patientIndex: number, studyIndex: number): VendorProfile {
  if (vendor !== 'mixed') return VENDORS[vendor];
  const order: VendorName[] = ['siemens', 'ge', 'philips'];
  return VENDORS[order[(patientIndex + studyIndex) % order.length]!];
}

/** The values of study `studyIndex` of patient `patientIndex`. */
export function synthStudy(
  seed: string,
  patient: SynthPatient,
  studyIndex: number,
  charset: Charset = 'ascii',
  vendor: VendorName | 'mixed' = 'mixed',
): SynthStudy {
  const p = patient.index;
  const r = rngFor(seed, 'study', p, studyIndex);
  const first = rngFor(seed, 'first-study', p);
  // Studies of one patient a few months apart, after 2016 and after the patient's birth.
  let day = Math.max(dayOf('20160104') + first.int(0, 8 * 365), dayOf(patient.PatientBirthDate) + 365);
  for (let s = 1; s <= studyIndex; s++) day += rngFor(seed, 'gap', p, s).int(60, 400);
  const studyDate = daString(day);
  const studyTime = `${pad2(r.int(7, 17))}${pad2(r.int(0, 59))}${pad2(r.int(0, 59))}.${r.digits(6)}`;
  const v = vendorFor(vendor, p, studyIndex);
  const inst = INSTITUTIONS[p % INSTITUTIONS.length]!;
  const serial = r.digits(5);
  return {
    patientIndex: p,
    index: studyIndex,
    StudyInstanceUID: uidFor(seed, 'study', p, studyIndex),
    FrameOfReferenceUID: uidFor(seed, 'for', p, studyIndex),
    ReferencedStudyUID: studyIndex > 0 ? uidFor(seed, 'study', p, studyIndex - 1) : uidFor(seed, 'prior', p),
    StudyDate: studyDate,
    StudyTime: studyTime,
    AccessionNumber: `${inst.issuer}${studyDate.slice(0, 4)}${r.digits(6)}`,
    StudyID: `E${r.digits(6)}`,
    StudyDescription: r.pick(STUDY_DESCRIPTIONS),
    PatientAge: ageString(patient.PatientBirthDate, studyDate),
    InstitutionName: inst.name,
    InstitutionAddress: inst.address,
    InstitutionalDepartmentName: inst.department,
    TimezoneOffsetFromUTC: inst.tz,
    ReferringPhysicianName: personName(seed, charset, ['referring', p, studyIndex], 'Dr.'),
    PerformingPhysicianName: personName(seed, charset, ['performing', p, studyIndex]),
    OperatorsName: personName(seed, charset, ['operator', p, studyIndex]),
    StationName: `${v.stationPrefix}${serial}`,
    DeviceSerialNumber: serial,
    RequestedProcedureID: `RP${r.digits(8)}`,
    ScheduledProcedureStepID: `SPS${r.digits(8)}`,
    PerformedProcedureStepID: `PPS${r.digits(8)}`,
    Manufacturer: v.manufacturer,
    ManufacturerModelName: v.model,
    SoftwareVersions: v.software,
    MagneticFieldStrength: v.fieldStrength,
    vendor: v.name,
  };
}

/**
 * The identifying strings of a patient and its studies, named by DICOM keyword, that a
 * leak test should find in the original files and must not find after de-identification.
 * UIDs are included; descriptive values that are not identifying (vendor, model) are not.
 */
export function identifyingValues(patient: SynthPatient, studies: readonly SynthStudy[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const add = (k: string, v: string): void => {
    (out[k] ??= []).includes(v) || out[k]!.push(v);
  };
  for (const k of ['PatientName', 'PatientID', 'OtherPatientIDs', 'PatientBirthDate', 'PatientAddress', 'PatientTelephoneNumbers'] as const) {
    add(k, patient[k]);
  }
  for (const s of studies) {
    for (const k of [
      'StudyInstanceUID', 'StudyDate', 'AccessionNumber', 'StudyID', 'InstitutionName', 'InstitutionAddress',
      'ReferringPhysicianName', 'PerformingPhysicianName', 'OperatorsName', 'StationName', 'DeviceSerialNumber',
      'RequestedProcedureID', 'ScheduledProcedureStepID', 'PerformedProcedureStepID',
    ] as const) {
      add(k, s[k]);
    }
  }
  return out;
}
