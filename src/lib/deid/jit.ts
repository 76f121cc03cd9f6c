import { setFlagsFromString } from 'node:v8';

/**
 * V8's optimizing compiler, tuned for a batch of a few thousand files. By default V8 (11.x,
 * Node 20) optimizes a function after about 66 KB of its bytecode has run: in a run of
 * 1,000 files nearly every function of the parser, the rewrite and the profile gets
 * compiled by TurboFan, often twice (after a deoptimization), on a background thread that
 * competes with the work for the machine's cores. Measured on 1,000 files (2 cores,
 * alternating runs, medians): TurboFan was about a third of the process's CPU time, and the
 * optimized code did not win it back within the run. With a budget six times larger only
 * the hottest functions (which run for every element) are optimized: 17% less CPU, the
 * same wall time; a long batch still reaches optimized code for what is hot.
 *
 * Only on the V8 line this was measured on: other versions (Node 22's Maglev) tier up
 * differently, and a flag V8 does not know must not be set.
 */
const MEASURED_V8 = /^11\./;
const BUDGET = 400_000;

let done = false;

export function tuneJitForBatch(): void {
  if (done || !MEASURED_V8.test(process.versions.v8)) return;
  done = true;
  setFlagsFromString(`--interrupt-budget=${BUDGET}`);
}
