#!/usr/bin/env node
// Benchmark of fiona-zip-export's archive stage against the standard tools, same data, one
// run, alternating rounds:
//   store      fiona (write .part, read back + CRC check, MD5, publish)  vs  zip -r -0
//   deflate 1  fiona level 1                                            vs  zip -r -1
//   AES-256    fiona AES (store and level 1)                            vs  7z a -tzip -mem=AES256 -mx0 / -mx1
// on a 1,000-instance synthetic study (fiona-synth, 256x256 MR, ~130 MB). Then peak RSS of
// the archive stage on a multi-GB input (hard links to the same instances, plus a 1 GiB
// instance that takes the streaming path), and the whole export (de-identification, layout,
// archive) of the 1,000 instances for information.
//
// fiona runs as a child process, like the other tools (process start-up counted on both
// sides). Info-ZIP neither verifies nor hashes its output; fiona does both, so the ratio
// is conservative. Env: BENCH_ROUNDS (default 3), BENCH_BIG_LINKS (default 20000, 0 = skip).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, linkSync, writeFileSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BIG_LINKS = Number(process.env.BENCH_BIG_LINKS ?? 20000);
const PASSWORD = 'benchmark password 1';

for (const bin of ['zip', '7z', '/usr/bin/time']) {
  if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) {
    console.error(`${bin} is missing: apt-get install -y zip p7zip-full time`);
    process.exit(2);
  }
}

const work = mkdtempSync(join(tmpdir(), 'fiona-bench-export-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
process.on('SIGINT', () => process.exit(130));

/** Run a command under /usr/bin/time; returns seconds and peak RSS (MB). */
function timed(cmd, args, opts = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const lines = r.stderr.trim().split('\n');
  const [rss, user, sys] = lines[lines.length - 1].split(' ').map(Number);
  return { seconds, rssMB: rss / 1024, cpu: user + sys, stdout: r.stdout };
}

function dirBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath ?? e.path, e.name)).size;
  return n;
}

// The archive stage exactly as fiona-zip-export runs it (dist/lib/export/archive.js).
const FIONA_ARCHIVE = `
import { buildArchive } from ${JSON.stringify(join(ROOT, 'dist/lib/export/archive.js'))};
const [stage, out, name, level, pw] = process.argv.slice(1);
const r = await buildArchive({ stageDir: stage, outDir: out, name, level: Number(level), password: pw ? Buffer.from(pw) : undefined });
console.log(JSON.stringify({ bytes: r.bytes, md5: r.md5, entries: r.entries }));
`;

function fiona(stage, level, password) {
  const out = join(work, 'out-fiona');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  return timed(process.execPath, ['--input-type=module', '-e', FIONA_ARCHIVE, stage, out, 'bench', String(level), password ?? '']);
}

function infozip(stage, level) {
  const out = join(work, 'iz.zip');
  rmSync(out, { force: true });
  return timed('zip', ['-q', '-r', `-${level}`, out, '.'], { cwd: stage });
}

/** What FIONA's script amounted to, and what fiona does: archive, checksum file, test read. */
function infozipChecked(stage, level) {
  const out = join(work, 'izc.zip');
  rmSync(out, { force: true });
  return timed('sh', ['-c', `zip -q -r -${level} "$1" . && md5sum -b "$1" > "$1.md5" && unzip -tq "$1" > /dev/null`, 'sh', out], { cwd: stage });
}

function sevenzip(stage, level) {
  const out = join(work, '7z.zip');
  rmSync(out, { force: true });
  return timed('7z', ['a', '-bd', '-bso0', '-tzip', '-mem=AES256', `-mx${level}`, `-p${PASSWORD}`, out, '.'], { cwd: stage });
}

console.log('generating a 1,000-instance study with fiona-synth (256x256 MR)...');
const study = join(work, 'study');
execFileSync(join(ROOT, 'bin/fiona-synth'), ['--out', study, '--patients', '1', '--series', '10', '--instances', '100', '--rows', '256', '--no-fsync', '--quiet'], { stdio: 'inherit' });
const bytes = dirBytes(study);
console.log(`${(bytes / 1e6).toFixed(1)} MB in 1000 files; ${ROUNDS} rounds, alternating; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')} on ${(await import('node:os')).cpus().length} CPUs\n`);

