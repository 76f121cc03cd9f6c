import type { DicomHeader, Header } from '../dicom/index.js';
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

/**
 * collectIdentifiers over a batch, which is mostly long runs of one patient's files: when a
 * file's identifying elements hold the same bytes as the previous file's (same VRs, same
 * character set and byte order), its identifiers are the same, and the previous ones are
 * handed back without decoding anything. The bytes compared are copies: the previous
 * file's buffer may already hold another file.
 */
export class IdentifierRun {
  private raws: Array<Uint8Array | null> = [];
  private vrs: string[] = [];
  private encoding = '';
  private ids: Identifier[] | undefined;

  /** The identifiers of `h`, and whether they are the previous call's (same bytes). */
  collect(h: Header): { ids: Identifier[]; same: boolean } {
    const encoding = `${h.littleEndian}\\${h.charsets.join('\\')}`;
    if (this.ids !== undefined && encoding === this.encoding && this.sameBytes(h)) return { ids: this.ids, same: true };
    const ids = collectIdentifiers(h);
    this.remember(h, encoding, ids);
    return { ids, same: false };
  }

  private sameBytes(h: Header): boolean {
    for (let k = 0; k < IDENTIFYING_ATTRIBUTES.length; k++) {
      const el = h.element(IDENTIFYING_ATTRIBUTES[k]![0]);
      const before = this.raws[k];
      if (el === undefined) {
        if (before !== null) return false;
        continue;
      }
      if (before === null || before === undefined || el.vr !== this.vrs[k]) return false;
      const now = h.bytesOf(el);
      if (now === undefined || !equalBytes(now, before)) return false;
    }
    return true;
  }

  private remember(h: Header, encoding: string, ids: Identifier[]): void {
    this.ids = undefined;
    for (let k = 0; k < IDENTIFYING_ATTRIBUTES.length; k++) {
      const el = h.element(IDENTIFYING_ATTRIBUTES[k]![0]);
      if (el === undefined) {
        this.raws[k] = null;
        this.vrs[k] = '';
        continue;
      }
      const bytes = h.bytesOf(el);
      // A value that is not in memory cannot be compared: no run starts from this file.
      if (bytes === undefined) return;
      this.raws[k] = Uint8Array.from(bytes);
      this.vrs[k] = el.vr;
    }
    this.encoding = encoding;
    this.ids = ids;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}
