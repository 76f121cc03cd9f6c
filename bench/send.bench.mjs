#!/usr/bin/env node
// fiona-send against the standard tools, side by side in one run, alternating rounds:
//   SFTP: 1 GB in 1,000 files and 1 GB in one file, fiona-send vs OpenSSH `sftp -b` (batch put)
//         into the same sshd on loopback. fiona-send by default also verifies every file (SHA-256
//         locally and `openssl dgst -sha256` on the server) and publishes by rename; sftp does
//         neither. A second RATIO line compares like for like: fiona-send --verify size (no
//         checksums; still .part + rename). BENCH_SFTP_MD5=1 adds a third: --verify md5sum
//         (MD5 on both ends, the default before SHA-256). All lines run the clients without
//         NODE_EXTRA_CA_CERTS; where it is set, one more line runs fiona-send with it.  bar: >= 1x
//   DICOM: 1,000 instances (fiona-synth) into one DCMTK storescp, fiona-send vs storescu.
//                                                                     bar: >= 1x storescu
// Env: BENCH_ROUNDS (default 2), BENCH_SFTP_MB (default 1024), BENCH_DICOM (default 1000),
//      BENCH_ONLY=sftp|dicom, BENCH_SFTP_MD5=1, BENCH_SFTP_ONLY=many|one (one of the two SFTP sets).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './ports.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SEND = join(ROOT, 'bin', 'fiona-send');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SFTP_MB = Number(process.env.BENCH_SFTP_MB ?? 1024);
const DICOM_N = Number(process.env.BENCH_DICOM ?? 1000);
const ONLY = process.env.BENCH_ONLY;
const SFTP_MD5 = process.env.BENCH_SFTP_MD5 === '1';
const SFTP_ONLY = process.env.BENCH_SFTP_ONLY;
const ENV = { ...process.env, TCP_NODELAY: '1', NO_COLOR: '1' };
// The clients' environment without NODE_EXTRA_CA_CERTS (why: see benchSftp and the DICOM set).
const CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
const CLEAN = { env: Object.fromEntries(Object.entries(ENV).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS')) };

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn(cmd, args, { env: ENV, stdio: ['pipe', 'ignore', 'pipe'], ...opts });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    if (opts.input) p.stdin.end(opts.input); else p.stdin.end();
    p.on('error', reject);
    p.on('close', (code) => {
      const s = Number(process.hrtime.bigint() - t) / 1e9;
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${err.slice(-800)}`));
      else resolve(s);
    });
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function report(label, bytes, fionaTimes, otherTimes, other) {
  const f = bytes / 1e6 / median(fionaTimes);
  const o = bytes / 1e6 / median(otherTimes);
  console.log(`${label}: fiona-send ${f.toFixed(1)} MB/s (median of ${fionaTimes.map((t) => t.toFixed(2)).join(', ')} s)`);
  console.log(`${label}: ${other} ${o.toFixed(1)} MB/s (median of ${otherTimes.map((t) => t.toFixed(2)).join(', ')} s)`);
  console.log(`RATIO ${label} fiona-send/${other}: ${(f / o).toFixed(2)}x (bar 1x)`);
}

async function startSshd(dir) {
  const user = userInfo().username;
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'id.pub')));
  const port = await freePort();
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host')}`, `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    'UsePAM no', 'StrictModes no', `AllowUsers ${user}`, 'Subsystem sftp internal-sftp', 'LogLevel ERROR',
    // As the tests' sshd (test/peers/sshd.ts): commands over exec (fiona's checksums) run
    // without the login user's ~/.bashrc, which bash reads for sshd only in a top-level shell.
    // On this machine root's .bashrc runs `pyenv init` (0.14 s of CPU per command); a server's
    // usual .bashrc returns at once when not interactive. sftp -b runs no command either way.
    'SetEnv SHLVL=1', '',
  ].join('\n'));
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd');
  const hostPub = readFileSync(join(dir, 'host.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`);
  const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' });
  await waitForPort(port);
  return { port, user, identity: join(dir, 'id'), knownHosts: join(dir, 'known_hosts'), stop: () => proc.kill('SIGTERM') };
}

/** CPU seconds the whole machine spent (all processes: client, sshd, md5sum; others' load too). */
function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6]) / 100;
}

