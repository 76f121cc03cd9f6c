#!/usr/bin/env node
// npm run bench: run every bench/*.bench.mjs (or the ones named on the command line) in turn.
// Each benchmark runs fiona side by side with the standard tool on the same data in one run
// and prints its own ratio lines; this runner only sequences them and collects the summary.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);
const all = readdirSync(dir).filter((f) => f.endsWith('.bench.mjs')).sort();
const chosen = wanted.length ? all.filter((f) => wanted.some((w) => f.includes(w))) : all;
if (chosen.length === 0) {
  console.error(`no benchmark matches ${wanted.join(' ')}; have: ${all.join(' ')}`);
  process.exit(2);
}
let failed = 0;
for (const f of chosen) {
  console.log(`\n=== ${f}`);
  const r = spawnSync(process.execPath, [`${dir}${f}`], { stdio: 'inherit', env: { ...process.env, TCP_NODELAY: '1' } });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
