import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../site/atomic.js';
import { loadOrCreateKey } from '../route/private-file.js';
import type { ArrivalSink, ResultSink } from '../route/sink.js';
import type { StudyInfo } from '../route/study.js';
import type { TransferRequest, TransferResult } from '../transfer/requests.js';
import type { RedcapClient, RedcapRow } from './client.js';

/**
 * FIONA's Incoming project as a sink: one record per study (record ID study_instance_uid),
 * a repeating `series` instrument per series, a repeating `transfers` instrument per
 * transfer key (project, pseudonym, event). PatientID and PatientName are written only as
 * keyed hashes (HMAC-SHA256, key in <site>/state/redcap/hash.key, never sent), so REDCap
 * can tell two studies of one patient apart from two patients without learning who it is.
 * FIONA wrote plain SHA-256 hashes, which a list of hospital numbers reverses.
 */
function dateTime(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function instanceOf(r: RedcapRow): number {
  const n = Number(r.redcap_repeat_instance);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export class IncomingSink implements ArrivalSink, ResultSink {
  readonly origin: string;
  private key?: Buffer;

  constructor(private readonly client: RedcapClient, private readonly stateDir: string, private readonly now: () => Date = () => new Date()) {
    this.origin = `REDCap incoming project at ${client.url}`;
  }

  private async hash(value: string): Promise<string> {
    this.key ??= await loadOrCreateKey(join(this.stateDir, 'redcap', 'hash.key'));
    return createHmac('sha256', this.key).update(value).digest('hex');
  }

  private async rowsOf(study: string, fields: string[]): Promise<RedcapRow[]> {
    return this.client.exportRecords({ records: [study], fields: ['study_instance_uid', ...fields] });
  }

  /**
   * What was last written for a study, so `fiona-route --scan` from cron does not re-send
   * every study to REDCap every time (FIONA's populateIncoming added only new series).
   */
  private markerPath(study: string): string {
    return join(this.stateDir, 'redcap', 'incoming', `${study}.json`);
  }

  private fingerprint(study: StudyInfo): string {
    const series = study.series.map((s) => [s.uid, s.files.length, s.classifyTypes]);
    return createHash('sha256').update(JSON.stringify([this.client.url, series])).digest('hex');
  }

  async studyArrived(study: StudyInfo): Promise<void> {
    const fp = this.fingerprint(study);
    try {
      const m = JSON.parse(await readFile(this.markerPath(study.uid), 'utf8')) as { fingerprint?: string };
      if (m.fingerprint === fp) return;
    } catch {
      // no marker yet (or unreadable): write the study
    }
    await this.writeStudy(study);
    await writeJsonAtomic(this.markerPath(study.uid), { fingerprint: fp, time: this.now().toISOString() });
  }

  private async writeStudy(study: StudyInfo): Promise<void> {
    const existing = await this.rowsOf(study.uid, ['series_instance_uid']);
    const known = new Map<string, number>();
    let max = 0;
    for (const r of existing) {
      if (r.redcap_repeat_instrument !== 'series') continue;
      const n = instanceOf(r);
      max = Math.max(max, n);
      if (r.series_instance_uid) known.set(r.series_instance_uid, n);
    }
    const rows: Array<Record<string, string | number>> = [{
      study_instance_uid: study.uid,
      study_description: study.studyDescription,
      study_date: study.studyDate,
      study_time: study.studyTime,
      study_institution_name: study.institution,
      study_patient_name: await this.hash(study.patientName),
      study_patient_id: await this.hash(study.patientId),
      study_aetitle_sender: study.calling,
      study_aetitle_addressed: study.called,
      study_accession_number: study.accessionNumber,
      incoming_studies_complete: 2,
    }];
    for (const s of study.series) {
      const meta = s.meta ?? {};
      const text = (k: string): string => (typeof meta[k] === 'string' || typeof meta[k] === 'number' ? String(meta[k]) : '');
      rows.push({
        study_instance_uid: study.uid,
        redcap_repeat_instrument: 'series',
        redcap_repeat_instance: known.get(s.uid) ?? ++max,
        series_instance_uid: s.uid,
        series_description: s.description ?? '',
        series_date: text('SeriesDate') || study.studyDate,
        series_time: text('SeriesTime') || study.studyTime,
        series_num_files: s.files.length,
        series_sequence_name: text('SequenceName'),
        series_classify_types: JSON.stringify(s.classifyTypes),
        series_complete: 2,
      });
    }
    await this.client.importRecords(rows, 'normal');
  }

  /** The `transfers` instance of the request's key, made if there is none yet. */
  private async transferInstance(request: TransferRequest, create: boolean): Promise<number> {
    if (request.redcapInstance !== undefined) return request.redcapInstance;
    const rows = await this.rowsOf(request.study, ['transfer_project_name', 'transfer_name', 'transfer_event_name']);
    let max = 0;
    for (const r of rows) {
      if (r.redcap_repeat_instrument !== 'transfers') continue;
      const n = instanceOf(r);
      max = Math.max(max, n);
      if (r.transfer_project_name === request.project && r.transfer_name === request.pseudonym && (r.transfer_event_name ?? '') === request.event) return n;
    }
    const instance = max + 1;
    if (create) await this.writeRequested(request, instance);
    return instance;
  }

  private async writeRequested(request: TransferRequest, instance: number): Promise<void> {
    const row: Record<string, string | number> = {
      study_instance_uid: request.study,
      redcap_repeat_instrument: 'transfers',
      redcap_repeat_instance: instance,
      transfer_requested_date: dateTime(this.now()),
      transfer_project_name: request.project,
      transfer_name: request.pseudonym,
    };
    if (request.event !== '') row.transfer_event_name = request.event;
    await this.client.importRecords([row], 'normal');
  }

  async transferRequested(request: TransferRequest): Promise<number> {
    return this.transferInstance(request, true);
  }

  async transferFinished(request: TransferRequest, result: TransferResult): Promise<void> {
    const instance = await this.transferInstance(request, false);
    const ok = result.status === 'done' || result.status === 'sent';
    const anonError = !ok && /^anonymi[sz]/i.test(result.error ?? '');
    const row: Record<string, string | number> = {
      study_instance_uid: request.study,
      redcap_repeat_instrument: 'transfers',
      redcap_repeat_instance: instance,
      transfer_project_name: request.project,
      transfer_name: request.pseudonym,
      transfer_event_name: request.event,
      transfer_error___1: anonError ? 1 : 0,
      transfer_error___2: !ok && !anonError ? 1 : 0,
      // fiona never rewrites pixel data (FIONA's "performed pixel anonymization" flag).
      transfer_error___3: 0,
      transfer_error_message: ok ? '' : `attempt ${result.attempts}: ${result.error ?? 'unknown error'}`,
      transfers_complete: ok ? 2 : 1,
    };
    if (ok) {
      row.transfer_date = dateTime(new Date(result.finished ?? this.now()));
      row.transfer_mapped_uid = result.mappedStudyUid ?? '';
    }
    // overwrite: a success must clear the error message and flags of an earlier attempt.
    await this.client.importRecords([row], 'overwrite');
  }
}
