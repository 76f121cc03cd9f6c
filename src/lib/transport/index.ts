/**
 * Delivery targets for fiona-send (and fiona-transfer): dicom:// and sftp://.
 *
 *   const dest = parseDestination('dicom://PACS@10.0.0.5:104?calling=FIONA');
 *   const transport = openTransport(dest, { dicom: { associations: 4 } });
 *   const results = await deliver(transport, files, DEFAULT_RETRY, { onResult });
 *   await transport.close();
 *
 * Outbox mode (cron): runOutbox(transport, { outbox, sent, failed, policy }).
 * See docs/fiona-send.md.
 */
import { UsageError } from '../errors.js';
import type { Destination } from './destination.js';
import { DicomTransport, type DicomTransportOptions } from './dicom.js';
import { SftpTransport, type SftpTransportOptions } from './sftp.js';
import type { Transport } from './types.js';

export * from './destination.js';
export * from './types.js';
export * from './retry.js';
export * from './deliver.js';
export * from './files.js';
export * from './outbox.js';
export * from './records.js';
export { DicomTransport, describeDicomFile, type DicomTransportOptions } from './dicom.js';
export { SftpTransport, type SftpTransportOptions, type VerifyMode } from './sftp.js';

export interface TransportOptions {
  dicom?: DicomTransportOptions;
  sftp?: SftpTransportOptions;
}

export function openTransport(dest: Destination, opts: TransportOptions): Transport {
  if (dest.kind === 'dicom') return new DicomTransport(dest, opts.dicom);
  if (!opts.sftp) throw new UsageError(`${dest.url}: sftp needs --identity and --known-hosts`);
  return new SftpTransport(dest, opts.sftp);
}
