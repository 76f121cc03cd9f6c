/**
 * fiona-heartbeat against a live fiona-receive, the same receiver hung (SIGSTOP) and dead;
 * --restart; disk, queue, stuck-lock and arrival checks on a real site folder.
 * Exit codes are Nagios's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { binPath, runTool } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitForPort } from '../peers/ports.js';

let tmp: { dir: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  tmp = await makeTempDir('fiona-heartbeat-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

interface Report {
  state: string;
  checks: Array<{ name: string; state: string; message: string; data: Record<string, unknown> }>;
  restart?: { ran: boolean; exitCode?: number; answeredAfter?: boolean; skipped?: string };
}

function heartbeat(args: string[]) {
  return runTool('fiona-heartbeat', args, { timeout: 60_000 });
}

function check(r: Report, name: string) {
  const c = r.checks.find((x) => x.name === name);
  if (!c) throw new Error(`no ${name} check in ${JSON.stringify(r)}`);
  return c;
}

/** Returned in an object: an async function returning the subprocess would wait for its end. */
async function startReceiver(site: string, port: number): Promise<{ proc: ResultPromise }> {
  const proc = execa(binPath('fiona-receive'), ['--site', site, '--port', String(port), '--aet', 'FIONA', '--quiet'], { reject: false, env: { NO_COLOR: '1' } });
  await waitForPort(port);
  return { proc };
}

async function stop(proc: ResultPromise): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill('SIGCONT');
  proc.kill('SIGKILL');
  await proc;
}

