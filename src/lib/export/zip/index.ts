export { writeZip, ZipWriteError, type ZipSource, type ZipOptions, type ZipResult } from './writer.js';
export { verifyZip, ZipVerifyError, type ExpectedEntry, type VerifyOptions, type VerifyResult } from './verify.js';
export { md5File, md5sumLine } from './md5.js';
export type { EntryRecord } from './format.js';
