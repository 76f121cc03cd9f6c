/**
 * Routing: which research project an arrived study goes to, under which pseudonym and
 * event (rules model, validation, matching, coupling list, automatic IDs, the router).
 * See docs/fiona-route.md.
 */
export * from './types.js';
export * from './pattern.js';
export * from './parse.js';
export * from './source.js';
export * from './study.js';
export * from './match.js';
export * from './autoid.js';
export * from './router.js';
export * from './inputs.js';
export * from './open.js';
export type { ArrivalSink, ResultSink } from './sink.js';
