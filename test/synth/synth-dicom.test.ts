import { execa } from 'execa';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { requireProgram } from '../peers/process.js';
import type { SynthSummary } from '../../src/lib/synth/index.js';
import { type PyRecord, readWithPydicom } from './pydicom.js';

/**
 * The files are checked by readers that are not ours: DCMTK's dcmdump, dicom3tools'
 * dciodvfy, pydicom and dcm2niix. Three runs share a seed and differ in transfer syntax and
 * character set, so the same SOP instance can be compared across encodings.
 */
const RUNS = [
  { name: 'explicit', ts: 'explicit', charset: 'latin1', tsUid: '1.2.840.10008.1.2.1', text: 'latin1' as const },
  { name: 'implicit', ts: 'implicit', charset: 'utf8', tsUid: '1.2.840.10008.1.2', text: 'utf8' as const },
  { name: 'big', ts: 'big', charset: 'ascii', tsUid: '1.2.840.10008.1.2.2', text: 'latin1' as const },
];
const ARGS = ['--seed', 'dicom-test', '--patients', '3', '--series', '6', '--instances', '8', '--rows', '32', '--burned-in'];

interface Run {
  files: Array<Record<string, unknown>>;
  summary: SynthSummary;
  records: Record<string, PyRecord>;
}

/** Warnings dciodvfy gives for what a synthetic (and a real Siemens) MR unavoidably carries; documented in docs/fiona-synth.md. */
const EXPECTED_WARNINGS = [
  /^\(0x0029,0x10[0-9a-f]{2}\) {2}\? {2}- Warning - Unrecognized tag - assuming explicit value representation OK$/,
  /^Warning - Retired attribute - \(0x0010,0x1000\) LO Other Patient IDs $/,
  /^Warning - Dicom dataset contains retired attributes$/,
  /^Warning - Dicom dataset contains attributes not present in standard DICOM IOD - this is a Standard Extended SOP Class$/,
  /^Warning - Attribute is not present in standard DICOM IOD - \(0x(0010,0x1000|0010,0x1040|0010,0x2154|0032,0x1060|0018,0x9087|0018,0x9075|0018,0x9089)\) /,
  /^Warning - Unrecognized defined term <(M|DIFFUSION|LOCALIZER)> for value 3 of attribute <Image Type>$/,
  /^Warning - Unrecognized defined term <IR> for value 1 of attribute <Scan Options>$/,
  /^MRImage$/,
];

const KEYWORDS = [
  'SpecificCharacterSet', 'PatientName', 'PatientID', 'PatientBirthDate', 'PatientAddress', 'PatientTelephoneNumbers',
  'OtherPatientIDs', 'InstitutionName', 'InstitutionAddress', 'ReferringPhysicianName', 'PerformingPhysicianName',
  'OperatorsName', 'StationName', 'AccessionNumber', 'StudyID', 'DeviceSerialNumber', 'StudyDate', 'SeriesDate',
  'AcquisitionDate', 'ContentDate', 'AcquisitionDateTime', 'StudyDescription', 'StudyInstanceUID', 'SeriesInstanceUID',
  'SOPInstanceUID', 'ImageType', 'SequenceName', 'ScanningSequence', 'SequenceVariant', 'ScanOptions',
  'MRAcquisitionType', 'InversionTime', 'EchoTime', 'RepetitionTime', 'DiffusionBValue', 'NumberOfTemporalPositions',
  'ImageOrientationPatient', 'ImagePositionPatient', 'SpacingBetweenSlices', 'SliceLocation', 'InstanceNumber',
  'Manufacturer', 'SeriesDescription', 'BurnedInAnnotation', 'SeriesNumber', 'AcquisitionMatrix',
];

