import type { StudyInfo } from './study.js';
import type { TransferRequest, TransferResult } from '../transfer/requests.js';

/**
 * Where arrivals and transfer results are written besides the local state: REDCap's
 * Incoming project (src/lib/redcap/sink.ts). Local state is always written first, so a sink
 * that fails loses nothing; the run reports it and exits 3.
 */
export interface ArrivalSink {
  readonly origin: string;
  /** Record the study and its series (identifying values only as keyed hashes). */
  studyArrived(study: StudyInfo): Promise<void>;
  /** Record that a transfer was requested; returns the sink's handle for it (REDCap repeat instance). */
  transferRequested(request: TransferRequest): Promise<number | undefined>;
}

export interface ResultSink {
  readonly origin: string;
  /** Record a transfer's outcome (done, or an attempt that failed). */
  transferFinished(request: TransferRequest, result: TransferResult): Promise<void>;
}
