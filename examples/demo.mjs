#!/usr/bin/env node
// npm run demo: the gateway end to end on a built-in synthetic sample, needing only Node.
//
//   scanner (fiona-synth) --fiona-send dicom://--> fiona-receive | fiona-classify | fiona-detect-study | fiona-route
//   fiona-transfer --watch: de-identify per project (keyed pseudonyms) --> research PACS (a second fiona-receive)
//   then a manual research export: fiona-zip-export (anonymized, ZIP verified, MD5)
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

// Bold headings only on a terminal, and not with NO_COLOR set (https://no-color.org).
const bold = process.stdout.isTTY && !process.env.NO_COLOR;
const say = (s) => process.stdout.write(bold ? `\n\x1b[1m== ${s}\x1b[0m\n` : `\n== ${s}\n`);
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
function startPipeline(routes) {
  const opts = { env, stdio: ['pipe', 'pipe', 'inherit'] };
  const receive = spawn(bin('receive'), ['--site', site, '--port', '0', '--host', '127.0.0.1', '--aet', 'FIONA', '--quiet'], { ...opts, stdio: ['ignore', 'pipe', 'inherit'] });
  const classify = spawn(bin('classify'), ['--site', site, '--pass', '--quiet'], opts);
  const detect = spawn(bin('detect-study'), ['--site', site, '--quiet', '2s', '--pass'], opts);
  const route = spawn(bin('route'), ['--site', site, '--routes', routes, '--pass', '-q'], opts);
  receive.stdout.pipe(classify.stdin);
  classify.stdout.pipe(detect.stdin);
  detect.stdout.pipe(route.stdin);
  const waiters = [];
  const seen = [];
  createInterface({ input: route.stdout }).on('line', (line) => {
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
    await Promise.all([receive, classify, detect, route].map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)))));
  };
  return { waitFor, seen, stop };
}

