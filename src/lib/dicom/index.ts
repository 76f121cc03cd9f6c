/**
 * The DICOM core: element index, header reading, byte-preserving edits, dictionary, UIDs,
 * character sets. See docs/dicom-core.md.
 */
export { isValidUid, isPathSafeUid } from './uid.js';
export { DicomParseError } from './errors.js';
export type { DicomHeader } from './header.js';
export { Header, ByteStore } from './header.js';
export type { DicomElement, Fragment, ItemRange } from './types.js';
export { UNDEFINED_LENGTH } from './types.js';
export { parseDicom, readHeader, verifyDicomFile, indexFile, readHeaderFull } from './read.js';
export { lookupKeyword, lookupTag, parseTagKey, keywordOf, implicitVr } from './dictionary.js';
export { formatTag, tagHex, isPrivateTag, isPrivateCreator } from './tags.js';
export { TS, encodingOf } from './transfer-syntax.js';
export { decodeText, encodeText } from './charset.js';
export { rewriteDicom } from './rewrite.js';
export { rewriteFiles } from './batch.js';
export type { BatchOptions, BatchStats, RewriteJob, RewriteOutcome } from './batch.js';
export type { ByteSink, Output } from './write.js';
export type { EditDecision, ElementContext, RewriteOptions, RewriteResult, RewriteSource, SetEntry } from './rewrite.js';
export { encodeValue, encodeValueFor, formatDS } from './encode.js';
export type { Value } from './encode.js';
