#!/usr/bin/env node
// fiona-anonymize against GDCM gdcmanon (PS3.15 basic profile, -e with a throwaway
// certificate) and against a pydicom script applying the same Table E.1-1, on the same
// 1,000 synthetic 256x256 MR instances (fiona-synth), rounds alternating in one run
// (the order rotating, `sync` before each run).
// Prints files/s of each, the RATIO lines (bar: 1x gdcmanon, 4x pydicom), and fiona's
// peak RSS. Not a timed test: numbers depend on the machine and on what else runs on it.
//
//   node bench/anonymize.bench.mjs            (or: npm run bench -- anonymize)
//   FIONA_BENCH_ROUNDS=7 FIONA_BENCH_FILES=2000 node bench/anonymize.bench.mjs
//
// gdcmanon and pydicom never fsync what they write; fiona by default fsyncs every output
// before it renames it into place. The bars compare like with like (fiona --no-fsync); the
// cost of fiona's default durability is printed beside them.
//   FIONA_BENCH_RSS_COPIES=80 ...   the memory check on 80 x the input (~10 GB of paths; hard links)
//   FIONA_BENCH_RSS_DISTINCT=40000  the memory check on distinct instances (small 64x64 ones,
//                                   every UID new: hard links repeat the same 1,000 UIDs, which
//                                   hid a cache that kept every SOP UID); 0 to skip
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.env.FIONA_BENCH_ROUNDS ?? 5);
const files = Number(process.env.FIONA_BENCH_FILES ?? 1000);
const pyRounds = Number(process.env.FIONA_BENCH_PY_ROUNDS ?? 1);
const fsyncRounds = Number(process.env.FIONA_BENCH_FSYNC_ROUNDS ?? 3);
const rssCopies = Number(process.env.FIONA_BENCH_RSS_COPIES ?? 4);
const rssDistinct = Number(process.env.FIONA_BENCH_RSS_DISTINCT ?? 10000);

function need(bin, pkg) {
  if (spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status !== 0 && !existsSync(bin)) {
    console.error(`${bin} is missing: apt-get install -y ${pkg}`);
    process.exit(2);
  }
}
need('gdcmanon', 'libgdcm-tools');
need('openssl', 'openssl');
need('/usr/bin/python3', 'python3-pydicom');
if (spawnSync('/usr/bin/python3', ['-c', 'import pydicom'], { stdio: 'ignore' }).status !== 0) {
  console.error('pydicom is missing for /usr/bin/python3: apt-get install -y python3-pydicom');
  process.exit(2);
}
if (!existsSync(join(root, 'dist/commands/anonymize.js'))) {
  console.error('build first: npx tsc -p .');
  process.exit(2);
}

const PYDICOM = String.raw`
# The same PS3.15 Table E.1-1 as fiona applies, with pydicom: one process, file by file.
import hashlib, hmac, json, os, sys
import pydicom
from pydicom.sequence import Sequence

table_file, secret_file, in_dir, out_dir = sys.argv[1:5]
table = json.load(open(table_file))
rules = {int(a['tag'], 16): a['basic'] for a in table['attributes']}
secret = open(secret_file, 'rb').read().rstrip(b'\r\n')
DUMMY = {'DA': '19000101', 'DT': '19000101000000', 'TM': '000000', 'DS': '0', 'IS': '0', 'AS': '000D'}
NUMBERS = ('US', 'SS', 'UL', 'SL', 'FL', 'FD')
uid_cache = {}

def new_uid(v):
    u = uid_cache.get(v)
    if u is None:
        h = bytearray(hmac.new(secret, v.encode(), hashlib.sha256).digest()[:16])
        h[6] = (h[6] & 0x0f) | 0x80
        h[8] = (h[8] & 0x3f) | 0x80
        u = uid_cache[v] = '2.25.' + str(int.from_bytes(h, 'big'))
    return u

def dummy(elem):
    if elem.VR == 'UI':
        return new_uid(str(elem.value))
    if elem.VR in ('OB', 'OW', 'UN'):
        return b'\0\0'
    if elem.VR in NUMBERS:
        return 0
    return DUMMY.get(elem.VR, 'ANONYMIZED')

def clean(ds):
    for elem in list(ds):
        tag = elem.tag
        if tag.is_private or ((tag >> 16) & 0xff00) in (0x5000, 0x6000):
            del ds[tag]
            continue
        code = rules.get(int(tag))
        if code is None:
            if elem.VR == 'SQ':
                for item in elem.value:
                    clean(item)
            continue
        empty = elem.value in (None, '', b'') or (elem.VR == 'SQ' and len(elem.value) == 0)
        if code == 'X':
            del ds[tag]
        elif code == 'Z':
            elem.value = Sequence() if elem.VR == 'SQ' else (None if elem.VR in NUMBERS else '')
        elif code in ('K', 'U') and elem.VR != 'SQ':
            if code == 'U' and not empty:
                elem.value = new_uid(str(elem.value))
        elif elem.VR == 'SQ':  # K, D, X/Z, X/D, Z/D, X/Z/D, X/Z/U*: kept, items de-identified
            for item in elem.value:
                clean(item)
        elif code == 'X/Z':
            elem.value = ''
        elif not empty:  # D, X/D, Z/D, X/Z/D
            elem.value = dummy(elem)

n = 0
for root, dirs, files in os.walk(in_dir):
    dirs.sort()
    for name in sorted(files):
        ds = pydicom.dcmread(os.path.join(root, name))
        clean(ds)
        ds.PatientIdentityRemoved = 'YES'
        ds.DeidentificationMethod = 'pydicom PS3.15 basic'
        sop = ds.SOPInstanceUID
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        target = os.path.join(out_dir, ds.StudyInstanceUID, ds.SeriesInstanceUID)
        os.makedirs(target, exist_ok=True)
        ds.save_as(os.path.join(target, sop + '.dcm'), write_like_original=True)
        n += 1
print(n)
`;

