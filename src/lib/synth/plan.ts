import { type Charset, type SynthPatient, type SynthStudy, synthPatient, synthStudy, vendorFor } from './identity.js';
import { PROTOCOLS, type Protocol, type SeriesType } from './protocols.js';
import { rngFor, uidFor } from './random.js';
import type { SeriesNames, VendorName } from './vendors.js';

/** One series to write: its type, UIDs, names and timing, all derived from the seed. */
export interface SeriesPlan {
  index: number;
  type: SeriesType;
  SeriesInstanceUID: string;
  SeriesNumber: number;
  names: SeriesNames;
  protocol: Protocol;
  instances: number;
  burnedIn: boolean;
  /** Seconds after midnight of the study date when the series starts. */
  startSecond: number;
}

export interface StudyPlan {
  patient: SynthPatient;
  study: SynthStudy;
  series: SeriesPlan[];
}

export interface PlanOptions {
  seed: string;
  patients: number;
  studiesPerPatient: number;
  series: number;
  instances: number;
  charset: Charset;
  vendor: VendorName | 'mixed';
  types: readonly SeriesType[];
  burnedIn: boolean;
}

export function sopInstanceUid(seed: string, study: SynthStudy, series: SeriesPlan, instance: number): string {
  return uidFor(seed, 'sop', study.patientIndex, study.index, series.index, instance);
}

/** Seconds after midnight of an HHMMSS.ffffff time. */
export function secondsOf(tm: string): number {
  return Number(tm.slice(0, 2)) * 3600 + Number(tm.slice(2, 4)) * 60 + Number(tm.slice(4));
}

export function planStudy(o: PlanOptions, patient: SynthPatient, studyIndex: number): StudyPlan {
  const study = synthStudy(o.seed, patient, studyIndex, o.charset, o.vendor);
  const vendor = vendorFor(o.vendor, patient.index, studyIndex);
  let second = Math.floor(secondsOf(study.StudyTime)) + 60;
  const series: SeriesPlan[] = [];
  for (let s = 0; s < o.series; s++) {
    const type = o.types[s % o.types.length]!;
    const r = rngFor(o.seed, 'series', patient.index, studyIndex, s);
    const protocol = PROTOCOLS[type];
    series.push({
      index: s,
      type,
      SeriesInstanceUID: uidFor(o.seed, 'series', patient.index, studyIndex, s),
      SeriesNumber: s + 1,
      names: vendor.series[type],
      protocol,
      instances: o.instances,
      // With --burned-in, the last series of each study says so (and shows a bar).
      burnedIn: o.burnedIn && s === o.series - 1,
      startSecond: second,
    });
    // The next series starts after this one's scan time plus a short pause.
    const scanSeconds = type === 'fmri' ? (o.instances * Number(protocol.repetitionTime)) / 1000 : r.int(20, 300);
    second += Math.ceil(scanSeconds) + r.int(10, 60);
  }
  return { patient, study, series };
}

/** Every study to write, patient by patient. */
export function* planAll(o: PlanOptions): Generator<StudyPlan> {
  for (let p = 0; p < o.patients; p++) {
    const patient = synthPatient(o.seed, p, o.charset);
    for (let s = 0; s < o.studiesPerPatient; s++) yield planStudy(o, patient, s);
  }
}
