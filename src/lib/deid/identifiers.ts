import type { DicomHeader } from '../dicom/index.js';
import { dateSpellings, nameParts } from './clean.js';

/**
 * The identifying values of one instance, read from its header before it is rewritten:
 * what cleaning removes from free text, and what the leak check looks for in the output.
 */
export type IdentifierKind = 'name' | 'id' | 'date' | 'text';

export interface Identifier {
  tag: number;
  keyword: string;
  kind: IdentifierKind;
  value: string;
}

/** Top-level attributes whose values identify the patient, a person or a place. */
export const IDENTIFYING_ATTRIBUTES: ReadonlyArray<[number, string, IdentifierKind]> = [
  [0x00100010, 'PatientName', 'name'],
  [0x00100020, 'PatientID', 'id'],
  [0x00100021, 'IssuerOfPatientID', 'id'],
  [0x00101000, 'OtherPatientIDs', 'id'],
  [0x00101001, 'OtherPatientNames', 'name'],
  [0x00101005, 'PatientBirthName', 'name'],
  [0x00101060, 'PatientMotherBirthName', 'name'],
  [0x00100030, 'PatientBirthDate', 'date'],
  [0x00101040, 'PatientAddress', 'text'],
  [0x00102154, 'PatientTelephoneNumbers', 'id'],
  [0x00102297, 'ResponsiblePerson', 'name'],
  [0x00080050, 'AccessionNumber', 'id'],
  [0x00080080, 'InstitutionName', 'text'],
  [0x00080081, 'InstitutionAddress', 'text'],
  [0x00081040, 'InstitutionalDepartmentName', 'text'],
  [0x00080090, 'ReferringPhysicianName', 'name'],
  [0x00081048, 'PhysiciansOfRecord', 'name'],
  [0x00081050, 'PerformingPhysicianName', 'name'],
  [0x00081060, 'NameOfPhysiciansReadingStudy', 'name'],
  [0x00081070, 'OperatorsName', 'name'],
  [0x00321032, 'RequestingPhysician', 'name'],
  [0x00081010, 'StationName', 'id'],
  [0x00181000, 'DeviceSerialNumber', 'id'],
  [0x00200010, 'StudyID', 'id'],
  [0x00401001, 'RequestedProcedureID', 'id'],
  [0x00400009, 'ScheduledProcedureStepID', 'id'],
  [0x00400253, 'PerformedProcedureStepID', 'id'],
];

export function collectIdentifiers(h: DicomHeader): Identifier[] {
  const out: Identifier[] = [];
  for (const [tag, keyword, kind] of IDENTIFYING_ATTRIBUTES) {
    for (const value of h.strings(tag)) {
      const v = value.trim();
      if (v !== '') out.push({ tag, keyword, kind, value: v });
    }
  }
  return out;
}

/** The words and spellings that cleaning removes from free text. */
export function scrubWords(ids: Identifier[]): string[] {
  const words: string[] = [];
  for (const id of ids) {
    if (id.kind === 'name') words.push(...nameParts(id.value));
    else if (id.kind === 'date') words.push(...dateSpellings(id.value));
    else if (id.kind === 'text') words.push(id.value, ...id.value.split(/[,;\n\r^]+/).map((s) => s.trim()).filter((s) => s.length >= 3));
    else words.push(id.value);
  }
  return words;
}
