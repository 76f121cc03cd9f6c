/**
 * The leak test: fiona-synth studies (three character sets, three transfer syntaxes) and
 * DCMTK-made odd files (identity in private blocks, nested and private sequences, an SR
 * content tree, overlays, curves, VR UN, descriptions) go through fiona-anonymize; then the
 * bytes of every output file are searched for every identifying input value in every
 * spelling it could take: as written, UTF-8 and Latin-1, upper and lower case, name parts,
 * with '^' or a space, padded with a space or a NUL, dates in the usual spellings, and every
 * original UID.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHeaderFull } from '../../src/lib/dicom/index.js';
import type { DicomElement } from '../../src/lib/dicom/index.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { dump2dcm } from '../peers/dcmtk.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let inputDir: string;
let secret: string;
const identities = new Set<string>();
const originalUids = new Set<string>();
let inputCount = 0;

/** Identifying values of the odd files (written below). */
const ODD = {
  name: 'Nordmann^Kari',
  id: 'ODD-PID-4242',
  otherId: 'ODD-OTHER-99',
  accession: 'ACC-ODD-777',
  birth: '19800229',
  institution: 'Odd Hospital Trondheim',
  address: 'Oddgata 5, 7030 Trondheim',
  referring: 'Doktor^Odd',
  requesting: 'Requesting^Rita',
  requestedProcedureId: 'RPID-ODD',
};

function hexOf(s: string): string {
  return [...Buffer.from(s, 'latin1')].map((b) => b.toString(16).padStart(2, '0')).join('\\');
}

function oddDump(variant: number): string {
  const u = (n: number): string => `1.2.826.0.1.3680043.2.1143.77.${variant}.${n}`;
  const lines = [
    '(0008,0005) CS [ISO_IR 100]',
    '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]',
    `(0008,0018) UI [${u(1)}]`,
    '(0008,0020) DA [20200315]',
    `(0008,0050) SH [${ODD.accession}]`,
    '(0008,0060) CS [OT]',
    `(0008,0080) LO [${ODD.institution}]`,
    `(0008,0081) ST [${ODD.address}]`,
    `(0008,0090) PN [${ODD.referring}]`,
    '(0008,1030) LO [Follow-up Nordmann Kari]',
    '(0008,103e) LO [KARI NORDMANN series]',
    '(0008,1140) SQ (Sequence with undefined length)',
    '  (fffe,e000) na (Item with undefined length)',
    '    (0008,1150) UI [1.2.840.10008.5.1.4.1.1.7]',
    `    (0008,1155) UI [${u(2)}]`,
    '  (fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    `(0010,0010) PN [${ODD.name}]`,
    `(0010,0020) LO [${ODD.id}]`,
    `(0010,0030) DA [${ODD.birth}]`,
    `(0010,1001) UN ${hexOf(ODD.name)}`,
    '(0010,1002) SQ (Sequence with undefined length)',
    '  (fffe,e000) na (Item with undefined length)',
    `    (0010,0020) LO [${ODD.otherId}]`,
    '    (0010,0021) LO [ODDISSUER]',
    '  (fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    `(0010,1040) LO [${ODD.address}]`,
    '(0010,4000) LT [Patient Nordmann Kari has allergies]',
    `(0020,000d) UI [${u(3)}]`,
    `(0020,000e) UI [${u(4)}]`,
    '(0020,4000) LT [Image of KARI NORDMANN]',
    `(0032,1032) PN [${ODD.requesting}]`,
    '(0040,0275) SQ (Sequence with undefined length)',
    '  (fffe,e000) na (Item with undefined length)',
    `    (0008,0050) SH [${ODD.accession}]`,
    '    (0032,1060) LO [Nordmann scan]',
    `    (0040,1001) SH [${ODD.requestedProcedureId}]`,
    '  (fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    '(0040,a730) SQ (Sequence with undefined length)',
    '  (fffe,e000) na (Item with undefined length)',
    '    (0040,a010) CS [CONTAINS]',
    '    (0040,a040) CS [TEXT]',
    '    (0040,a043) SQ (Sequence with undefined length)',
    '      (fffe,e000) na (Item with undefined length)',
    '        (0008,0100) SH [121106]',
    '        (0008,0102) SH [DCM]',
    '        (0008,0104) LO [Comment]',
    '      (fffe,e00d) na (ItemDelimitationItem)',
    '    (fffe,e0dd) na (SequenceDelimitationItem)',
    '    (0040,a123) PN [Nordmann^Kari]',
    '    (0040,a160) UT [Kari Nordmann, born 29.02.1980, ID ODD-PID-4242]',
    '  (fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    '(0009,0010) LO [ODD CREATOR]',
    `(0009,1001) LO [${ODD.name}]`,
    '(0009,1002) SQ (Sequence with undefined length)',
    '  (fffe,e000) na (Item with undefined length)',
    `    (0010,0010) PN [${ODD.name}]`,
    `    (0010,0020) LO [${ODD.id}]`,
    '  (fffe,e00d) na (ItemDelimitationItem)',
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    '(0011,0010) LO [OTHER CREATOR]',
    `(0011,1010) UN ${hexOf(ODD.id)}`,
    '(5000,0005) US 1',
    '(5000,2500) LO [Curve of Nordmann]',
    '(6000,0010) US 2',
    '(6000,0011) US 8',
    '(6000,0022) LO [Overlay of Nordmann]',
    '(6000,0040) CS [G]',
    '(6000,0050) SS 1\\1',
    '(6000,0100) US 1',
    '(6000,0102) US 0',
    '(6000,3000) OW 0000',
    '(6000,4000) LT [Nordmann overlay comment]',
  ];
  return `${lines.join('\n')}\n`;
}

