#!/usr/bin/env node
// The DICOM core side by side with the standard tools, on the same 1,000 synthetic MR files:
//  1. header reading: fiona readHeader vs pydicom dcmread(stop_before_pixels=True)  (bar 3x)
//  2. a 5-element edit of every file: fiona rewriteDicom vs DCMTK dcmodify (one process for
//     all files) and GDCM gdcmanon --dumb                                            (bar 1x the faster)
//  3. peak RSS of fiona editing one 2 GB file                                       (bar < 150 MB)
// Rounds alternate between the tools; each side times itself inside its own process
// (interpreter start-up and imports excluded on both sides) and the best round counts.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, cpSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist/lib/dicom/index.js');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const FILES = Number(process.env.BENCH_FILES ?? 1000);
const PY = '/usr/bin/python3';
const PARTS = (process.env.BENCH_PARTS ?? 'read,edit,big').split(',');

function listFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.dcm')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr?.slice(0, 2000)}`);
  return r.stdout;
}

function best(xs) {
  return Math.min(...xs);
}

const work = mkdtempSync(join(tmpdir(), 'fiona-bench-dicom-'));
try {
  // ---- data: fiona-synth, 1 patient, 4 series x 250 instances, 256 x 256 ----
  const data = join(work, 'data');
  const instances = Math.ceil(FILES / 4);
  execFileSync(join(ROOT, 'bin/fiona-synth'), ['--out', data, '--patients', '1', '--series', '4', '--instances', String(instances), '--rows', '256'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const files = listFiles(data).slice(0, FILES);
  const listFile = join(work, 'files.txt');
  spawnSync('sh', ['-c', `cat "$@" > /dev/null`, 'sh', ...files.slice(0, 200)]); // warm the page cache a little
  writeFileSync(listFile, files.join('\n'));
  const mb = files.reduce((n, f) => n + statSync(f).size, 0) / 1e6;
  console.log(`data: ${files.length} files, ${mb.toFixed(0)} MB (fiona-synth, 256x256 MR)`);

  if (PARTS.includes('read')) {
    // ---- 1. header reading ----
    const fionaRead = `
      import { readHeader, lookupKeyword } from ${JSON.stringify(DIST)};
      import { readFileSync } from 'node:fs';
      const files = readFileSync(process.argv[1], 'utf8').split('\\n');
      lookupKeyword('PatientID'); // load the dictionary, as pydicom's import does
      const t = performance.now();
      let n = 0;
      for (const f of files) {
        const h = await readHeader(f);
        if (h.string('StudyInstanceUID') && h.string('SeriesInstanceUID') && h.string('SOPInstanceUID') && h.string('PatientID')) n++;
      }
      console.log(JSON.stringify({ ms: performance.now() - t, n }));`;
    const pyRead = [
      'import sys, time, json, pydicom',
      "files = open(sys.argv[1]).read().split('\\n')",
      't = time.perf_counter()',
      'n = 0',
      'for f in files:',
      '    d = pydicom.dcmread(f, stop_before_pixels=True)',
      '    if d.StudyInstanceUID and d.SeriesInstanceUID and d.SOPInstanceUID and d.PatientID: n += 1',
      'print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "n": n}))',
    ].join('\n');
    const fr = [];
    const pr = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = JSON.parse(run(process.execPath, ['--input-type=module', '-e', fionaRead, listFile]));
      const b = JSON.parse(run(PY, ['-c', pyRead, listFile]));
      if (a.n !== files.length || b.n !== files.length) throw new Error(`read counts differ: fiona ${a.n}, pydicom ${b.n}`);
      fr.push(a.ms);
      pr.push(b.ms);
    }
    const fRate = files.length / (best(fr) / 1000);
    const pRate = files.length / (best(pr) / 1000);
    console.log(`header read  fiona readHeader:            ${fRate.toFixed(0)} files/s`);
    console.log(`header read  pydicom stop_before_pixels:  ${pRate.toFixed(0)} files/s`);
    console.log(`RATIO header read vs pydicom: ${(fRate / pRate).toFixed(2)}x (bar 3x)`);
  }

  if (PARTS.includes('edit')) {
    // ---- 2. 5-element edit of every file ----
    const edits = [
      ['0010,0010', 'Anonymous^Patient'],
      ['0010,0020', 'PSEUDO-0001'],
      ['0010,0030', '19000101'],
      ['0008,0050', 'ACC0001'],
    ];
    const removeTag = '0010,1040'; // PatientAddress
    // fiona writes each edited file into an output folder (temp name, rename), as
    // fiona-anonymize does and as gdcmanon -o does; dcmodify can only edit in place.
    // fiona's side is the core's batch API, rewriteFiles: each file is read, parsed, edited
    // and rendered on the main thread. Without fsync it is published there too (temp name,
    // writev, rename), as rewriteDicom does; with fsync, once publishing is measured slow,
    // a second thread is started and the previous outputs are created, written,
    // fdatasynced (many in flight) and renamed there while the next files render, at most
    // 16 files in flight. The job is the same as the C++ tools': 1,000 files in, 1,000
    // edited files out (temp name + rename each), one process; the thread's start-up is
    // inside the timed part. (The script runs under `node --input-type=module -e`; until
    // 29b6d44 the thread inherited those options and died at start, so the fsync line
    // measured the calling thread alone.)
    // The "one by one" line is the earlier way (await rewriteDicom in a loop, all the file
    // work on the main thread), kept to show what the batch API changes.
    const fionaEdit = (fsync, loop = false) => `
      import { rewriteDicom, rewriteFiles } from ${JSON.stringify(DIST)};
      import { readFileSync } from 'node:fs';
      const files = readFileSync(process.argv[1], 'utf8').split('\\n');
      const out = process.argv[2];
      const set = ${JSON.stringify(edits)}.map(([t, v]) => ({ tag: parseInt(t.replace(',', ''), 16), value: v }));
      const visit = (c) => (c.tag === 0x00101040 ? { op: 'remove' } : undefined);
      // (no dictionary warm-up: editing explicit VR files never loads it)
      const t = performance.now();
      if (${loop}) {
        let i = 0;
        for (const f of files) await rewriteDicom(f, out + '/' + (i++) + '.dcm', { set, fsync: ${fsync}, visit });
      } else {
        const jobs = files.map((f, i) => ({ input: f, output: out + '/' + i + '.dcm', opts: { set, visit } }));
        for await (const r of rewriteFiles(jobs, { fsync: ${fsync} })) if (!r.ok) throw r.error;
      }
      console.log(JSON.stringify({ ms: performance.now() - t }));`;
    const copyData = (name) => {
      const d = join(work, name);
      rmSync(d, { recursive: true, force: true });
      cpSync(data, d, { recursive: true });
      return d;
    };
    // Wall time, and CPU time (user + sys, from GNU time when installed): on a shared,
    // loaded machine the CPU time says more about the work each tool does per file.
    const cpuLog = join(work, 'cpu.txt');
    const haveTime = statSync('/usr/bin/time', { throwIfNoEntry: false }) !== undefined;
    const measure = (cmd, args) => {
      const t = performance.now();
      const stdout = haveTime ? run('/usr/bin/time', ['-f', '%U %S', '-o', cpuLog, cmd, ...args]) : run(cmd, args);
      const wall = performance.now() - t;
      const cpu = haveTime ? readFileSync(cpuLog, 'utf8').trim().split('\n').pop().split(' ').reduce((a, x) => a + Number(x) * 1000, 0) : NaN;
      return { wall, cpu, stdout };
    };
    const res = { fiona: [], fionaNoSync: [], fionaLoop: [], dcmodify: [], gdcmanon: [] };
    const cpu = { fiona: [], fionaNoSync: [], fionaLoop: [], dcmodify: [], gdcmanon: [] };
    // Each tool starts with no dirty pages of another tool's writes pending (sync first), and
    // the order rotates per round, so no tool keeps paying for the one before it.
    const tools = {
      fiona: () => editFiona('fiona', true),
      fionaNoSync: () => editFiona('fionaNoSync', false),
      fionaLoop: () => editFiona('fionaLoop', false, true),
      dcmodify: () => {
        const d = copyData('edit-dcmodify');
        const targets = listFiles(d).slice(0, FILES);
        const dArgs = ['-nb', '-q', ...edits.flatMap(([t, v]) => ['-m', `(${t})=${v}`]), '-e', `(${removeTag})`, ...targets];
        spawnSync('sync');
        return measure('dcmodify', dArgs);
      },
      gdcmanon: () => {
        const d = copyData('edit-gdcm-in');
        const outDir = join(work, 'edit-gdcm-out');
        rmSync(outDir, { recursive: true, force: true });
        const gArgs = ['--dumb', ...edits.flatMap(([t, v]) => ['--replace', `${t}=${v}`]), '--remove', removeTag, '-r', '-i', d, '-o', outDir];
        spawnSync('sync');
        return measure('gdcmanon', gArgs);
      },
    };
    function editFiona(key, fsync, loop = false) {
      const o = join(work, key === 'fiona' ? 'edit-fiona' : key === 'fionaLoop' ? 'edit-fiona-loop' : 'edit-fiona-nosync');
      rmSync(o, { recursive: true, force: true });
      mkdirSync(o);
      spawnSync('sync');
      const m = measure(process.execPath, ['--input-type=module', '-e', fionaEdit(fsync, loop), listFile, o]);
      // Wall time as fiona measured it (start-up excluded, as for the C++ tools it is small);
      // CPU time of the whole process, start-up and imports included.
      return { wall: JSON.parse(m.stdout).ms, cpu: m.cpu };
    }
    const order = Object.keys(tools);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < order.length; k++) {
        const key = order[(k + r) % order.length];
        const m = tools[key]();
        res[key].push(m.wall);
        cpu[key].push(m.cpu);
      }
    }
    // Check that every tool did the edit (on the last round's outputs).
    const check = (f) => run('dcmdump', ['+P', '0010,0010', '+P', '0010,1040', f]).trim();
    for (const d of ['edit-fiona', 'edit-fiona-nosync', 'edit-fiona-loop', 'edit-dcmodify', 'edit-gdcm-out']) {
      const f = listFiles(join(work, d))[0];
      const got = check(f);
      if (!got.includes('Anonymous^Patient') || got.includes('0010,1040')) throw new Error(`${d}: edit not done: ${got}`);
    }
    const rate = (xs) => files.length / (best(xs) / 1000);
    const fE = rate(res.fiona);
    const fN = rate(res.fionaNoSync);
    const fL = rate(res.fionaLoop);
    const dE = rate(res.dcmodify);
    const gE = rate(res.gdcmanon);
    console.log(`edit x5     fiona rewriteFiles -> out dir (fsync, as shipped): ${fE.toFixed(0)} files/s`);
    console.log(`edit x5     fiona rewriteFiles -> out dir (no fsync):          ${fN.toFixed(0)} files/s`);
    console.log(`edit x5     fiona rewriteDicom one by one (no fsync):          ${fL.toFixed(0)} files/s`);
    console.log(`edit x5     dcmodify -nb in place (one process, no fsync):     ${dE.toFixed(0)} files/s`);
    console.log(`edit x5     gdcmanon --dumb -> out dir (one process, no fsync): ${gE.toFixed(0)} files/s`);
    const faster = Math.max(dE, gE);
    console.log(`RATIO 5-element edit vs faster of dcmodify/gdcmanon (fsync on): ${(fE / faster).toFixed(2)}x (bar 1x)`);
    console.log(`RATIO 5-element edit vs faster of dcmodify/gdcmanon (like for like, no fsync): ${(fN / faster).toFixed(2)}x (bar 1x)`);
    if (haveTime) {
      const c = Object.fromEntries(Object.entries(cpu).map(([k, xs]) => [k, rate(xs)]));
      console.log(`edit x5 CPU files/s: fiona ${c.fiona.toFixed(0)} (fsync), ${c.fionaNoSync.toFixed(0)} (no fsync), ${c.fionaLoop.toFixed(0)} (one by one, no fsync); dcmodify ${c.dcmodify.toFixed(0)}; gdcmanon ${c.gdcmanon.toFixed(0)}`);
      console.log(`RATIO 5-element edit CPU time vs faster of dcmodify/gdcmanon (no fsync): ${(c.fionaNoSync / Math.max(c.dcmodify, c.gdcmanon)).toFixed(2)}x (bar 1x)`);
    }
    for (const d of ['edit-fiona', 'edit-fiona-nosync', 'edit-fiona-loop', 'edit-dcmodify', 'edit-gdcm-in', 'edit-gdcm-out']) rmSync(join(work, d), { recursive: true, force: true });
  }

  if (PARTS.includes('big')) {
    // ---- 3. peak RSS editing a 2 GB file ----
    const src = readFileSync(files[0]);
    const script = `
      import { rewriteDicom } from ${JSON.stringify(DIST)};
      import { readFileSync } from 'node:fs';
      const t = performance.now();
      const r = await rewriteDicom(process.argv[1], process.argv[2], { visit: (c) => c.tag === 0x00100010 ? { op: 'replace', value: 'Big^File' } : undefined });
      // VmHWM (peak RSS of this process image; getrusage's maxrss carries over exec on Linux).
      const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      console.log(JSON.stringify({ ...r, ms: performance.now() - t, maxRss: hwm }));`;
    const { parseDicom } = await import(DIST);
    const px = parseDicom(src).element('PixelData');
    const big = join(work, 'big.dcm');
    const len = 2 * 1024 * 1024 * 1024 - 4096;
    const fd = openSync(big, 'w');
    writeSync(fd, src, 0, px.headerOffset, 0);
    const hdr = Buffer.alloc(12);
    hdr.writeUInt16LE(0x7fe0, 0);
    hdr.writeUInt16LE(0x0010, 2);
    hdr.write('OW', 4, 'latin1');
    hdr.writeUInt32LE(len, 8);
    writeSync(fd, hdr, 0, 12, px.headerOffset);
    ftruncateSync(fd, px.headerOffset + 12 + len);
    closeSync(fd);
    const bigOut = join(work, 'big.out.dcm');
    const br = JSON.parse(run(process.execPath, ['--input-type=module', '-e', script, big, bigOut]));
    rmSync(bigOut, { force: true });
    rmSync(big, { force: true });
    console.log(`2 GB edit   fiona rewriteDicom: ${(br.bytesOut / 1e9).toFixed(2)} GB in ${(br.ms / 1000).toFixed(1)} s, peak RSS ${(br.maxRss / 1e6).toFixed(0)} MB`);
    console.log(`RATIO peak RSS 2 GB edit vs bound: ${(br.maxRss / 150e6).toFixed(2)}x of 150 MB (bar < 1x)`);
  }

} finally {
  rmSync(work, { recursive: true, force: true });
}
