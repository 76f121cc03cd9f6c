import { UsageError } from '../errors.js';
import type { Destination } from './destination.js';
import type { DicomTransportOptions } from './dicom.js';
import type { SftpTransportOptions } from './sftp.js';
import type { AttemptResult, SendFile, Transport } from './types.js';

// A module of its own, apart from the index (which also loads the outbox and site modules):
// fiona-send loads only this before it connects, 12-22 ms sooner per run.

export interface TransportOptions {
  dicom?: DicomTransportOptions;
  sftp?: SftpTransportOptions;
}

/**
 * The transport for a destination. Its code (dcmjs-dimse, or ssh2) is loaded on the first
 * attempt: a cron job that sends over one of them does not pay for loading the other.
 */
export function openTransport(dest: Destination, opts: TransportOptions): Transport {
  if (dest.kind === 'sftp' && !opts.sftp) throw new UsageError(`${dest.url}: sftp needs --identity and --known-hosts`);
  return new LazyTransport(dest, opts);
}

class LazyTransport implements Transport {
  readonly url: string;
  private inner?: Promise<Transport>;

  constructor(
    private readonly dest: Destination,
    private readonly opts: TransportOptions,
  ) {
    this.url = dest.url;
  }

  private load(): Promise<Transport> {
    this.inner ??= (async (): Promise<Transport> => {
      const dest = this.dest;
      if (dest.kind === 'dicom') {
        const { DicomTransport } = await import('./dicom.js');
        return new DicomTransport(dest, this.opts.dicom);
      }
      const { SftpTransport } = await import('./sftp.js');
      return new SftpTransport(dest, this.opts.sftp!);
    })();
    return this.inner;
  }

  async attempt(files: SendFile[], onResult: (r: AttemptResult) => void, signal?: AbortSignal): Promise<void> {
    let t: Transport;
    try {
      t = await this.load();
    } catch (err) {
      for (const file of files) onResult({ file, ok: false, reason: (err as Error).message, retryable: false, details: {} });
      return;
    }
    await t.attempt(files, onResult, signal);
  }

  async close(): Promise<void> {
    if (this.inner) await (await this.inner.catch(() => undefined))?.close();
  }
}
