#!/usr/bin/env node
// npm run demo: the gateway end to end on a built-in synthetic sample, needing only Node.
//
//   scanner (fiona-synth) --fiona-send dicom://--> fiona-receive | fiona-classify | fiona-detect-study
//   study-complete --> fiona-anonymize (project rules, keyed pseudonyms) --> fiona-zip-export (ZIP + MD5)
//
// Everything runs on 127.0.0.1 with a free port, in a fresh folder that is kept so you can look.
// Usage: npm run demo [-- --out DIR]
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const bin = (tool) => join(ROOT, 'bin', `fiona-${tool}`);
const outIdx = process.argv.indexOf('--out');
const work = outIdx > 0 ? process.argv[outIdx + 1] : mkdtempSync(join(tmpdir(), 'fiona-demo-'));
mkdirSync(work, { recursive: true });
const site = join(work, 'site');
const env = { ...process.env, NO_COLOR: process.env.NO_COLOR ?? '' };

const say = (s) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const step = (s) => process.stdout.write(`   ${s}\n`);

/** Run a fiona tool to completion; stop the demo with its stderr when it fails. */
function run(tool, args, { allowFail = false } = {}) {
  const r = spawnSync(bin(tool), args, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 && !allowFail) {
    process.stderr.write(r.stderr);
    throw new Error(`fiona-${tool} ${args.join(' ')} exited ${r.status}`);
  }
  return r;
}
const events = (stdout) => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));

function countFiles(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name));
    else if (e.isFile() && !e.name.startsWith('.')) n++;
  }
  return n;
}

function firstFile(dir, suffix = '.dcm') {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const f = firstFile(p, suffix);
      if (f) return f;
    } else if (e.name.endsWith(suffix)) return p;
  }
  return undefined;
}

/**
 * Start the receiving pipeline exactly as a site runs it:
 *   fiona-receive | fiona-classify --pass | fiona-detect-study --pass
 * and hand back its events as they come.
 */
function startPipeline() {
  const opts = { env, stdio: ['pipe', 'pipe', 'inherit'] };
  const receive = spawn(bin('receive'), ['--site', site, '--port', '0', '--host', '127.0.0.1', '--aet', 'FIONA', '--quiet'], { ...opts, stdio: ['ignore', 'pipe', 'inherit'] });
  const classify = spawn(bin('classify'), ['--site', site, '--pass', '--quiet'], opts);
  const detect = spawn(bin('detect-study'), ['--site', site, '--quiet', '2s', '--pass'], opts);
  receive.stdout.pipe(classify.stdin);
  classify.stdout.pipe(detect.stdin);
  const waiters = [];
  const seen = [];
  createInterface({ input: detect.stdout }).on('line', (line) => {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    seen.push(ev);
    for (const w of [...waiters]) {
      if (w.pred(ev)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(ev);
      }
    }
  });
  const waitFor = (pred, what, ms = 60_000) =>
    new Promise((resolve, reject) => {
      const hit = seen.find(pred);
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`no ${what} event after ${ms} ms`)), ms);
      waiters.push({ pred, resolve: (ev) => (clearTimeout(t), resolve(ev)) });
    });
  const stop = async () => {
    receive.kill('SIGTERM');
    await Promise.all([receive, classify, detect].map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)))));
  };
  return { waitFor, seen, stop };
}

async function main() {
  say(`fiona demo in ${work}`);

  say('1. A scanner: fiona-synth writes a synthetic MR study with realistic identifying values');
  const synth = run('synth', ['--out', join(work, 'scanner'), '--patients', '1', '--series', '4', '--instances', '6', '--rows', '64', '--seed', 'demo', '--json']);
  const summary = events(synth.stdout).find((e) => e.event === 'synth-summary');
  const patient = summary?.patients?.[0]?.patient ?? {};
  step(`${countFiles(join(work, 'scanner'))} instances for ${patient.PatientName ?? 'a patient'} (PatientID ${patient.PatientID ?? '?'})`);

  say('2. The gateway: fiona-receive | fiona-classify | fiona-detect-study on a free port');
  const pipe = startPipeline();
  try {
    const listening = await pipe.waitFor((e) => e.event === 'listening', 'listening');
    step(`listening on 127.0.0.1:${listening.port} as ${listening.aet}`);

    say('3. The scanner sends the study: fiona-send dicom://FIONA@127.0.0.1:PORT?calling=SCANNER');
    const send = run('send', ['--to', `dicom://FIONA@127.0.0.1:${listening.port}?calling=SCANNER`, join(work, 'scanner')]);
    const sent = events(send.stdout).filter((e) => e.event === 'sent' && e.status === 'ok').length;
    step(`${sent} instances sent and acknowledged`);

    const complete = await pipe.waitFor((e) => e.event === 'study-complete', 'study-complete');
    // The series JSON that fiona-classify keeps, FIONA's raw/<Study>/<Series>.json.
    const rawDir = join(site, 'raw', complete.study);
    const series = readdirSync(rawDir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(rawDir, f), 'utf8')));
    const stored = series.reduce((n, s) => n + s.NumFiles, 0);
    step(`${stored} instances stored under ${join(site, 'archive', complete.study)} (byte for byte as sent)`);
    for (const s of series.sort((a, b) => Number(a.SeriesNumber) - Number(b.SeriesNumber))) {
      step(`series ${String(s.SeriesNumber).padStart(2)} ${String(s.SeriesDescription).padEnd(22)} ${s.NumFiles} files  ClassifyType ${JSON.stringify(s.ClassifyType)}`);
    }
    step(`study complete after a 2 s quiet period: ${complete.manifest}`);

    say('4. De-identification: fiona-anonymize with project rules and a keyed secret');
    const secret = join(work, 'project.secret');
    writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
    const project = join(ROOT, 'rules', 'projects', 'example-fiona.json');
    const anonOut = join(work, 'anonymized');
    const anon = run('anonymize', ['--out', anonOut, '--project', project, '--secret-file', secret, '--mapping', join(work, 'mapping.json'), join(site, 'archive', complete.study)]);
    const anonymized = events(anon.stdout).filter((e) => e.event === 'anonymized').length;
    step(`${anonymized} instances de-identified into ${anonOut}`);
    const before = firstFile(join(site, 'archive', complete.study));
    const after = firstFile(anonOut);
    const keys = ['PatientName', 'PatientID', 'PatientBirthDate', 'InstitutionName', 'StudyDate', 'StudyInstanceUID'];
    const dump = (f) => run('dump', [...keys.flatMap((k) => ['--tag', k]), '--no-filename', f]).stdout.trim().split('\t');
    const [b, a] = [dump(before), dump(after)];
    for (let i = 0; i < keys.length; i++) step(`${keys[i].padEnd(18)} ${String(b[i] ?? '').padEnd(64)} -> ${a[i] ?? ''}`);

    say('5. Research export: fiona-zip-export (anonymized, ZIP verified, MD5)');
    const exp = run('zip-export', ['--study', complete.study, '--site', site, '--project', project, '--secret-file', secret, '--out', join(work, 'exports')]);
    const exported = events(exp.stdout).find((e) => e.event === 'exported');
    if (exported) {
      step(`${exported.path} (${statSync(exported.path).size} bytes)`);
      step(`md5 ${readFileSync(`${exported.path}.md5`, 'utf8').trim()}`);
    }
  } finally {
    await pipe.stop();
  }
  say(`done: everything is in ${work}`);
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(1);
});
