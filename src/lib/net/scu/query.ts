/**
 * C-FIND (Study Root Query/Retrieve, PS3.4 C.4.1): find the studies that match an accession
 * number, a patient ID or a Study Instance UID, and list the SOP classes of a study's
 * instances (which a C-GET must offer storage contexts for).
 *
 * Query results are kept in memory as dcmjs-dimse decodes them (small data sets); only the
 * keys fiona needs are asked for, so identifying values are neither requested nor kept.
 */
import { Dataset, requests } from '../dcmjs-dimse.js';
import { ScuAssociation, statusClass, statusText, type AssociationTimeouts, type DicomPeer, type DimseResponse } from './association.js';

export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export interface StudyQuery {
  studyUid?: string;
  accession?: string;
  patientId?: string;
}

export interface StudyMatch {
  studyUid: string;
  /** NumberOfStudyRelatedInstances when the PACS gives it. */
  instances?: number;
  series?: number;
  modalities: string[];
}

export class QueryError extends Error {
  constructor(message: string, readonly kind: 'refused' | 'failed' | 'no-response') {
    super(message);
    this.name = 'QueryError';
  }
}

type Elements = Record<string, unknown>;

function first(v: unknown): string | undefined {
  if (Array.isArray(v)) return first(v[0]);
  if (v === undefined || v === null) return undefined;
  const s = String(v).trim();
  return s === '' ? undefined : s;
}

function list(v: unknown): string[] {
  if (Array.isArray(v)) return v.map((x) => String(x).trim()).filter(Boolean);
  const s = first(v);
  return s ? s.split('\\').map((x) => x.trim()).filter(Boolean) : [];
}

function num(v: unknown): number | undefined {
  const s = first(v);
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
}

/** A C-FIND on one association; resolves with the matches' data sets. */
async function find(peer: DicomPeer, level: 'STUDY' | 'IMAGE', keys: Elements, timeouts: AssociationTimeouts): Promise<Elements[]> {
  const assoc = await ScuAssociation.open(peer, [{ abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }], timeouts);
  try {
    const ctx = assoc.acceptedContext(STUDY_ROOT_FIND);
    if (!ctx) throw new QueryError(`${peer.calledAet}@${peer.host}:${peer.port} does not accept Study Root C-FIND`, 'refused');
    const request = new requests.CFindRequest();
    request.setDataset(new Dataset({ ...keys, QueryRetrieveLevel: level }, ctx.transferSyntax));
    let responses: DimseResponse[];
    try {
      responses = await assoc.request(request);
    } catch (err) {
      throw new QueryError(`C-FIND: ${(err as Error).message}`, 'no-response');
    }
    const last = responses[responses.length - 1];
    const status = last?.getStatus() ?? -1;
    if (statusClass(status) !== 'success') {
      const comment = (last as unknown as { getErrorComment?: () => string })?.getErrorComment?.();
      throw new QueryError(`C-FIND failed: ${statusText(status)}${comment ? ` (${comment})` : ''}`, 'failed');
    }
    return responses
      .filter((r) => statusClass(r.getStatus()) === 'pending')
      .map((r) => (r.getDataset()?.getElements() ?? {}) as Elements);
  } finally {
    await assoc.release(5_000).catch(() => assoc.abort());
  }
}

/** Studies matching the query (at least one key must be given). */
export async function findStudies(peer: DicomPeer, q: StudyQuery, timeouts: AssociationTimeouts = {}): Promise<StudyMatch[]> {
  if (!q.studyUid && !q.accession && !q.patientId) throw new Error('a study query needs a Study Instance UID, an accession number or a patient ID');
  const keys: Elements = {
    StudyInstanceUID: q.studyUid ?? '',
    AccessionNumber: q.accession ?? '',
    PatientID: q.patientId ?? '',
    NumberOfStudyRelatedInstances: '',
    NumberOfStudyRelatedSeries: '',
    ModalitiesInStudy: '',
  };
  const found = await find(peer, 'STUDY', keys, timeouts);
  const out = new Map<string, StudyMatch>();
  for (const e of found) {
    const uid = first(e.StudyInstanceUID);
    if (!uid) continue;
    // A PACS that ignores a key must not widen the match: check what it answered.
    if (q.studyUid && uid !== q.studyUid) continue;
    if (q.accession && first(e.AccessionNumber) !== undefined && first(e.AccessionNumber) !== q.accession) continue;
    if (q.patientId && first(e.PatientID) !== undefined && first(e.PatientID) !== q.patientId) continue;
    out.set(uid, { studyUid: uid, instances: num(e.NumberOfStudyRelatedInstances), series: num(e.NumberOfStudyRelatedSeries), modalities: list(e.ModalitiesInStudy) });
  }
  return [...out.values()];
}

/** The SOP classes of a study's instances (IMAGE-level C-FIND); empty when the PACS does not say. */
export async function findSopClasses(peer: DicomPeer, studyUid: string, timeouts: AssociationTimeouts = {}): Promise<string[]> {
  const found = await find(peer, 'IMAGE', { StudyInstanceUID: studyUid, SeriesInstanceUID: '', SOPInstanceUID: '', SOPClassUID: '' }, timeouts);
  return [...new Set(found.map((e) => first(e.SOPClassUID)).filter((x): x is string => x !== undefined))].sort();
}
