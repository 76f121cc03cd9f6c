export * from './client.js';
export * from './tokens.js';
export * from './source.js';
export * from './sink.js';
