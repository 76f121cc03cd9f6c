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
export * from './destination.js';
export * from './types.js';
export * from './retry.js';
export * from './deliver.js';
export * from './files.js';
export * from './outbox.js';
export * from './records.js';
export * from './open.js';
export type { DicomTransportOptions } from './dicom.js';
export type { SftpTransportOptions, VerifyMode } from './sftp.js';