describe('fiona-synth files, read by other DICOM tools', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  const runs = new Map<string, Run>();

  beforeAll(async () => {
    tmp = await makeTempDir('fiona-synth-dicom-');
    for (const run of RUNS) {
      const out = join(tmp.dir, run.name);
      const r = await runTool('fiona-synth', ['--out', out, ...ARGS, '--transfer-syntax', run.ts, '--charset', run.charset, '--json']);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const events = parseEvents(r.stdout);
      const files = events.filter((e) => e.event === 'synthesized');
      const summary = events.find((e) => e.event === 'synth-summary') as unknown as SynthSummary;
      const records = await readWithPydicom(files.map((f) => f.path as string), KEYWORDS);
      runs.set(run.name, { files, summary, records });
    }
  });
  afterAll(async () => tmp.cleanup());

  it('wrote 3 patients x 6 series x 8 instances in each encoding', () => {
    for (const run of RUNS) {
      const r = runs.get(run.name)!;
      expect(r.files).toHaveLength(144);
      expect(Object.keys(r.records)).toHaveLength(144);
      for (const rec of Object.values(r.records)) expect(rec._transferSyntax).toBe(run.tsUid);
    }
  });

  it('dcmdump reads every file without a warning and shows the generated values', async () => {
    const dcmdump = requireProgram('dcmdump', 'dcmtk');
    for (const run of RUNS) {
      const r = runs.get(run.name)!;
      const paths = r.files.map((f) => f.path as string);
      // One dcmdump over all files: it prints each file's dump in order; -q keeps warnings.
      const res = await execa(dcmdump, ['-q', ...paths], { reject: false });
      expect(res.exitCode, res.stderr).toBe(0);
      // CP-246 notes are how DCMTK reads an implicit-VR private sequence without a dictionary: expected.
      const stderr = res.stderr.split('\n').filter((l) => l.trim() !== '' && !/CP-246/.test(l));
      expect(stderr).toEqual([]);
      const sops = [...res.stdout.matchAll(/^\(0008,0018\) UI \[([0-9.]+)\]/gm)].map((m) => m[1]);
      expect(sops).toEqual(r.files.map((f) => f.sop));
      const pids = [...res.stdout.matchAll(/^\(0010,0020\) LO \[([^\]]*)\]/gm)].map((m) => m[1]);
      expect(pids).toEqual(r.files.map((f) => f.patientId));
      const institutions = new Set(r.summary.patients.flatMap((p) => p.studies.map((s) => s.InstitutionName)));
      for (const m of res.stdout.matchAll(/\(0008,0080\) LO \[([^\]]*)\]/g)) expect(institutions.has(m[1]!)).toBe(true);
    }
  });

  it('dciodvfy finds no errors, only the documented warnings', async () => {
    const dciodvfy = requireProgram('dciodvfy', 'dicom3tools');
    // Every series type of every vendor in every encoding: the first two instances of each series.
    const picked = RUNS.flatMap((run) => {
      const files = runs.get(run.name)!.files;
      return files.filter((f) => Number(f.instanceNumber) <= 2).map((f) => f.path as string);
    });
    expect(picked.length).toBe(3 * 3 * 6 * 2);
    const unexpected: string[] = [];
    for (const path of picked) {
      const res = await execa(dciodvfy, [path], { reject: false, all: true });
      for (const line of String(res.all).split('\n')) {
        if (line.trim() === '') continue;
        if (/error/i.test(line) || !EXPECTED_WARNINGS.some((re) => re.test(line))) unexpected.push(`${path}: ${line}`);
      }
    }
    expect(unexpected).toEqual([]);
  });

  it('the identifying values exported are exactly those in the files (standard, private and nested)', () => {
    for (const run of RUNS) {
      const r = runs.get(run.name)!;
      const byPatient = new Map(r.summary.patients.map((p) => [p.patient.PatientID, p]));
      for (const f of r.files) {
        const rec = r.records[f.path as string]!;
        const p = byPatient.get(rec.PatientID!)!;
        const study = p.studies.find((s) => s.StudyInstanceUID === rec.StudyInstanceUID)!;
        expect(study, `study of ${f.path}`).toBeDefined();
        const pt = p.patient;
        expect(rec.PatientName).toBe(pt.PatientName);
        expect(rec.PatientBirthDate).toBe(pt.PatientBirthDate);
        expect(rec.PatientAddress).toBe(pt.PatientAddress);
        expect(rec.PatientTelephoneNumbers).toBe(pt.PatientTelephoneNumbers);
        expect(rec.OtherPatientIDs).toBe(pt.OtherPatientIDs);
        for (const k of ['InstitutionName', 'InstitutionAddress', 'ReferringPhysicianName', 'PerformingPhysicianName', 'OperatorsName',
          'StationName', 'AccessionNumber', 'StudyID', 'DeviceSerialNumber', 'StudyDate', 'StudyDescription'] as const) {
          expect(rec[k], k).toBe(study[k]);
        }
        expect(rec._private).toEqual([pt.PatientName, pt.PatientID]);
        expect(rec._privateNested).toBe(pt.PatientAddress);
        expect(rec._request).toEqual([study.RequestedProcedureID, study.ScheduledProcedureStepID]);
        expect(rec.SeriesDate).toBe(study.StudyDate);
        expect(rec.AcquisitionDateTime!.slice(0, 8)).toBe(rec.AcquisitionDate);
        // Every identifying string is in the file's bytes, in the file's character set.
        const identifying = p.identifying;
        expect(Object.keys(identifying).sort()).toEqual([
          'AccessionNumber', 'DeviceSerialNumber', 'InstitutionAddress', 'InstitutionName', 'OperatorsName', 'OtherPatientIDs',
          'PatientAddress', 'PatientBirthDate', 'PatientID', 'PatientName', 'PatientTelephoneNumbers', 'PerformedProcedureStepID',
          'PerformingPhysicianName', 'ReferringPhysicianName', 'RequestedProcedureID', 'ScheduledProcedureStepID', 'StationName',
          'StudyDate', 'StudyID', 'StudyInstanceUID',
        ]);
      }
    }
  });

  it('puts every identifying string into the bytes of each file, and names are non-ASCII in latin1/utf8', async () => {
    for (const run of RUNS) {
      const r = runs.get(run.name)!;
      for (const f of r.files.filter((x) => Number(x.instanceNumber) === 1)) {
        const bytes = await readFile(f.path as string);
        const p = r.summary.patients.find((x) => x.patient.PatientID === f.patientId)!;
        for (const k of ['PatientName', 'PatientID', 'OtherPatientIDs', 'PatientBirthDate', 'PatientAddress', 'PatientTelephoneNumbers']) {
          for (const v of p.identifying[k]!) {
            const needle = Buffer.from(v, run.text);
            expect(bytes.includes(needle), `${k}=${v} in ${f.path}`).toBe(true);
          }
        }
        // PatientName twice (standard and private), the address twice (standard and nested private).
        const count = (needle: Buffer): number => {
          let n = 0;
          for (let i = bytes.indexOf(needle); i >= 0; i = bytes.indexOf(needle, i + 1)) n++;
          return n;
        };
        expect(count(Buffer.from(p.patient.PatientName, run.text))).toBeGreaterThanOrEqual(2);
        expect(count(Buffer.from(p.patient.PatientAddress, run.text))).toBe(2);
        if (run.charset !== 'ascii') expect(/[^\x20-\x7e]/.test(p.patient.PatientName)).toBe(true);
        else expect(/^[\x20-\x7e]+$/.test(p.patient.PatientName)).toBe(true);
      }
      const charset = Object.values(r.records)[0]!.SpecificCharacterSet;
      expect(charset).toBe({ latin1: 'ISO_IR 100', utf8: 'ISO_IR 192', ascii: undefined }[run.charset]);
    }
  });

  it('pixel data are the same 12-bit images in every transfer syntax', () => {
    const bySop = (name: string): Map<string, PyRecord> =>
      new Map(Object.values(runs.get(name)!.records).map((rec) => [rec.SOPInstanceUID!, rec]));
    const a = bySop('explicit');
    const b = bySop('implicit');
    const c = bySop('big');
    expect(a.size).toBe(144);
    const hashes = new Set<string>();
    for (const [sop, rec] of a) {
      expect(b.get(sop)?._pixels, sop).toBe(rec._pixels);
      expect(c.get(sop)?._pixels, sop).toBe(rec._pixels);
      expect(rec._shape).toEqual([32, 32]);
      expect(rec._max).toBeLessThanOrEqual(4095);
      expect(rec._max).toBeGreaterThan(500);
      hashes.add(rec._pixels);
    }
    expect(hashes.size).toBeGreaterThan(140); // images differ (slices, noise)
  });

  it('series types carry the headers a classifier tells them apart by', () => {
    const r = runs.get('explicit')!;
    const records = r.files.map((f) => ({ f, rec: r.records[f.path as string]! }));
    const siemens = records.filter((x) => x.rec.Manufacturer === 'SIEMENS');
    const vendors = new Set(records.map((x) => x.rec.Manufacturer));
    expect([...vendors].sort()).toEqual(['GE MEDICAL SYSTEMS', 'Philips Medical Systems', 'SIEMENS']);
    const of = (type: string) => siemens.filter((x) => x.f.seriesType === type).map((x) => x.rec);
    const first = (type: string) => of(type)[0]!;
    expect(first('localizer').ImageType).toBe('ORIGINAL\\PRIMARY\\LOCALIZER');
    expect(new Set(of('localizer').map((x) => x.ImageOrientationPatient)).size).toBe(3);
    expect(first('t1')).toMatchObject({ ScanningSequence: 'GR\\IR', SequenceName: '*tfl3d1_16ns', MRAcquisitionType: '3D', InversionTime: '900', ImageOrientationPatient: '0\\1\\0\\0\\0\\-1' });
    expect(first('t2')).toMatchObject({ ScanningSequence: 'SE', SequenceName: '*tse2d1_15', MRAcquisitionType: '2D', EchoTime: '95', ImageOrientationPatient: '1\\0\\0\\0\\1\\0' });
    expect(first('t2').InversionTime).toBeUndefined();
    expect(first('flair')).toMatchObject({ ScanningSequence: 'SE\\IR', InversionTime: '2500', SeriesDescription: 't2_tirm_tra_dark-fluid' });
    expect(of('dwi').map((x) => x.DiffusionBValue)).toEqual(['0.0', '0.0', '1000.0', '1000.0', '1000.0', '1000.0', '1000.0', '1000.0']);
    expect(of('dwi').map((x) => x.SequenceName)).toEqual(['*ep_b0', '*ep_b0', '*ep_b1000#1', '*ep_b1000#1', '*ep_b1000#2', '*ep_b1000#2', '*ep_b1000#3', '*ep_b1000#3']);
    expect(first('fmri')).toMatchObject({ ImageType: 'ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC', ScanningSequence: 'EP', NumberOfTemporalPositions: '8' });
    for (const { rec } of records) expect(rec.AcquisitionMatrix!.split('\\')).toHaveLength(4);
    // The last series of each study is marked (--burned-in), the others are not.
    for (const { f, rec } of records) expect(rec.BurnedInAnnotation).toBe(Number(f.seriesNumber) === 6 ? 'YES' : 'NO');
    // SeriesDescription differs by series type within each vendor.
    for (const m of vendors) {
      const descriptions = new Set(records.filter((x) => x.rec.Manufacturer === m).map((x) => x.rec.SeriesDescription));
      expect(descriptions.size).toBe(6);
    }
  });

  it('slices of a volume step along the normal by SpacingBetweenSlices', () => {
    const r = runs.get('explicit')!;
    const t2 = r.files.filter((f) => f.seriesType === 't2' && f.patientId === r.summary.patients[0]!.patient.PatientID);
    const recs = t2.map((f) => r.records[f.path as string]!).sort((a, b) => Number(a.InstanceNumber) - Number(b.InstanceNumber));
    const z = recs.map((x) => Number(x.ImagePositionPatient!.split('\\')[2]));
    const spacing = Number(recs[0]!.SpacingBetweenSlices);
    for (let i = 1; i < z.length; i++) expect(z[i]! - z[i - 1]!).toBeCloseTo(spacing, 5);
    expect(recs.map((x) => Number(x.SliceLocation))).toEqual(z);
  });

  it('dcm2niix makes a volume of the T1 series with the expected size', async () => {
    const dcm2niix = requireProgram('dcm2niix', 'dcm2niix');
    const r = runs.get('explicit')!;
    const t1 = r.files.find((f) => f.seriesType === 't1')!;
    const seriesDir = join(tmp.dir, 'explicit', String(t1.patientId), String(t1.study), String(t1.series));
    const out = join(tmp.dir, 'nifti');
    await execa('mkdir', ['-p', out]);
    const res = await execa(dcm2niix, ['-z', 'n', '-f', 't1', '-o', out, seriesDir], { reject: false });
    expect(res.exitCode, res.stdout + res.stderr).toBe(0);
    const nii = await readFile(join(out, 't1.nii'));
    const dims = [0, 1, 2, 3].map((i) => nii.readInt16LE(40 + i * 2));
    // dcm2niix may reorder the axes of a sagittal volume; the volume is 32 x 32 x 8 either way.
    expect(dims[0]).toBe(3);
    expect(dims.slice(1).sort((x, y) => x - y)).toEqual([8, 32, 32]);
    expect((await readdir(out)).some((f) => f.endsWith('.json'))).toBe(true);
  });
});