/** Wall seconds of a run, and the machine's CPU seconds during it pushed onto `cpu`. */
async function timedCpu(cpu, runIt) {
  const c0 = machineCpu();
  const s = await runIt();
  cpu.push(machineCpu() - c0);
  return s;
}

async function benchSftp(work) {
  const sshd = await startSshd(mkdtempSync(join(work, 'sshd-')));
  try {
    const many = join(work, 'many');
    mkdirSync(many);
    const fileSize = Math.round((SFTP_MB * 1024 * 1024) / 1000);
    if (SFTP_ONLY !== 'one') for (let i = 0; i < 1000; i++) writeFileSync(join(many, `f${String(i).padStart(4, '0')}.bin`), randomBytes(fileSize));
    const one = join(work, 'one');
    mkdirSync(one);
    const big = join(one, 'big.bin');
    const chunk = randomBytes(16 * 1024 * 1024);
    if (SFTP_ONLY !== 'many') for (let w = 0; w < SFTP_MB / 16; w++) writeFileSync(big, chunk, { flag: w === 0 ? 'w' : 'a' });
    const bytes = SFTP_MB * 1024 * 1024;
    const sftpArgs = ['-q', '-i', sshd.identity, '-o', `UserKnownHostsFile=${sshd.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-P', String(sshd.port), '-b', '-', `${sshd.user}@127.0.0.1`];
    const url = (d) => `sftp://${sshd.user}@127.0.0.1:${sshd.port}${d}`;
    const sets = [
      ['many', `sftp ${SFTP_MB} MB in 1000 files`, many, (dst) => readdirSync(many).map((f) => `put ${join(many, f)} ${dst}/${f}`).join('\n')],
      ['one', `sftp ${SFTP_MB} MB in one file`, big, (dst) => `put ${big} ${dst}/big.bin`],
    ];
    for (const [which, label, src, batch] of sets) {
      if (SFTP_ONLY && SFTP_ONLY !== which) continue;
      const f = [];
      const s = [];
      const o = [];
      const m = [];
      const fa = [];
      const cpu = { f: [], s: [], o: [], m: [], fa: [] };
      // NODE_EXTRA_CA_CERTS (set on this machine for its proxy): Node 20 parses the bundle at
      // every start (node -e 0: 0.06-0.08 s with it, 0.02 s without), which neither SSH client
      // needs (sftp never reads it). As in the DICOM set, the headline runs every client
      // without it, like a cron job's environment; a second line runs fiona-send with it as set.
      const fiona = (dst, extra) => ['-q', ...extra, '--to', url(dst), '--identity', sshd.identity, '--known-hosts', sshd.knownHosts, src];
      // One timed run into a fresh folder. `sync` first, untimed: each run leaves 1 GB of dirty
      // pages (the file it wrote), and their writeback would otherwise land in whichever run
      // comes next (measured without it: the first runs after the 1 GB data generation took
      // 5.8 s (fiona-send) and 6.8 s (sftp -b) against 3.4-4.1 s for the later ones).
      const timedRun = async (name, times, cpuTimes, runIt) => {
        const d = join(work, `dst-${name}`);
        mkdirSync(d);
        execFileSync('sync');
        times.push(await timedCpu(cpuTimes, () => runIt(d)));
        rmSync(d, { recursive: true, force: true });
      };
      const runs = [
        // fiona-send as it runs by default: SHA-256 of every file on both sides, compared, then renamed.
        () => timedRun('fiona', f, cpu.f, (d) => run(SEND, fiona(d, []), CLEAN)),
        () => timedRun('sftp', o, cpu.o, (d) => run('sftp', sftpArgs, { ...CLEAN, input: `${batch(d)}\n` })),
        // Like for like with sftp -b, which checks nothing: remote size only (still .part + rename).
        () => timedRun('size', s, cpu.s, (d) => run(SEND, fiona(d, ['--verify', 'size']), CLEAN)),
        ...(CA_CERTS ? [() => timedRun('fiona-ca', fa, cpu.fa, (d) => run(SEND, fiona(d, [])))] : []),
        ...(SFTP_MD5 ? [() => timedRun('md5', m, cpu.m, (d) => run(SEND, fiona(d, ['--verify', 'md5sum']), CLEAN))] : []),
      ];
      // The order rotates from round to round: no tool always runs first or after the same one.
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < runs.length; k++) await runs[(r + k) % runs.length]();
      }
      report(label, bytes, f, o, 'sftp -b');
      report(`${label} (like for like: fiona --verify size, no checksums)`, bytes, s, o, 'sftp -b');
      if (CA_CERTS) report(`${label} (fiona-send with NODE_EXTRA_CA_CERTS as set here)`, bytes, fa, o, 'sftp -b');
      if (SFTP_MD5) report(`${label} (fiona --verify md5sum)`, bytes, m, o, 'sftp -b');
      // On 2 cores the verified run is bound by CPU: the local and the server's hash come on top
      // of the transfer (SHA-256 ~0.6 s per GB each with SHA instructions, MD5 ~1.5 s). Whole-
      // machine CPU, so other load shows up here too.
      console.log(`${label}: machine CPU s (median): fiona-send ${median(cpu.f).toFixed(2)}, fiona-send --verify size ${median(cpu.s).toFixed(2)}, ${CA_CERTS ? `fiona-send with NODE_EXTRA_CA_CERTS ${median(cpu.fa).toFixed(2)}, ` : ''}${SFTP_MD5 ? `fiona-send --verify md5sum ${median(cpu.m).toFixed(2)}, ` : ''}sftp -b ${median(cpu.o).toFixed(2)}`);
    }
  } finally {
    sshd.stop();
  }
}