const pairs = [
  { what: 'store (level 0) vs zip -r -0', bar: 1, a: () => fiona(study, 0), b: () => infozip(study, 0), bName: 'Info-ZIP zip -0' },
  { what: 'deflate level 1 vs zip -r -1', bar: 1, a: () => fiona(study, 1), b: () => infozip(study, 1), bName: 'Info-ZIP zip -1' },
  { what: 'store vs zip -0 + md5sum + unzip -t (same work)', a: () => fiona(study, 0), b: () => infozipChecked(study, 0), bName: 'zip+md5+test' },
  { what: 'deflate 1 vs zip -1 + md5sum + unzip -t (same work)', a: () => fiona(study, 1), b: () => infozipChecked(study, 1), bName: 'zip+md5+test' },
  { what: 'AES-256 store vs 7z -mem=AES256 -mx0', a: () => fiona(study, 0, PASSWORD), b: () => sevenzip(study, 0), bName: '7z AES -mx0' },
  { what: 'AES-256 level 1 vs 7z -mem=AES256 -mx1', a: () => fiona(study, 1, PASSWORD), b: () => sevenzip(study, 1), bName: '7z AES -mx1' },
];

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
let belowBar = 0;
for (const p of pairs) {
  const ta = [];
  const tb = [];
  const ca = [];
  const cb = [];
  let rssA = 0;
  let rssB = 0;
  for (let i = 0; i < ROUNDS; i++) {
    // alternate who goes first, so neither always meets a cold or a warm cache
    const order = i % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
    for (const who of order) {
      spawnSync('sync');
      const r = p[who]();
      if (who === 'a') ta.push(r.seconds), ca.push(r.cpu), (rssA = Math.max(rssA, r.rssMB));
      else tb.push(r.seconds), cb.push(r.cpu), (rssB = Math.max(rssB, r.rssMB));
    }
  }
  const a = median(ta);
  const b = median(tb);
  const ratio = b / a;
  console.log(`${p.what}`);
  console.log(`  fiona         ${(bytes / 1e6 / a).toFixed(1).padStart(7)} MB/s  (median ${a.toFixed(3)} s wall, ${median(ca).toFixed(2)} s CPU, peak RSS ${rssA.toFixed(0)} MB)`);
  console.log(`  ${p.bName.padEnd(13)} ${(bytes / 1e6 / b).toFixed(1).padStart(7)} MB/s  (median ${b.toFixed(3)} s wall, ${median(cb).toFixed(2)} s CPU, peak RSS ${rssB.toFixed(0)} MB)`);
  console.log(`RATIO ${p.what}: ${ratio.toFixed(2)}x${p.bar ? ` (bar ${p.bar}x)` : ''}\n`);
  if (p.bar && ratio < p.bar) belowBar++;
}

// Peak RSS on a large input: hard links to the same instances (no extra disk) and one
// 1 GiB instance (sparse) that is streamed rather than read whole.
if (BIG_LINKS > 0) {
  const big = join(work, 'big');
  const files = [];
  for (const e of readdirSync(study, { withFileTypes: true, recursive: true })) if (e.isFile()) files.push(join(e.parentPath ?? e.path, e.name));
  for (let i = 0; i < BIG_LINKS; i++) {
    const d = join(big, `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) mkdirSync(d, { recursive: true });
    linkSync(files[i % files.length], join(d, `f${i}.dcm`));
  }
  const huge = join(big, 'huge.dcm');
  const fd = openSync(huge, 'w');
  writeSync(fd, Buffer.from('DICM'), 0, 4, 2 ** 30 - 4);
  closeSync(fd);
  const bigBytes = dirBytes(big);
  for (const level of [0, 1]) {
    const r = fiona(big, level);
    console.log(`large input, level ${level}: ${(bigBytes / 1e9).toFixed(2)} GB (${BIG_LINKS + 1} files) in ${r.seconds.toFixed(1)} s, ${(bigBytes / 1e6 / r.seconds).toFixed(0)} MB/s, peak RSS ${r.rssMB.toFixed(0)} MB (bound 200 MB)`);
    console.log(`RSS archive stage, level ${level}, ${(bigBytes / 1e9).toFixed(1)} GB: ${r.rssMB.toFixed(0)} MB (bar < 200 MB)`);
    if (r.rssMB >= 200) belowBar++;
    rmSync(join(work, 'out-fiona'), { recursive: true, force: true });
  }
  rmSync(big, { recursive: true, force: true });
  console.log('');
}

// The whole export (de-identification, layout, manifest, archive), for information.
{
  const rules = join(work, 'BENCH.json');
  const key = join(work, 'bench.key');
  writeFileSync(key, 'a'.repeat(64));
  writeFileSync(rules, JSON.stringify({ name: 'BENCH', profile: 'basic', secretFile: key, pseudonym: { unmapped: 'derive' } }));
  const out = join(work, 'out-export');
  mkdirSync(out);
  try {
    const r = timed(join(ROOT, 'bin/fiona-zip-export'), ['--project', rules, '--folder', study, '--out', out, '--level', '1', '--quiet', '--json']);
    const report = JSON.parse(r.stdout);
    console.log(`whole export (de-identify + layout + deflate 1 + verify + md5): ${report.instances} instances in ${r.seconds.toFixed(2)} s = ${(report.instances / r.seconds).toFixed(0)} files/s, ${(bytes / 1e6 / r.seconds).toFixed(1)} MB/s, peak RSS ${r.rssMB.toFixed(0)} MB`);
    console.log(`  stages (s): ${Object.entries(report.stages).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } catch (err) {
    // informational only: the archive stage above is what the bar is about
    console.log(`whole export failed: ${String(err.message).split('\n').filter((l) => /error|reason/i.test(l)).join(' ').slice(0, 400)}`);
  }
}

process.exitCode = belowBar > 0 ? 1 : 0;
