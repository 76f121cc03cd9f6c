export * from './atomic.js';
export * from './layout.js';
export * from './lock.js';
export * from './quarantine.js';
export * from './sanitize.js';
export * from './state-json.js';
export * from './if-exists.js';