/** CPU seconds (user + system) of this process's reaped children so far: a child's CPU is the delta around its run. */
function childrenCpu() {
  const f = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(f[13]) + Number(f[14])) / 100; // cutime, cstime (fields 16, 17)
}

/** CPU seconds (user + system) of a running process. */
function processCpu(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15)
}

async function benchDicom(work) {
  const data = join(work, 'dicom');
  const perSeries = Math.ceil(DICOM_N / 4);
  execFileSync(join(ROOT, 'bin', 'fiona-synth'), ['--out', data, '--patients', '1', '--series', '4', '--instances', String(perSeries), '--rows', '256', '--seed', 'bench'], { stdio: 'ignore', env: ENV });
  const files = readdirSync(data, { recursive: true }).map(String).filter((f) => f.endsWith('.dcm'));
  let bytes = 0;
  for (const f of files) bytes += readFileSync(join(data, f)).length;
  const port = await freePort();
  const out = join(work, 'storescp');
  mkdirSync(out);
  const scp = spawn('storescp', ['-aet', 'PACS', '-od', out, '+xa', String(port)], { env: ENV, stdio: 'ignore' });
  // Wall time of a client run; its CPU seconds and storescp's during it are pushed onto `cpu`.
  // storescp is single-threaded and the same for both clients: on 2 shared cores, every CPU
  // second a client spends is one storescp may wait for.
  const timed = async (cpu, cmd, args, opts = {}) => {
    const c0 = childrenCpu();
    const s0 = processCpu(scp.pid);
    const s = await run(cmd, args, opts);
    cpu.push({ client: childrenCpu() - c0, scp: processCpu(scp.pid) - s0 });
    return s;
  };
  // NODE_EXTRA_CA_CERTS (set on this machine, for its proxy) makes Node 20 parse the whole CA
  // bundle at every start: ~40 ms of CPU per process (node -e 0: 0.06 s with it, 0.02 s without;
  // measured with the 144-certificate /etc/ssl/certs bundle). Neither DICOM client uses TLS and
  // storescu never reads the variable, so the headline runs both clients without it, like a
  // cron job's environment; fiona-send also runs as the environment is, for a second line.
  const sendArgs = (what) => ['-q', '--to', `dicom://PACS@127.0.0.1:${port}?calling=FIONA`, what];
  const storescuArgs = (what, recurse) => ['-aec', 'PACS', '-aet', 'STORESCU', ...(recurse ? ['+sd', '+r'] : []), '127.0.0.1', String(port), what];
  // `sync` (untimed) after clearing: otherwise the writeback of the ~130 MB storescp stored in
  // the run before, and the freeing of it, land in the next client's time (as in the SFTP set).
  const fresh = () => {
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
    execFileSync('sync');
  };
  try {
    await waitForPort(port);
    const f = [];
    const o = [];
    const fa = [];
    const cf = [];
    const co = [];
    const cfa = [];
    // Each round runs every client once, in an order that rotates from round to round: no
    // client always follows the same one (the previous run's page-cache and writeback state).
    const clients = [
      () => timed(cf, SEND, sendArgs(data), CLEAN).then((s) => f.push(s)),
      () => timed(co, 'storescu', storescuArgs(data, true), CLEAN).then((s) => o.push(s)),
      ...(CA_CERTS ? [() => timed(cfa, SEND, sendArgs(data)).then((s) => fa.push(s))] : []),
    ];
    for (let r = 0; r < ROUNDS + 1; r++) {
      for (let k = 0; k < clients.length; k++) {
        await clients[(r + k) % clients.length]();
        fresh();
      }
    }
    const label = `dicom ${files.length} instances`;
    report(label, bytes, f, o, 'storescu');
    if (CA_CERTS) report(`${label} (fiona-send with NODE_EXTRA_CA_CERTS as set here)`, bytes, fa, o, 'storescu');
    const cpuLine = (xs) => `${median(xs.map((x) => x.client)).toFixed(2)} s (storescp meanwhile ${median(xs.map((x) => x.scp)).toFixed(2)} s)`;
    console.log(`${label}: CPU (user+sys, medians): fiona-send ${cpuLine(cf)}${CA_CERTS ? `, fiona-send with NODE_EXTRA_CA_CERTS ${cpuLine(cfa)}` : ''}, storescu ${cpuLine(co)}`);
    // Fixed cost (start-up, one association, one instance): what the 1,000-instance line
    // carries on top of the per-instance turnaround. Not a bar, a diagnosis.
    const one = join(data, files[0]);
    const f1 = [];
    const o1 = [];
    const fa1 = [];
    for (let r = 0; r < 5; r++) {
      f1.push(await run(SEND, sendArgs(one), CLEAN));
      o1.push(await run('storescu', storescuArgs(one, false), CLEAN));
      if (CA_CERTS) fa1.push(await run(SEND, sendArgs(one)));
    }
    console.log(
      `dicom 1 instance (fixed cost): fiona-send ${median(f1).toFixed(3)} s${CA_CERTS ? ` (${median(fa1).toFixed(3)} s with NODE_EXTRA_CA_CERTS)` : ''}, storescu ${median(o1).toFixed(3)} s (medians of 5)`,
    );
    rmSync(out, { recursive: true, force: true });
  } finally {
    scp.kill('SIGTERM');
  }
}

const work = mkdtempSync(join(tmpdir(), 'fiona-bench-send-'));
try {
  if (ONLY !== 'sftp') await benchDicom(work);
  if (ONLY !== 'dicom') await benchSftp(work);
} finally {
  rmSync(work, { recursive: true, force: true });
}
