#!/usr/bin/env node
// fiona-receive vs DCMTK storescp, side by side in one run.
//
//  1. Throughput: DCMTK storescu (TCP_NODELAY=1) sends the same 1,000 synthetic 256x256 MR
//     instances (about 130 MB, from fiona-synth) to fiona-receive and to storescp, alternating,
//     ROUNDS rounds (default 5, at least 3). Within a round the 1,000 files go in 4 batches of 250 (one
//     storescu association each), fiona and storescp taking turns batch by batch, so that a
//     machine shared with other work slows both alike. Prints files/s of each per round, the
//     medians, RATIO receive files/s vs storescp = the median of the rounds' ratios (bar 0.8x),
//     and the CPU time each receiver
//     process used per 1,000 files (user+sys from /proc, independent of the machine's load).
//  2. Memory: peak RSS (VmHWM) of a fresh fiona-receive while it receives one 1 GB instance,
//     and while it receives 4 studies over 4 parallel associations (bound 200 MB each).
//
// Usage: node bench/receive.bench.mjs [--rounds N] [--instances N] [--big-mb N] [--keep]
// Needs the built dist/ (npm run build) and DCMTK (storescu, storescp).
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './ports.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = Math.max(3, opt('--rounds', 5));
const INSTANCES = opt('--instances', 1000);
const BIG_MB = opt('--big-mb', 1024);
const KEEP = args.includes('--keep');
const ENV = { ...process.env, TCP_NODELAY: '1', NO_COLOR: '1' };

for (const p of ['storescu', 'storescp']) {
  try {
    execFileSync('sh', ['-c', `command -v ${p}`], { stdio: 'ignore' });
  } catch {
    console.error(`${p} is not installed: apt-get install -y dcmtk`);
    process.exit(2);
  }
}
if (!existsSync(join(ROOT, 'dist/commands/receive.js'))) {
  console.error('dist/ is missing: run npm run build');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'fiona-bench-receive-'));