/** Every UID value at any depth of a file, except the standard's own (1.2.840.10008.*). */
async function collectUids(file: string): Promise<void> {
  const h = await readHeaderFull(file);
  const walk = (list: DicomElement[], implicitLE: boolean): void => {
    for (const el of list) {
      if (el.vr === 'UI') for (const v of h.valuesOf(el, { implicitLE })) if (v && !v.startsWith('1.2.840.10008.')) originalUids.add(v);
      for (const item of el.items ?? []) walk(item, implicitLE || Boolean(el.itemsImplicit));
    }
  };
  walk(h.elements, false);
  for (const v of h.strings('MediaStorageSOPInstanceUID')) originalUids.add(v);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

function addIdentity(v: string | undefined): void {
  if (v && v.trim().length >= 3) identities.add(v.trim());
}

beforeAll(async () => {
  tmp = await makeTempDir('fiona-deid-leak-');
  inputDir = join(tmp.dir, 'in');
  secret = join(tmp.dir, 'secret.key');
  await writeFile(secret, 'leak-test-secret-0123456789abcdef\n', { mode: 0o600 });
  const variants: Array<[string, string, string]> = [
    ['ascii', 'explicit', '11'],
    ['latin1', 'implicit', '12'],
    ['utf8', 'big', '13'],
  ];
  for (const [charset, ts, seed] of variants) {
    const manifest = join(tmp.dir, `manifest-${seed}.json`);
    const r = await runTool('fiona-synth', [
      '--out', join(inputDir, `synth-${seed}`), '--patients', '2', '--studies-per-patient', '2', '--series', '3', '--instances', '2', '--rows', '32',
      '--charset', charset, '--transfer-syntax', ts, '--seed', seed, '--manifest', manifest, '--no-fsync', '-q',
    ]);
    if (r.exitCode !== 0) throw new Error(`fiona-synth failed: ${String(r.stderr)}`);
    const m = JSON.parse(await readFile(manifest, 'utf8')) as { patients: Array<{ patient: Record<string, string>; studies: Array<Record<string, unknown>> }> };
    for (const p of m.patients) {
      for (const k of ['PatientName', 'PatientID', 'OtherPatientIDs', 'PatientBirthDate', 'PatientAddress', 'PatientTelephoneNumbers']) addIdentity(p.patient[k]);
      for (const s of p.studies) {
        for (const k of ['AccessionNumber', 'StudyID', 'InstitutionName', 'InstitutionAddress', 'InstitutionalDepartmentName', 'ReferringPhysicianName', 'PerformingPhysicianName', 'OperatorsName', 'StationName', 'DeviceSerialNumber', 'RequestedProcedureID', 'ScheduledProcedureStepID', 'PerformedProcedureStepID', 'StudyDate']) {
          addIdentity(s[k] as string | undefined);
        }
      }
    }
  }
  const flags = [['--write-xfer-little'], ['--write-xfer-implicit'], ['--write-xfer-big']];
  for (let k = 0; k < flags.length; k++) {
    const dump = join(tmp.dir, `odd-${k}.dump`);
    await writeFile(dump, oddDump(k));
    await dump2dcm(dump, join(inputDir, `odd-${k}.dcm`), flags[k]!);
  }
  for (const v of Object.values(ODD)) addIdentity(v);
  for (const f of await listFiles(inputDir)) {
    inputCount++;
    await collectUids(f);
  }
}, 180_000);
afterAll(async () => tmp.cleanup());

/** Every spelling of a value the output must not contain. */
function spellings(value: string): Array<{ label: string; bytes: Buffer; digits: boolean }> {
  const forms = new Set<string>([value, value.toUpperCase(), value.toLowerCase(), value.replace(/\^+/g, ' ').trim(), `${value} `, `${value}\0`]);
  if (value.includes('^')) {
    for (const part of value.split(/[\^ ]+/)) if (part.length >= 3 && !/^(Dr\.?|Prof\.?)$/i.test(part)) forms.add(part).add(part.toUpperCase());
  }
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  if (m) for (const f of [`${m[1]}-${m[2]}-${m[3]}`, `${m[3]}.${m[2]}.${m[1]}`, `${m[2]}/${m[3]}/${m[1]}`]) forms.add(f);
  const out: Array<{ label: string; bytes: Buffer; digits: boolean }> = [];
  for (const f of forms) {
    const digits = /^[\d.]+\0?$/.test(f.trim() || f);
    out.push({ label: `${value} as ${JSON.stringify(f)} (utf8)`, bytes: Buffer.from(f, 'utf8'), digits });
    if (/^[\0-\xff]*$/.test(f)) out.push({ label: `${value} as ${JSON.stringify(f)} (latin1)`, bytes: Buffer.from(f, 'latin1'), digits });
  }
  return out;
}

function isDigitOrDot(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || b === 0x2e);
}

