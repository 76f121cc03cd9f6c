/** fiona-synth's library: deterministic synthetic MR studies (see docs/fiona-synth.md). */
export { synthesize, resolveOptions, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './synthesize.js';
export type { SynthOptions, SynthFileInfo, SynthSummary, SynthSeriesSummary } from './synthesize.js';
export { synthPatient, synthStudy, identifyingValues, SPECIFIC_CHARACTER_SET } from './identity.js';
export type { Charset, SynthPatient, SynthStudy } from './identity.js';
export { SERIES_CYCLE, PROTOCOLS, isSeriesType } from './protocols.js';
export type { SeriesType, Protocol } from './protocols.js';
export { VENDORS } from './vendors.js';
export type { VendorName, VendorProfile } from './vendors.js';
export { MR_IMAGE_STORAGE, PRIVATE_CREATOR } from './instance.js';
export { TRANSFER_SYNTAX_UID, encodeDataset, encodeFileMeta } from './encode.js';
export type { Syntax, Element, Item, VR } from './encode.js';
export { uidFor, hash32, Rng, rngFor } from './random.js';
