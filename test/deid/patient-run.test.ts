import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnonymizedResult, createAnonymizer } from '../../src/lib/deid/anonymizer.js';
import { defaultProjectRules } from '../../src/lib/deid/project.js';
import { dump2dcm } from '../peers/dcmtk.js';
import { makeTempDir } from '../helpers/tmp.js';

/**
 * The anonymizer reuses the previous file's patient context when a file's identifying
 * elements hold the same bytes (a batch is mostly runs of one patient). That must never
 * carry one file's identity into another's output: every file of a run through one
 * anonymizer must come out byte for byte as it does through a fresh anonymizer alone.
 */
const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');

interface Spec {
  name: string;
  patientId?: string;
  patientName?: string;
  birthDate?: string;
  charset?: string;
  stepId?: string;
  study: string;
}

function dump(s: Spec, sop: string): string {
  const lines = [
    '(0002,0001) OB 00\\01',
    '(0002,0002) UI =MRImageStorage',
    `(0002,0003) UI [${sop}]`,
    '(0002,0010) UI =LittleEndianExplicit',
    ...(s.charset ? [`(0008,0005) CS [${s.charset}]`] : []),
    '(0008,0016) UI =MRImageStorage',
    `(0008,0018) UI [${sop}]`,
    '(0008,0060) CS [MR]',
    '(0008,1030) LO [Brain]',
    ...(s.patientName !== undefined ? [`(0010,0010) PN [${s.patientName}]`] : []),
    ...(s.patientId !== undefined ? [`(0010,0020) LO [${s.patientId}]`] : []),
    ...(s.birthDate ? [`(0010,0030) DA [${s.birthDate}]`] : []),
    `(0020,000d) UI [${s.study}]`,
    `(0020,000e) UI [${s.study}.1]`,
    ...(s.stepId ? [`(0040,0253) SH [${s.stepId}]`] : []),
    '(0028,0010) US 2',
    '(0028,0011) US 2',
    '(0028,0100) US 8',
    '(7fe0,0010) OB 01\\02\\03\\04',
  ];
  return `${lines.join('\n')}\n`;
}

const A = { name: 'a', patientId: 'PATA0001', patientName: 'Alpha^Ann', birthDate: '19500101', study: '1.2.3.100' };
// Each differs from A (or from the file before it) in one thing the context depends on.
const RUN: Spec[] = [
  A,
  A,
  { ...A, name: 'id', patientId: 'PATB0002' },
  A,
  { ...A, name: 'pname', patientName: 'Beta^Bob' },
  { ...A, name: 'birth', birthDate: '19600202' },
  { ...A, name: 'step', stepId: 'STEP77' },
  { ...A, name: 'step', stepId: 'STEP77' },
  // Same bytes, another character set: other text.
  { ...A, name: 'latin', patientName: 'M\xfcller^Ann', charset: 'ISO_IR 100' },
  { ...A, name: 'latin', patientName: 'M\xfcller^Ann', charset: 'ISO_IR 192' },
  // No PatientID or PatientName: the context is the study's.
  { name: 'anon1', study: '1.2.3.200' },
  { name: 'anon2', study: '1.2.3.300' },
  { name: 'anon2', study: '1.2.3.300' },
  A,
];

let tmp: { dir: string; cleanup: () => Promise<void> };
const files: string[] = [];
beforeAll(async () => {
  tmp = await makeTempDir('fiona-deid-run-');
  for (const [k, s] of RUN.entries()) {
    const txt = join(tmp.dir, `${k}.txt`);
    await writeFile(txt, dump(s, `1.2.3.9${k}`), 'latin1');
    const file = join(tmp.dir, `${k}-${s.name}.dcm`);
    await dump2dcm(txt, file);
    files.push(file);
  }
});
afterAll(async () => tmp.cleanup());

describe('patient context across a run of files', () => {
  it('gives every file the output a fresh anonymizer gives it alone', async () => {
    const rules = defaultProjectRules('run');
    const batch = createAnonymizer(rules, { secret: SECRET, fsync: false });
    const inRun: AnonymizedResult[] = [];
    for (const f of files) {
      const r = await batch.anonymizeFile(f, join(tmp.dir, 'run'));
      expect(r.status, f).toBe('anonymized');
      inRun.push(r as AnonymizedResult);
    }
    for (const [k, f] of files.entries()) {
      const alone = await createAnonymizer(rules, { secret: SECRET, fsync: false }).anonymizeFile(f, join(tmp.dir, `alone-${k}`));
      expect(alone.status).toBe('anonymized');
      const want = await readFile((alone as AnonymizedResult).path);
      const got = await readFile(inRun[k]!.path);
      expect(got.equals(want), `${k}: ${f}`).toBe(true);
    }
  });

  it('gives patients who differ in one identifying value different pseudonyms', async () => {
    const rules = defaultProjectRules('run');
    const batch = createAnonymizer(rules, { secret: SECRET, fsync: false });
    const pid = async (k: number): Promise<string> => {
      const r = (await batch.anonymizeFile(files[k]!, join(tmp.dir, 'pid'))) as AnonymizedResult;
      const bytes = await readFile(r.path);
      const at = bytes.indexOf(Buffer.from([0x10, 0x00, 0x20, 0x00]));
      const len = bytes.readUInt16LE(at + 6);
      return bytes.subarray(at + 8, at + 8 + len).toString('latin1').trim();
    };
    const a0 = await pid(0);
    expect(await pid(1)).toBe(a0);
    expect(await pid(2)).not.toBe(a0);
    expect(await pid(3)).toBe(a0);
    expect(await pid(4)).toBe(a0); // the pseudonym comes from the PatientID
    expect(await pid(13)).toBe(a0);
    // Neither PatientID nor PatientName: one pseudonym per study, not one for all such patients.
    const s200 = await pid(10);
    expect(s200).not.toBe(a0);
    expect(await pid(11)).not.toBe(s200);
    expect(await pid(12)).toBe(await pid(11));
  });

  it('leaves no context behind from a file that failed: the next file with its bytes fails too', async () => {
    // Only patient A is in the table; B's files are quarantined (pseudonym.unmapped).
    const rules = defaultProjectRules('run');
    const table = new Map([['PATA0001', { patientId: 'TABLE-A' }]]);
    const batch = createAnonymizer(rules, { secret: SECRET, fsync: false, pseudonymTable: table });
    const statuses: string[] = [];
    for (const k of [0, 2, 2, 0, 2]) statuses.push((await batch.anonymizeFile(files[k]!, join(tmp.dir, 'table'))).status);
    expect(statuses).toEqual(['anonymized', 'quarantined', 'quarantined', 'anonymized', 'quarantined']);
  });
});
