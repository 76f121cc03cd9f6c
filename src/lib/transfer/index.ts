/**
 * Transfers: the request queue shared with fiona-route, and the runner that de-identifies,
 * sends and records. See docs/fiona-transfer.md.
 */
export * from './requests.js';
export * from './features.js';
export * from './anonymize.js';
export * from './runner.js';
export * from './status.js';
