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
 * The same call also tunes the old generation's growth for a batch (see below).
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
  // The old generation may grow to 2x what survived the last full collection, not V8's
  // default of up to 4x. A batch keeps about 9 MB alive (16 files in flight, the rules, the
  // caches), but the objects of files in flight that outlive two scavenges are promoted and
  // die soon after; with the default factor they piled up to 30-40 MB before the next full
  // collection, a sawtooth whose highest tooth (and so the peak RSS) depended on how long
  // the run was: 118-124 MB for 4,000 files, 128-140 MB for 40,000 distinct ones. Read by
  // V8 at every full collection, so setting it now takes effect. Measured (5 alternating
  // pairs, 4,000 files): the same user CPU (median 2.80 s against 2.92 s), peak RSS 116
  // against 123 MB; 122 MB for 40,000 distinct files.
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

const HEAP_GROWING_PERCENT = 100;
