import type { Header } from '../dicom/index.js';
import { elementValues, firstValue, privateValues } from './header-values.js';
import { csaFields } from './siemens-csa.js';
import type { RuleSet, RuleValue } from './types.js';

/**
 * The series JSON, raw/<Study>/<Series>.json: FIONA's fields, taken from the first instance
 * of the series (as FIONA did), with SliceLocation the minimum over all instances, NumFiles
 * the number of instances linked, and ClassifyType the types the rules give the series.
 *
 * Differences from FIONA's file (docs/fiona-classify.md): multi-valued elements are JSON
 * arrays (FIONA wrote Python's str() of the list), NumFiles is a number, Modality a string
 * (FIONA's code left it []), and ClassifyEntries records which rule entries passed or
 * failed so SeriesLevel types are right whichever process saw which instance.
 */
export interface IncomingConnection {
  AETitleCaller: string;
  AETitleCalled: string;
  CallerIP: string;
}

export type FieldValue = string | string[] | number[];

export interface SeriesJson {
  IncomingConnection: IncomingConnection;
  StudyInstanceUID: string;
  SeriesInstanceUID: string;
  NumFiles: number;
  ClassifyType: string[];
  ClassifyEntries: { passed: string[]; failedSeriesLevel: string[] };
  [field: string]: unknown;
}

/** Header fields copied from the first instance: [name in the JSON, DICOM keyword]. */
const HEADER_FIELDS: ReadonlyArray<readonly [string, number]> = [
  ['SOPClassUID', 0x00080016],
  ['Modality', 0x00080060],
  ['Manufacturer', 0x00080070],
  ['ManufacturerModelName', 0x00081090],
  ['SoftwareVersions', 0x00181020],
  ['PatientID', 0x00100020],
  ['PatientName', 0x00100010],
  ['StudyDate', 0x00080020],
  ['StudyTime', 0x00080030],
  ['StudyDescription', 0x00081030],
  ['SeriesDescription', 0x0008103e],
  ['SeriesNumber', 0x00200011],
  ['SeriesTime', 0x00080031],
  ['SequenceName', 0x00180024],
  ['EchoTime', 0x00180081],
  ['RepetitionTime', 0x00180080],
  ['ImageType', 0x00080008],
  ['AcquisitionMatrix', 0x00181310],
  ['SliceThickness', 0x00180050],
  ['ScanningSequence', 0x00180020],
  ['SequenceVariant', 0x00180021],
  ['ImagesInAcquisition', 0x00201002],
  ['NumberOfTemporalPositions', 0x00200105],
];

/** Vendor private values FIONA kept under these names (its rules test them by name). */
const PRIVATE_FIELDS: ReadonlyArray<readonly [string, number, number, string]> = [
  ['PulseSequenceName', 0x0019, 0x9c, 'GEMS'],
  ['Slices', 0x0021, 0x4f, 'GEMS'],
  ['AcquisitionLength', 0x0051, 0x0a, 'SIEMENS'],
  ['ActiveCoils', 0x0051, 0x0f, 'SIEMENS'],
  ['SequenceType', 0x2001, 0x20, 'PHILIPS'],
];

/** Every name the series JSON may carry: rules may test these by name. */
export const SERIES_FIELDS: ReadonlySet<string> = new Set([
  'IncomingConnection', 'StudyInstanceUID', 'SeriesInstanceUID', 'NumFiles', 'ClassifyType', 'SliceLocation',
  'NumSlices', 'PhaseEncodingDirectionPositive',
  ...HEADER_FIELDS.map(([n]) => n),
  ...PRIVATE_FIELDS.map(([n]) => n),
]);

const ACQUISITION_MATRIX = 0x00181310;
const SLICE_LOCATION = 0x00201041;

/** The first-instance fields of a new series. */
export function fieldsFromHeader(h: Header, conn: IncomingConnection, study: string, series: string): SeriesJson {
  const json: SeriesJson = {
    IncomingConnection: conn,
    StudyInstanceUID: study,
    SeriesInstanceUID: series,
    NumFiles: 0,
    ClassifyType: [],
    ClassifyEntries: { passed: [], failedSeriesLevel: [] },
  };
  for (const [name, tag] of HEADER_FIELDS) {
    const el = h.element(tag);
    if (!el) continue;
    const values = elementValues(h, el);
    if (tag === ACQUISITION_MATRIX) json[name] = values.map(Number);
    else json[name] = values.length > 1 ? values : (values[0] ?? '');
  }
  for (const [name, group, low, creator] of PRIVATE_FIELDS) {
    const values = privateValues(h, group, low, creator);
    if (values !== undefined) json[name] = values.length > 1 ? values : (values[0] ?? '');
  }
  Object.assign(json, csaFields(h));
  const slice = firstValue(h, SLICE_LOCATION);
  if (slice !== undefined && slice !== '') json.SliceLocation = slice;
  return json;
}

/** What one process learned about a series since it last wrote the JSON. */
export interface SeriesDelta {
  /** Smallest SliceLocation seen (as written in the header). */
  sliceMin?: string;
  passed: Set<string>;
  failedSeriesLevel: Set<string>;
}

export function emptyDelta(): SeriesDelta {
  return { passed: new Set(), failedSeriesLevel: new Set() };
}

export function minSlice(a: string | undefined, b: string | undefined): string | undefined {
  const na = a === undefined ? NaN : Number(a);
  const nb = b === undefined ? NaN : Number(b);
  if (Number.isNaN(na)) return Number.isNaN(nb) ? (a ?? b) : b;
  if (Number.isNaN(nb)) return a;
  return nb < na ? b : a;
}

/**
 * Merge a delta into a series JSON (from disk or memory). Every part is a union or a
 * minimum, so merges commute: two processes writing the same series lose nothing.
 */
export function mergeSeries(base: SeriesJson, delta: SeriesDelta, rules: RuleSet, numFiles: number): SeriesJson {
  const entries = base.ClassifyEntries ?? { passed: [], failedSeriesLevel: [] };
  const passed = union(entries.passed, delta.passed);
  const failed = union(entries.failedSeriesLevel, delta.failedSeriesLevel);
  const out: SeriesJson = {
    ...base,
    NumFiles: numFiles,
    ClassifyEntries: { passed, failedSeriesLevel: failed },
    ClassifyType: deriveTypes(rules, passed, failed),
  };
  const slice = minSlice(typeof base.SliceLocation === 'string' ? base.SliceLocation : undefined, delta.sliceMin);
  if (slice !== undefined) out.SliceLocation = slice;
  return out;
}

function union(a: readonly string[] | undefined, b: Set<string>): string[] {
  const s = new Set(a ?? []);
  for (const x of b) s.add(x);
  return [...s].sort();
}

/**
 * The series' types: an entry gives its type once an instance passed it; a SeriesLevel
 * entry only while no instance failed it. Types come in rule-file order.
 */
export function deriveTypes(rules: RuleSet, passed: readonly string[], failedSeriesLevel: readonly string[]): string[] {
  const ok = new Set(passed);
  const bad = new Set(failedSeriesLevel);
  const have = new Set<string>();
  for (const e of rules.entries) {
    if (ok.has(e.key) && !(e.seriesLevel && bad.has(e.key))) have.add(e.type);
  }
  return rules.types.filter((t) => have.has(t));
}

/** A series JSON field as a rule value; undefined when the series has no such field. */
export function seriesValue(json: SeriesJson, name: string): RuleValue | undefined {
  const v = json[name];
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return { values: v.map(String), multi: true };
  if (typeof v === 'object') return undefined;
  return { values: [String(v)], multi: false };
}