const dir = mkdtempSync(join(tmpdir(), 'fiona-bench-anonymize-'));
const cleanup = () => rmSync(dir, { recursive: true, force: true });
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function countFiles(d) {
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

// NODE_EXTRA_CA_CERTS (set on the development machine, for its proxy) makes Node 20 parse a
// whole CA bundle at every start (~40 ms of CPU); no tool here uses TLS and gdcmanon and
// pydicom never read it, so every tool runs without it (as in bench/send.bench.mjs).
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
if (process.env.NODE_EXTRA_CA_CERTS) console.log('(NODE_EXTRA_CA_CERTS is set here: the tools run without it; with it each fiona start costs ~40 ms more)');

/** Run a command under /usr/bin/time; wall seconds (measured here), CPU seconds and peak RSS in MB. */
function timed(cmd, args, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], { encoding: 'utf8', env: { ...BASE_ENV, ...env }, maxBuffer: 256 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const [rss, user, sys] = (r.stderr ?? '').trim().split('\n').at(-1).split(' ').map(Number);
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  return { seconds, rssMb: rss / 1024, cpu: user + sys, user, sys };
}

try {
  const input = join(dir, 'in');
  const perSeries = 100;
  const series = Math.max(1, Math.round(files / perSeries / 2));
  console.log(`generating ${2 * series * perSeries} instances of 256x256 with fiona-synth ...`);
  execFileSync(join(root, 'bin/fiona-synth'), ['--out', input, '--patients', '2', '--series', String(series), '--instances', String(perSeries), '--rows', '256', '--seed', 'bench', '--no-fsync', '-q']);
  const n = countFiles(input);
  const key = join(dir, 'secret.key');
  writeFileSync(key, 'bench-secret-0123456789abcdef0123456789\n', { mode: 0o600 });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-nodes', '-subj', '/CN=fiona-bench'], { stdio: 'ignore' });
  writeFileSync(join(dir, 'anon.py'), PYDICOM);
  const table = join(root, 'rules/deid/ps3.15-e1-1-2024b.json');

  const tools = {
    fiona: (out) => timed(join(root, 'bin/fiona-anonymize'), ['--out', out, '--secret-file', key, '--no-fsync', '-q', input]),
    gdcmanon: (out) => timed('gdcmanon', ['-e', '-c', join(dir, 'cert.pem'), '-r', '--continue', '-i', input, '-o', out]),
    pydicom: (out) => timed('/usr/bin/python3', [join(dir, 'anon.py'), table, key, input, out]),
    'fiona (fsync)': (out) => timed(join(root, 'bin/fiona-anonymize'), ['--out', out, '--secret-file', key, '-q', input]),
  };
  const limit = { pydicom: pyRounds, 'fiona (fsync)': fsyncRounds };
  const results = Object.fromEntries(Object.keys(tools).map((k) => [k, []]));
  const order = Object.keys(tools);
  for (let r = 0; r < rounds; r++) {
    // The order rotates from round to round, each run starts with no dirty pages of another
    // run's output pending (`sync` first, untimed), and outputs are removed only when the round
    // is over (freeing 130 MB on this ext4 with `discard` slows the creates that follow it).
    // Without these the tool after fiona paid for writing back fiona's output (gdcmanon took
    // 0.44-0.63 s after a sync, 1.0-1.1 s right after fiona): fiona looked ~1.5x faster than it is.
    const outs = [];
    for (let k = 0; k < order.length; k++) {
      const name = order[(k + r) % order.length];
      if (r >= (limit[name] ?? rounds)) continue;
      const out = join(dir, `out-${r}-${name.replace(/\W+/g, '_')}`);
      spawnSync('sync');
      const m = tools[name](out);
      const produced = countFiles(out);
      if (produced !== n) throw new Error(`${name} wrote ${produced} of ${n} files`);
      results[name].push(m);
      // User and system CPU apart: creating the output files is system time for every tool, and
      // on a busy ext4 without a journal it can be most of the run (see docs/fiona-anonymize.md).
      console.log(`round ${r + 1} ${name.padEnd(18)} ${(n / m.seconds).toFixed(0).padStart(6)} files/s  ${m.seconds.toFixed(2)} s  CPU ${m.cpu.toFixed(2)} s (user ${m.user.toFixed(2)}, system ${m.sys.toFixed(2)})  peak RSS ${m.rssMb.toFixed(0)} MB`);
      outs.push(out);
    }
    for (const out of outs) rmSync(out, { recursive: true, force: true });
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rate = (name) => n / median(results[name].map((m) => m.seconds));
  console.log('');
  // CPU time is the work done, whatever else shares the machine (fiona's is spread over the cores).
  const cpu = (name) => median(results[name].map((m) => m.cpu));
  const part = (name, k) => median(results[name].map((m) => m[k]));
  for (const name of order.filter((k) => results[k].length > 0)) console.log(`${name.padEnd(18)} ${rate(name).toFixed(0).padStart(6)} files/s (median of ${results[name].length}), CPU ${cpu(name).toFixed(2)} s (user ${part(name, 'user').toFixed(2)}, system ${part(name, 'sys').toFixed(2)})`);
  const peak = Math.max(...results.fiona.map((m) => m.rssMb));
  // The ratio of each round's pair (run back to back) is steadier on a shared machine than
  // the ratio of medians; both are printed.
  const pairRatios = results.fiona.map((m, k) => results.gdcmanon[k].seconds / m.seconds);
  console.log(`fiona/gdcmanon per round: ${pairRatios.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`RATIO fiona/gdcmanon files/s: ${median(pairRatios).toFixed(2)}x (bar 1x; median of the rounds' ratios, both without fsync)`);
  if (results.pydicom.length > 0) console.log(`RATIO fiona/pydicom files/s: ${(rate('fiona') / rate('pydicom')).toFixed(2)}x (bar 4x; both without fsync)`);
  // FIONA_BENCH_FSYNC_ROUNDS=0 (while iterating) leaves no fsync rounds: no line, not a crash.
  if (results['fiona (fsync)'].length > 0) {
    console.log(`RATIO fiona (fsync each output)/gdcmanon files/s: ${(rate('fiona (fsync)') / rate('gdcmanon')).toFixed(2)}x (fiona's default durability; gdcmanon does not fsync)`);
  }

  // Memory does not grow with the input: the same files under more paths (hard links, so the
  // disk holds one copy) must need the same peak RSS.
  const many = join(dir, 'many');
  for (let c = 0; c < rssCopies; c++) {
    for (const e of readdirSync(input, { withFileTypes: true, recursive: true })) {
      if (!e.isFile()) continue;
      const rel = join(e.parentPath, e.name).slice(input.length + 1);
      const target = join(many, String(c), rel);
      mkdirSync(join(target, '..'), { recursive: true });
      linkSync(join(e.parentPath, e.name), target);
    }
  }
  const bytesPer = Number(execFileSync('du', ['-sb', input], { encoding: 'utf8' }).split(/\s/)[0]);
  const big = timed(join(root, 'bin/fiona-anonymize'), ['--out', join(dir, 'out-many'), '--secret-file', key, '--no-fsync', '-q', many]);
  rmSync(join(dir, 'out-many'), { recursive: true, force: true });
  console.log(`fiona peak RSS: ${peak.toFixed(0)} MB for ${n} files (${(bytesPer / 1e9).toFixed(2)} GB), ${big.rssMb.toFixed(0)} MB for ${rssCopies * n} files (${((rssCopies * bytesPer) / 1e9).toFixed(2)} GB) (bound 200 MB)`);
  rmSync(many, { recursive: true, force: true });

  // The same with every instance distinct (new patients, studies, series and SOP UIDs): a
  // tenth of the files against all of them, 100 instances per series, 10 series per patient.
  if (rssDistinct > 0) {
    const rssOf = (count, tag) => {
      const d = join(dir, `distinct-${tag}`);
      const patients = Math.max(1, Math.round(count / 1000));
      execFileSync(join(root, 'bin/fiona-synth'), ['--out', d, '--patients', String(patients), '--series', '10', '--instances', '100', '--rows', '64', '--seed', `bench-${tag}`, '--no-fsync', '-q']);
      const files = countFiles(d);
      const out = join(dir, `out-distinct-${tag}`);
      const m = timed(join(root, 'bin/fiona-anonymize'), ['--out', out, '--secret-file', key, '--no-fsync', '-q', d]);
      rmSync(out, { recursive: true, force: true });
      rmSync(d, { recursive: true, force: true });
      return { files, rss: m.rssMb };
    };
    const small = rssOf(Math.max(1000, rssDistinct / 10), 'small');
    const large = rssOf(rssDistinct, 'large');
    console.log(`fiona peak RSS, distinct instances: ${small.rss.toFixed(0)} MB for ${small.files} files, ${large.rss.toFixed(0)} MB for ${large.files} files (${(large.rss - small.rss).toFixed(0)} MB more)`);
  }
} finally {
  cleanup();
}