describe('the receiver', () => {
  let site: string;
  let port: number;
  let receiver: ResultPromise;
  beforeAll(async () => {
    site = join(tmp.dir, 'site');
    await mkdir(site);
    port = await freePort();
    receiver = (await startReceiver(site, port)).proc;
  });
  afterAll(async () => {
    if (receiver) await stop(receiver);
  });

  test('live: OK (exit 0), the Nagios line has the echo time', async () => {
    const r = await heartbeat(['--site', site, '--port', String(port), '--aet', 'FIONA']);
    expect(r.exitCode, String(r.stdout)).toBe(0);
    expect(String(r.stdout)).toMatch(/^FIONA OK - .*\| echo_ms=[\d.]+ms/);
    const json = await heartbeat(['--site', site, '--port', String(port), '--aet', 'FIONA', '--json']);
    const rep = JSON.parse(String(json.stdout)) as Report;
    expect(rep.state).toBe('ok');
    expect(check(rep, 'receiver')).toMatchObject({ state: 'ok', data: { answered: true } });
    expect(check(rep, 'disk').state).toBe('ok');
  });

  test('hung (SIGSTOP): CRITICAL (exit 2) within the timeout', async () => {
    receiver.kill('SIGSTOP');
    try {
      const t = Date.now();
      const r = await heartbeat(['--site', site, '--port', String(port), '--aet', 'FIONA', '--timeout', '1500ms', '--json']);
      expect(r.exitCode).toBe(2);
      expect(Date.now() - t).toBeLessThan(20_000);
      const rep = JSON.parse(String(r.stdout)) as Report;
      expect(check(rep, 'receiver')).toMatchObject({ state: 'critical', data: { answered: false, kind: 'timeout' } });
      expect(check(rep, 'receiver').message).toMatch(/does not answer/);
    } finally {
      receiver.kill('SIGCONT');
    }
    // And it answers again once it runs.
    expect((await heartbeat(['--site', site, '--port', String(port), '--aet', 'FIONA'])).exitCode).toBe(0);
  });

  test('dead: CRITICAL; --restart brings it back: WARNING, and not again within the interval', async () => {
    await stop(receiver);
    const dead = await heartbeat(['--site', site, '--port', String(port), '--aet', 'FIONA', '--json']);
    expect(dead.exitCode).toBe(2);
    expect(check(JSON.parse(String(dead.stdout)) as Report, 'receiver').message).toMatch(/is down: .*connection refused/);

    // The restart command: a script that starts the receiver in the background.
    const script = join(tmp.dir, 'restart-receiver.sh');
    await writeFile(
      script,
      `#!/bin/sh\nnohup ${binPath('fiona-receive')} --site "$1" --port "$2" --aet FIONA --quiet > /dev/null 2>&1 &\necho $! > "$3"\n`,
      { mode: 0o755 },
    );
    const pidFile = join(tmp.dir, 'receiver.pid');
    const args = ['--site', site, '--port', String(port), '--aet', 'FIONA', '--json', '--restart', `${script} '${site}' ${port} ${pidFile}`, '--restart-wait', '2500ms'];
    try {
      const r = await heartbeat(args);
      const rep = JSON.parse(String(r.stdout)) as Report;
      expect(rep.restart).toMatchObject({ ran: true, exitCode: 0, answeredAfter: true });
      expect(check(rep, 'receiver').state).toBe('warning');
      expect(r.exitCode).toBe(1);
      // Kill it again: within --restart-interval, no second restart.
      const { readFile } = await import('node:fs/promises');
      process.kill(Number((await readFile(pidFile, 'utf8')).trim()), 'SIGKILL');
      await new Promise((res) => setTimeout(res, 300));
      const again = await heartbeat(args);
      const rep2 = JSON.parse(String(again.stdout)) as Report;
      expect(rep2.restart).toMatchObject({ ran: false });
      expect(rep2.restart!.skipped).toMatch(/less than 10 min ago/);
      expect(again.exitCode).toBe(2);
    } finally {
      const { readFile } = await import('node:fs/promises');
      try {
        process.kill(Number((await readFile(pidFile, 'utf8')).trim()), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, 60_000);
});

describe('site checks', () => {
  test('disk thresholds, queues, failed items, a stuck lock and the newest arrival', async () => {
    const site = join(tmp.dir, 'site2');
    await mkdir(join(site, '.arrived'), { recursive: true });
    await mkdir(join(site, 'archive'), { recursive: true });
    const outbox = join(tmp.dir, 'send', 'outbox');
    await mkdir(outbox, { recursive: true });
    await mkdir(join(tmp.dir, 'send', 'failed'), { recursive: true });
    for (let i = 0; i < 5; i++) await writeFile(join(outbox, `x${i}.zip`), 'z');
    await writeFile(join(outbox, 'x0.zip.md5'), 'm');
    await writeFile(join(outbox, 'busy.zip.part'), 'p');
    await writeFile(join(tmp.dir, 'send', 'failed', 'bad.zip'), 'b');
    await writeFile(join(tmp.dir, 'send', 'failed', 'bad.zip.reason.json'), '{}');
    // A lock held for three hours by a process that is gone.
    await mkdir(join(site, 'state', 'locks'), { recursive: true });
    const lock = join(site, 'state', 'locks', 'transfer-x.lock');
    await writeFile(lock, JSON.stringify({ pid: 999999, host: hostname(), time: new Date(Date.now() - 3 * 3_600_000).toISOString() }));
    const old = new Date(Date.now() - 3 * 3_600_000);
    await utimes(lock, old, old);
    // The newest arrival was two days ago.
    const twoDays = new Date(Date.now() - 2 * 86_400_000);
    await utimes(join(site, '.arrived'), twoDays, twoDays);
    await utimes(join(site, 'archive'), twoDays, twoDays);

    const base = ['--site', site, '--no-echo', '--outbox', outbox, '--json'];
    const r = await heartbeat([...base, '--warn-queue', '3', '--crit-queue', '10', '--warn-arrival-age', '1d']);
    const rep = JSON.parse(String(r.stdout)) as Report;
    expect(r.exitCode).toBe(1);
    expect(rep.state).toBe('warning');
    expect(check(rep, 'queue:outbox outbox')).toMatchObject({ state: 'warning', data: { items: 5 } });
    expect(check(rep, 'failed:outbox outbox')).toMatchObject({ state: 'warning', data: { items: 1 } });
    expect(check(rep, 'stuck').state).toBe('warning');
    expect(check(rep, 'stuck').message).toMatch(/transfer-x\.lock .*pid 999999, gone/);
    expect(check(rep, 'arrival')).toMatchObject({ state: 'warning' });
    expect(Number(check(rep, 'arrival').data.ageSeconds)).toBeGreaterThan(86_400);
    expect(rep.checks.find((c) => c.name === 'receiver')).toBeUndefined();

    const crit = await heartbeat([...base, '--crit-free', '1000000T', '--warn-free', '2000000T']);
    expect(crit.exitCode).toBe(2);
    expect(check(JSON.parse(String(crit.stdout)) as Report, 'disk').state).toBe('critical');
  });

  test('usage errors are UNKNOWN (exit 3), as Nagios expects', async () => {
    expect((await heartbeat(['--bogus'])).exitCode).toBe(3);
    expect((await heartbeat(['--warn-free', 'lots'])).exitCode).toBe(3);
    expect((await heartbeat(['--restart', "'unbalanced"])).exitCode).toBe(3);
    expect((await heartbeat(['--help'])).exitCode).toBe(0);
  });
});
