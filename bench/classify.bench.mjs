#!/usr/bin/env node
// fiona-classify side by side with pydicom, on the same 10,000 synthetic MR instances
// (4 studies x 5 series x 500, in a site's archive/ as fiona-receive stores them):
//  1. fiona-classify (the command, backfilling archive/ with the shipped rules: header read,
//     raw/ and participants/ links, series JSON, events) vs pydicom reading the same headers
//     (dcmread stop_before_pixels, four values accessed)                           (bar 2x)
//  2. fiona-detect-study fed the 10,000 classified events: how long after each study's last
//     instance its study-complete event comes                              (bar quiet + 1 s)
// Rounds alternate between the two sides; each side is timed as a whole process (start-up
// and imports included on both sides); the best round of each counts.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PER_SERIES = Number(process.env.BENCH_INSTANCES ?? 500);
const PY = '/usr/bin/python3';
const QUIET_MS = 2000;

function time(cmd, args, opts = {}) {
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr?.slice(0, 2000)}`);
  return { ms, stdout: r.stdout };
}

const work = mkdtempSync(join(tmpdir(), 'fiona-bench-classify-'));
try {
  // ---- data: fiona-synth, moved into <site>/archive/<Study>/<Series>/<SOP>.dcm ----
  const synth = join(work, 'synth');
  execFileSync(join(ROOT, 'bin/fiona-synth'), ['--out', synth, '--patients', '4', '--series', '5', '--instances', String(PER_SERIES), '--rows', '128', '--no-fsync', '--quiet'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const site = join(work, 'site');
  const files = [];
  for (const patient of readdirSync(synth)) {
    for (const study of readdirSync(join(synth, patient))) {
      for (const series of readdirSync(join(synth, patient, study))) {
        const dir = join(site, 'archive', study, series);
        mkdirSync(dir, { recursive: true });
        for (const f of readdirSync(join(synth, patient, study, series))) {
          renameSync(join(synth, patient, study, series, f), join(dir, f));
          files.push(join(dir, f));
        }
      }
    }
  }
  const list = join(work, 'files.txt');
  writeFileSync(list, files.join('\n'));
  console.log(`data: ${files.length} instances in 20 series (fiona-synth, 128x128 MR), in ${site}/archive`);

  const pyRead = `
import sys, pydicom
files = open(sys.argv[1]).read().split('\\n')
n = 0
for f in files:
    d = pydicom.dcmread(f, stop_before_pixels=True)
    if d.StudyInstanceUID and d.SeriesInstanceUID and d.SOPInstanceUID and d.PatientID: n += 1
print(n)`;
  // Between timed runs (untimed): write back what the last run left dirty, so one side's
  // deferred disk writes (or the previous round's deletions) never land in the other's time.
  const settle = () => spawnSync('sync');
  const clean = () => {
    for (const d of ['raw', 'participants', 'studies', 'state', 'quarantine']) rmSync(join(site, d), { recursive: true, force: true });
    settle();
  };
  const fiona = [];
  const pydicom = [];
  let events = '';
  for (let round = 1; round <= ROUNDS; round++) {
    clean();
    const f = time(join(ROOT, 'bin/fiona-classify'), ['--site', site, '--quiet', join(site, 'archive')]);
    const n = f.stdout.split('\n').filter((l) => l.includes('"classified"')).length;
    if (n !== files.length) throw new Error(`fiona-classify classified ${n} of ${files.length}`);
    events = f.stdout;
    fiona.push(f.ms);
    settle();
    const p = time(PY, ['-c', pyRead, list]);
    if (Number(p.stdout.trim()) !== files.length) throw new Error(`pydicom read ${p.stdout.trim()} of ${files.length}`);
    pydicom.push(p.ms);
    console.log(`round ${round}: fiona-classify ${(files.length / (f.ms / 1000)).toFixed(0)} files/s, pydicom ${(files.length / (p.ms / 1000)).toFixed(0)} files/s`);
  }
  const bf = Math.min(...fiona);
  const bp = Math.min(...pydicom);
  console.log(`fiona-classify (read, link, rules, series JSON, events): ${(files.length / (bf / 1000)).toFixed(0)} files/s (best of ${ROUNDS}, ${(bf / 1000).toFixed(2)} s)`);
  console.log(`pydicom dcmread(stop_before_pixels=True):                ${(files.length / (bp / 1000)).toFixed(0)} files/s (best of ${ROUNDS}, ${(bp / 1000).toFixed(2)} s)`);
  console.log(`RATIO classify vs pydicom header read: ${(bp / bf).toFixed(2)}x (bar 2x)`);

  // ---- 2. study-complete latency: fiona-classify | fiona-detect-study, live ----
  // A second site (no archive/ of its own: its raw/ links point into the first one), so the
  // detector's start-up look at the site finds nothing old to report.
  const site2 = join(work, 'site2');
  const detect = spawn(join(ROOT, 'bin/fiona-detect-study'), ['--site', site2, '--quiet', `${QUIET_MS}ms`], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((r) => setTimeout(r, 1500)); // let it start first
  const last = new Map();
  const latencies = [];
  const lineReader = (stream, onLine) => {
    let buf = '';
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  };
  const done = new Promise((resolve) => {
    lineReader(detect.stdout, (l) => {
      const e = JSON.parse(l);
      if (e.event === 'study-complete') latencies.push(Date.parse(e.time) - last.get(e.study));
      if (latencies.length === 4) resolve();
    });
  });
  const classify = spawn(join(ROOT, 'bin/fiona-classify'), ['--site', site2, '--quiet', join(site, 'archive')], { stdio: ['ignore', 'pipe', 'inherit'] });
  lineReader(classify.stdout, (l) => {
    const e = JSON.parse(l);
    last.set(e.study, Math.max(last.get(e.study) ?? 0, Date.parse(e.time)));
    detect.stdin.write(`${l}\n`);
  });
  await done;
  detect.stdin.end();
  await new Promise((r) => detect.on('close', r));
  const worst = Math.max(...latencies);
  console.log(`detect-study: study-complete ${latencies.map((x) => (x / 1000).toFixed(2)).join(' s, ')} s after each study's last instance (quiet ${QUIET_MS / 1000} s)`);
  console.log(`RATIO study-complete latency vs quiet + 1 s: ${((QUIET_MS + 1000) / worst).toFixed(2)}x (bar 1x)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