/** Occurrences of a needle; digit-only needles must stand alone (not inside a longer number, e.g. a new UID). */
function findAll(hay: Buffer, needle: { bytes: Buffer; digits: boolean }): number[] {
  const hits: number[] = [];
  for (let at = hay.indexOf(needle.bytes); at >= 0; at = hay.indexOf(needle.bytes, at + 1)) {
    if (needle.digits && (isDigitOrDot(hay[at - 1]) || isDigitOrDot(hay[at + needle.bytes.length]))) continue;
    hits.push(at);
  }
  return hits;
}

async function anonymizeAll(name: string, extra: string[]): Promise<{ files: string[]; events: Array<Record<string, unknown>>; exitCode: number | undefined }> {
  const out = join(tmp.dir, `out-${name}`);
  const r = await runTool('fiona-anonymize', ['--out', out, '--secret-file', secret, '--quarantine', join(tmp.dir, `q-${name}`), ...extra, inputDir], { timeout: 120_000 });
  return { files: await listFiles(out), events: parseEvents(r.stdout), exitCode: r.exitCode };
}

async function leaksIn(files: string[], values: Iterable<string>): Promise<string[]> {
  const needles = [...values].flatMap(spellings);
  const found: string[] = [];
  for (const f of files) {
    const bytes = await readFile(f);
    for (const n of needles) {
      const hits = findAll(bytes, n);
      if (hits.length) found.push(`${f.split('/').slice(-1)[0]}: ${n.label} at ${hits.join(',')}`);
    }
  }
  return found;
}

describe('no identifying value survives, in any spelling', () => {
  it('has identifying inputs to look for (and the inputs do contain them)', async () => {
    expect(inputCount).toBe(3 * 24 + 3);
    expect(identities.size).toBeGreaterThan(60);
    expect(originalUids.size).toBeGreaterThan(80);
    // The search finds what is there: every input file holds some of the values.
    const inputs = await listFiles(inputDir);
    expect((await leaksIn(inputs, identities)).length).toBeGreaterThan(inputs.length);
  });

  for (const [name, extra] of [
    ['basic', []],
    ['fiona-like', ['--option', 'retain-longitudinal-modified-dates', '--option', 'retain-patient-characteristics', '--option', 'clean-descriptors', '--option', 'clean-structured-content', '--option', 'clean-graphics']],
  ] as Array<[string, string[]]>) {
    it(`${name}: every instance released, no value and no original UID in any output byte`, async () => {
      const { files, events, exitCode } = await anonymizeAll(name, extra);
      const quarantined = events.filter((e) => e.event === 'quarantined');
      expect(quarantined).toEqual([]);
      expect(exitCode).toBe(0);
      expect(files.length).toBe(inputCount);
      const values = name === 'basic' ? identities : [...identities].filter((v) => !/^\d{8}$/.test(v) || v === ODD.birth);
      expect(await leaksIn(files, values)).toEqual([]);
      expect(await leaksIn(files, originalUids)).toEqual([]);
      // Paths carry nothing but new UIDs and a modality.
      for (const f of files) expect(f.slice(join(tmp.dir, `out-${name}`).length)).toMatch(/^\/2\.25\.\d+\/2\.25\.\d+\/[A-Z]{2}\.2\.25\.\d+\.dcm$/);
    });
  }

  it('the leak check stops an instance whose rules let a name through (here: a kept description)', async () => {
    const { files, events, exitCode } = await anonymizeAll('kept-description', ['--keep', 'StudyDescription', '--keep', 'ImageComments']);
    expect(exitCode).toBe(1);
    const quarantined = events.filter((e) => e.event === 'quarantined');
    // The three odd files carry the patient's name in those descriptions; the synth files do not.
    expect(quarantined.map((e) => String(e.source).split('/').pop()).sort()).toEqual(['odd-0.dcm', 'odd-1.dcm', 'odd-2.dcm']);
    for (const e of quarantined) expect(String(e.reason)).toMatch(/leak check: the output still holds the PatientName( \(part\))? at byte \d+ \(in \((0008,1030|0020,4000)\)\)/);
    expect(files.length).toBe(inputCount - 3);
    expect(await leaksIn(files, identities)).toEqual([]);
  });
});
