import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

/**
 * Patient pseudonyms: PatientID and PatientName of the output. In order of precedence:
 * fixed values (--patient-id/--patient-name, FIONA's "from the transfer request"), a
 * table mapping original IDs to pseudonyms, or a keyed derivation from the original ID.
 */
export interface Pseudonym {
  patientId: string;
  patientName: string;
}

export interface PseudonymTableEntry {
  patientId: string;
  patientName?: string;
}

/**
 * Read a pseudonym table. CSV: a header line, then `originalPatientID,pseudonymID[,pseudonymName]`
 * (commas inside values are not supported; IDs do not have them). JSON: an object
 * `{"orig": "pseudo"}` or `{"orig": {"patientId": "...", "patientName": "..."}}`.
 */
export function loadPseudonymTable(file: string): Map<string, PseudonymTableEntry> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('pseudonym.table', `cannot read ${file}: ${(err as Error).message}`);
  }
  const table = new Map<string, PseudonymTableEntry>();
  if (text.trimStart().startsWith('{')) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('pseudonym.table', `${file}: not valid JSON: ${(err as Error).message}`);
    }
    for (const [orig, v] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof v === 'string') table.set(orig.trim(), checkEntry(file, orig, { patientId: v }));
      else if (typeof v === 'object' && v !== null && typeof (v as PseudonymTableEntry).patientId === 'string') {
        const e = v as PseudonymTableEntry;
        table.set(orig.trim(), checkEntry(file, orig, { patientId: e.patientId, patientName: typeof e.patientName === 'string' ? e.patientName : undefined }));
      } else throw new ConfigError('pseudonym.table', `${file}: entry ${JSON.stringify(orig)} must be a string or {"patientId": ...}`);
    }
    return table;
  }
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (i === 0 || line.trim() === '' || line.startsWith('#')) return; // header, blank, comment
    const cols = line.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    if (cols.length < 2 || cols[0] === '' || cols[1] === '') {
      throw new ConfigError('pseudonym.table', `${file} line ${i + 1}: expected originalPatientID,pseudonymID[,pseudonymName]`);
    }
    table.set(cols[0]!, checkEntry(file, cols[0]!, { patientId: cols[1]!, patientName: cols[2] || undefined }));
  });
  return table;
}

function checkEntry(file: string, orig: string, e: PseudonymTableEntry): PseudonymTableEntry {
  checkPseudonym(`pseudonym.table (${file}, ${JSON.stringify(orig)})`, e.patientId, 64);
  if (e.patientName !== undefined) checkPseudonym(`pseudonym.table (${file}, ${JSON.stringify(orig)})`, e.patientName, 64);
  return e;
}

/** A pseudonym goes into LO/PN values and into file names downstream: printable ASCII, no backslash. */
export function checkPseudonym(key: string, value: string, max = 64): string {
  if (!/^[\x20-\x5b\x5d-\x7e]+$/.test(value) || value.length > max || value.trim() === '') {
    throw new ConfigError(key, `a pseudonym is 1-${max} printable ASCII characters without backslash, got ${JSON.stringify(value)}`);
  }
  return value;
}

const BASE32 = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'; // no I, O, 0, 1: read aloud without mistakes

/** A keyed pseudonym for an original patient ID: prefix + 12 characters (60 bits). */
export function derivePatientPseudonym(secret: Uint8Array, project: string, originalId: string, prefix = ''): string {
  const h = createHmac('sha256', secret).update('fiona-patient\0').update(project).update('\0').update(originalId).digest();
  let out = '';
  for (let i = 0; i < 12; i++) out += BASE32[h[i]! & 31];
  return `${prefix}${out}`;
}