/** Receivers started here: stopped on any exit, so none outlives a failed run. */
const children = new Set();
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  if (!KEEP) rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function run(file, argv) {
  return new Promise((resolve, reject) => {
    const p = spawn(file, argv, { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${file} exited ${code}: ${err.slice(0, 500)}`))));
  });
}

function countFiles(dir) {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name));
    else if (!e.name.startsWith('.')) n++;
  }
  return n;
}

/** The series folders under a fiona-synth tree (patient/study/series). */
function listSeries(root) {
  const out = [];
  for (const p of readdirSync(root)) for (const st of readdirSync(join(root, p))) for (const se of readdirSync(join(root, p, st))) out.push(join(root, p, st, se));
  return out.sort();
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Peak resident set of a process so far (VmHWM), in MB. */
function peakRssMb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A server process started on `port`: tracked for cleanup, returned once the port answers. */
async function listening(p, port) {
  children.add(p);
  p.on('exit', () => children.delete(p));
  await waitForPort(port);
  return {
    port,
    pid: p.pid,
    stop: () =>
      new Promise((resolve) => {
        p.on('exit', resolve);
        p.kill('SIGTERM');
      }),
  };
}

async function startFiona(site, extra = []) {
  const port = await freePort();
  const p = spawn(process.execPath, [join(ROOT, 'bin/fiona-receive'), '--site', site, '--port', String(port), '--host', '127.0.0.1', '--aet', 'FIONA', '-q', ...extra], {
    env: ENV,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return listening(p, port);
}

async function startStorescp(dir) {
  const port = await freePort();
  execFileSync('mkdir', ['-p', dir]);
  const p = spawn('storescp', ['-aet', 'FIONA', '-od', dir, String(port)], { env: ENV, stdio: 'ignore' });
  return listening(p, port);
}

async function send(port, paths, extra = []) {
  const t0 = performance.now();
  await run('storescu', ['-aec', 'FIONA', '+sd', '+r', ...extra, '127.0.0.1', String(port), ...paths]);
  return (performance.now() - t0) / 1000;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// --- data ------------------------------------------------------------------------------------
const data = join(work, 'data');
const series = 8;
const perSeries = Math.ceil(INSTANCES / series);
console.log(`generating ${series * perSeries} synthetic 256x256 MR instances with fiona-synth ...`);
execFileSync(process.execPath, [join(ROOT, 'bin/fiona-synth'), '--out', data, '--patients', '1', '--series', String(series), '--instances', String(perSeries), '--rows', '256', '--seed', 'bench', '--no-fsync', '-q'], { env: ENV });
const total = countFiles(data);
const mb = Number(execFileSync('du', ['-sm', data]).toString().split('\t')[0]);
console.log(`${total} files, ${mb} MB`);

// --- throughput ------------------------------------------------------------------------------
const fionaSite = join(work, 'fiona-site');
const scpDir = join(work, 'storescp');
const fiona = await startFiona(fionaSite);
const scp = await startStorescp(scpDir);
const rates = { fiona: [], storescp: [] };
const cpuPer1000 = { fiona: [], storescp: [] };
const seriesDirs = listSeries(data);
const batches = [0, 1, 2, 3].map((b) => seriesDirs.filter((_, i) => i % 4 === b));
for (let round = 1; round <= ROUNDS; round++) {
  rmSync(join(fionaSite, 'archive'), { recursive: true, force: true });
  rmSync(scpDir, { recursive: true, force: true });
  execFileSync('mkdir', ['-p', join(fionaSite, 'archive'), scpDir]);
  const secs = { fiona: 0, storescp: 0 };
  const cpu = { fiona: 0, storescp: 0 };
  for (const [b, batch] of batches.entries()) {
    // Alternate who goes first, so neither always gets the warmer cache.
    const order = (round + b) % 2 === 1 ? ['fiona', 'storescp'] : ['storescp', 'fiona'];
    for (const who of order) {
      const target = who === 'fiona' ? fiona : scp;
      const c0 = cpuSeconds(target.pid);
      secs[who] += await send(target.port, batch);
      cpu[who] += cpuSeconds(target.pid) - c0;
    }
  }
  for (const who of ['fiona', 'storescp']) {
    const got = countFiles(who === 'fiona' ? join(fionaSite, 'archive') : scpDir);
    if (got !== total) throw new Error(`${who} stored ${got} of ${total} files`);
    rates[who].push(total / secs[who]);
    cpuPer1000[who].push((cpu[who] * 1000) / total);
    console.log(`round ${round} ${who.padEnd(8)} ${(total / secs[who]).toFixed(0).padStart(6)} files/s  ${(mb / secs[who]).toFixed(1).padStart(6)} MB/s  (${secs[who].toFixed(2)} s, receiver CPU ${cpu[who].toFixed(2)} s)`);
  }
}
const throughputRss = peakRssMb(fiona.pid);
await fiona.stop();
await scp.stop();
const f = median(rates.fiona);
const s = median(rates.storescp);
const roundRatios = rates.fiona.map((x, i) => x / rates.storescp[i]);
console.log(`median fiona-receive ${f.toFixed(0)} files/s, storescp ${s.toFixed(0)} files/s; per-round ratios ${roundRatios.map((r) => r.toFixed(2)).join(' ')}`);
console.log(`RATIO receive files/s vs storescp: ${median(roundRatios).toFixed(2)}x (bar 0.8x)`);
console.log(`receiver CPU per 1000 files (median): fiona-receive ${median(cpuPer1000.fiona).toFixed(2)} s, storescp ${median(cpuPer1000.storescp).toFixed(2)} s`);
console.log(`PEAK_RSS receive during throughput rounds: ${throughputRss.toFixed(0)} MB`);

// --- what --fsync costs (information, no bar) -----------------------------------------------
{
  const site = join(work, 'fsync-site');
  const r = await startFiona(site, ['--fsync']);
  const secs = await send(r.port, [data]);
  await r.stop();
  console.log(`fiona-receive --fsync: ${(total / secs).toFixed(0)} files/s (${secs.toFixed(2)} s; without: median ${f.toFixed(0)} files/s)`);
  rmSync(site, { recursive: true, force: true });
}

// --- memory: one big instance ----------------------------------------------------------------
if (BIG_MB > 0) {
  const big = join(work, 'big.dcm');
  await writeBigInstance(big, BIG_MB);
  const site = join(work, 'big-site');
  const r = await startFiona(site);
  const secs = await send(r.port, [big]);
  const rss = peakRssMb(r.pid);
  await r.stop();
  if (countFiles(join(site, 'archive')) !== 1) throw new Error('the big instance was not stored');
  console.log(`one ${BIG_MB} MB instance in ${secs.toFixed(1)} s (${(BIG_MB / secs).toFixed(0)} MB/s)`);
  console.log(`PEAK_RSS receive one ${BIG_MB} MB instance: ${rss.toFixed(0)} MB (bound 200 MB)`);
  rmSync(big, { force: true });
  rmSync(site, { recursive: true, force: true });
}

// --- memory: 4 studies at once ---------------------------------------------------------------
{
  const studies = join(work, 'studies');
  execFileSync(process.execPath, [join(ROOT, 'bin/fiona-synth'), '--out', studies, '--patients', '4', '--series', '4', '--instances', '50', '--rows', '256', '--seed', 'four', '--no-fsync', '-q'], { env: ENV });
  const patients = readdirSync(studies).map((p) => join(studies, p));
  const site = join(work, 'four-site');
  const r = await startFiona(site);
  const t0 = performance.now();
  await Promise.all(patients.map((p) => send(r.port, [p])));
  const secs = (performance.now() - t0) / 1000;
  const rss = peakRssMb(r.pid);
  await r.stop();
  const n = countFiles(join(site, 'archive'));
  if (n !== countFiles(studies)) throw new Error(`4 studies: stored ${n} of ${countFiles(studies)}`);
  console.log(`4 studies in parallel: ${n} files in ${secs.toFixed(1)} s (${(n / secs).toFixed(0)} files/s)`);
  console.log(`PEAK_RSS receive 4 studies in parallel: ${rss.toFixed(0)} MB (bound 200 MB)`);
}

/** A Secondary Capture instance with `mb` MB of native pixel data, written in 1 MB pieces. */
async function writeBigInstance(path, mbytes) {
  const el = (g, e, vr, v) => {
    let b = Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1');
    if (b.length % 2) b = Buffer.concat([b, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
    const h = Buffer.alloc(8);
    h.writeUInt16LE(g, 0);
    h.writeUInt16LE(e, 2);
    h.write(vr, 4, 'latin1');
    h.writeUInt16LE(b.length, 6);
    return Buffer.concat([h, b]);
  };
  const us = (n) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return b;
  };
  const SC = '1.2.840.10008.5.1.4.1.1.7';
  const sop = '1.2.826.0.1.3680043.9.7433.1000.1.1';
  const side = Math.floor(Math.sqrt((mbytes * 1024 * 1024) / 2));
  const pixelBytes = side * side * 2;
  const metaBody = Buffer.concat([
    (() => {
      const h = Buffer.alloc(12);
      h.writeUInt16LE(2, 0);
      h.writeUInt16LE(1, 2);
      h.write('OB', 4, 'latin1');
      h.writeUInt32LE(2, 8);
      return Buffer.concat([h, Buffer.from([0, 1])]);
    })(),
    el(2, 2, 'UI', SC),
    el(2, 3, 'UI', sop),
    el(2, 0x10, 'UI', '1.2.840.10008.1.2.1'),
    el(2, 0x12, 'UI', '1.2.826.0.1.3680043.9.7433.1'),
  ]);
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(metaBody.length);
  const pre = Buffer.alloc(132);
  pre.write('DICM', 128, 'latin1');
  const ds = Buffer.concat([
    el(8, 0x16, 'UI', SC),
    el(8, 0x18, 'UI', sop),
    el(8, 0x60, 'CS', 'OT'),
    el(0x20, 0x0d, 'UI', '1.2.826.0.1.3680043.9.7433.1000'),
    el(0x20, 0x0e, 'UI', '1.2.826.0.1.3680043.9.7433.1000.1'),
    el(0x28, 0x02, 'US', us(1)),
    el(0x28, 0x04, 'CS', 'MONOCHROME2'),
    el(0x28, 0x10, 'US', us(side)),
    el(0x28, 0x11, 'US', us(side)),
    el(0x28, 0x100, 'US', us(16)),
    el(0x28, 0x101, 'US', us(16)),
    el(0x28, 0x102, 'US', us(15)),
    el(0x28, 0x103, 'US', us(0)),
  ]);
  const pxHead = Buffer.alloc(12);
  pxHead.writeUInt16LE(0x7fe0, 0);
  pxHead.writeUInt16LE(0x10, 2);
  pxHead.write('OW', 4, 'latin1');
  pxHead.writeUInt32LE(pixelBytes, 8);
  const out = createWriteStream(path);
  out.write(Buffer.concat([pre, el(2, 0, 'UL', gl), metaBody, ds, pxHead]));
  const chunk = Buffer.alloc(1 << 20, 0x11);
  for (let left = pixelBytes; left > 0; left -= chunk.length) {
    if (!out.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())));
}
