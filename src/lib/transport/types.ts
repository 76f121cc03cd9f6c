/** What the transports share: a file to deliver and the result of delivering it. */

export interface SendFile {
  /** Absolute local path. */
  path: string;
  /** Name at the destination, '/'-separated and relative (SFTP: under the remote folder). */
  name: string;
}

/** The result of one attempt at one file. */
export interface AttemptResult {
  file: SendFile;
  ok: boolean;
  /** Delivered, but the peer said something worth reading (DICOM warning status). */
  warning?: string;
  /** Why it failed. */
  reason?: string;
  /** Whether another attempt may succeed (false: the local file itself is the problem). */
  retryable: boolean;
  /** Transport-specific facts for the event: sop, status, md5, remote path, verification. */
  details: Record<string, unknown>;
  bytes?: number;
}

/** The final result of a file after all attempts. */
export interface FileResult extends AttemptResult {
  attempts: number;
}

/** One destination. attempt() tries each file once and reports every file exactly once. */
export interface Transport {
  readonly url: string;
  attempt(files: SendFile[], onResult: (r: AttemptResult) => void, signal?: AbortSignal): Promise<void>;
  /** Release connections kept between attempts. */
  close(): Promise<void>;
}