/** The research PACS of the demo: a second fiona-receive, counting what it stores. */
function startResearchPacs() {
  const pacs = spawn(bin('receive'), ['--site', join(work, 'research-pacs'), '--port', '0', '--host', '127.0.0.1', '--aet', 'RESEARCH', '--quiet'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const stored = [];
  let onListen;
  const listening = new Promise((r) => (onListen = r));
  createInterface({ input: pacs.stdout }).on('line', (line) => {
    const ev = JSON.parse(line);
    if (ev.event === 'listening') onListen(ev.port);
    if (ev.event === 'stored') stored.push(ev);
  });
  const stop = () => new Promise((r) => (pacs.exitCode !== null ? r() : (pacs.on('exit', r), pacs.kill('SIGTERM'))));
  return { listening, stored, stop };
}

/** A project as a site would set it up: de-identification rules, a secret, a route. */
function writeProject(researchPort) {
  const secret = join(work, 'demo-project.secret');
  writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
  const rules = JSON.parse(readFileSync(join(ROOT, 'rules', 'projects', 'example-fiona.json'), 'utf8'));
  Object.assign(rules, { name: 'DEMO', secretFile: secret, pseudonym: { prefix: 'DEMO', unmapped: 'derive' } });
  const rulesFile = join(work, 'demo-project.json');
  writeFileSync(rulesFile, JSON.stringify(rules, null, 2));
  const routes = join(work, 'routes.json');
  writeFileSync(routes, JSON.stringify({
    projects: {
      DEMO: {
        active: true,
        destination: `dicom://RESEARCH@127.0.0.1:${researchPort}?calling=FIONA`,
        rules: rulesFile,
        autoId: { pattern: 'DEMO[0-9]{4}' },
      },
    },
    routes: [{ name: 'demo-scanner', active: true, project: 'DEMO', sendingAet: 'SCANNER', event: 'baseline' }],
  }, null, 2));
  return { secret, rulesFile, routes };
}

async function waitUntil(pred, what, ms = 60_000) {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  say(`fiona demo in ${work}`);

  say('1. A scanner: fiona-synth writes a synthetic MR study with realistic identifying values');
  const synth = run('synth', ['--out', join(work, 'scanner'), '--patients', '1', '--series', '4', '--instances', '6', '--rows', '64', '--seed', 'demo', '--json']);
  const summary = events(synth.stdout).find((e) => e.event === 'synth-summary');
  const patient = summary?.patients?.[0]?.patient ?? {};
  const total = countFiles(join(work, 'scanner'));
  step(`${total} instances for ${patient.PatientName ?? 'a patient'} (PatientID ${patient.PatientID ?? '?'})`);

  say('2. The gateway: fiona-receive | fiona-classify | fiona-detect-study | fiona-route, and fiona-transfer --watch');
  const research = startResearchPacs();
  const researchPort = await research.listening;
  const project = writeProject(researchPort);
  step(`research PACS (a second fiona-receive) on 127.0.0.1:${researchPort} as RESEARCH`);
  const pipe = startPipeline(project.routes);
  const transfer = spawn(bin('transfer'), ['--site', site, '--routes', project.routes, '--watch', '--interval', '1s', '-q'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const listening = await pipe.waitFor((e) => e.event === 'listening', 'listening');
    step(`gateway listening on 127.0.0.1:${listening.port} as ${listening.aet}; routes: SCANNER -> project DEMO -> RESEARCH`);

    say('3. The scanner sends the study: fiona-send dicom://FIONA@127.0.0.1:PORT?calling=SCANNER (nothing is typed after this)');
    const send = run('send', ['--to', `dicom://FIONA@127.0.0.1:${listening.port}?calling=SCANNER`, join(work, 'scanner')]);
    const sent = events(send.stdout).filter((e) => e.event === 'sent' && e.status === 'ok').length;
    step(`${sent} instances sent and acknowledged`);

    // fiona-route turns study-complete into transfer-request (detect-study wrote the manifest).
    const request = await pipe.waitFor((e) => e.event === 'transfer-request', 'transfer-request');
    const complete = { study: request.study, manifest: join(site, 'studies', `${request.study}.json`) };
    // The series JSON that fiona-classify keeps, FIONA's raw/<Study>/<Series>.json.
    const rawDir = join(site, 'raw', complete.study);
    const series = readdirSync(rawDir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(rawDir, f), 'utf8')));
    const stored = series.reduce((n, s) => n + s.NumFiles, 0);
    step(`${stored} instances stored under ${join(site, 'archive', complete.study)} (byte for byte as sent)`);
    for (const s of series.sort((a, b) => Number(a.SeriesNumber) - Number(b.SeriesNumber))) {
      step(`series ${String(s.SeriesNumber).padStart(2)} ${String(s.SeriesDescription).padEnd(22)} ${s.NumFiles} files  ClassifyType ${JSON.stringify(s.ClassifyType)}`);
    }
    step(`study complete after a 2 s quiet period: ${complete.manifest}`);
    step(`routed to project ${request.project} as ${request.pseudonym} (event ${request.eventName ?? '-'})`);

    say('4. fiona-transfer de-identifies the study for DEMO and sends it to the research PACS');
    await waitUntil(() => research.stored.length >= total, `${total} instances at the research PACS`);
    step(`${research.stored.length} de-identified instances stored at the research PACS`);
    const before = firstFile(join(site, 'archive', complete.study));
    const after = research.stored[0].path;
    const keys = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientAddress', 'InstitutionName', 'StudyDate', 'AccessionNumber', 'StudyInstanceUID'];
    const dump = (f) => run('dump', [...keys.flatMap((k) => ['--tag', k]), '--no-filename', f]).stdout.replace(/\n$/, '').split('\t');
    const [b, a] = [dump(before), dump(after)];
    for (let i = 0; i < keys.length; i++) step(`${keys[i].padEnd(17)} ${String(b[i] ?? '').padEnd(46)} -> ${a[i] ?? ''}`);

    say('5. A manual research export: fiona-zip-export (same keys and pseudonym as the transfer, ZIP verified, MD5)');
    const exp = run('zip-export', ['--study', complete.study, '--site', site, '--project', project.rulesFile, '--out', join(work, 'exports')]);
    const exported = events(exp.stdout).find((e) => e.event === 'exported');
    if (!exported) throw new Error('fiona-zip-export reported no archive');
    step(`${exported.path} (${statSync(exported.path).size} bytes)`);
    step(`md5 ${readFileSync(`${exported.path}.md5`, 'utf8').trim()}`);
  } finally {
    transfer.kill('SIGTERM');
    await pipe.stop();
    await research.stop();
  }
  say(`done: everything is in ${work}`);
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(1);
});
