import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { storescu } from '../peers/dcmtk.js';
import { freePort, waitForPort } from '../peers/ports.js';
import { synth } from '../classify/helpers.js';
import { sleep } from './helpers.js';

/** examples/pipeline-classify.sh as a sysadmin runs it: FIONA's pipeline as one shell line. */
let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('fiona-pipeline-example-');
});
afterAll(async () => tmp.cleanup());

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('examples/pipeline-classify.sh', () => {
  it('receives, classifies and reports two studies; --exec runs per study; SIGTERM to its process group stops it', async () => {
    const files = await synth(join(tmp.dir, 'synth'), ['--patients', '2', '--series', '2', '--instances', '3', '--rows', '16', '--seed', 'example']);
    const site = join(tmp.dir, 'site');
    const port = await freePort();
    const onStudy = join(tmp.dir, 'on-study.sh');
    await execa('sh', ['-c', `printf '#!/bin/sh\\necho "$1" >> "%s"\\n' "${join(tmp.dir, 'done.txt')}" > "${onStudy}" && chmod +x "${onStudy}"`]);
    const script = execa('bash', [join(ROOT, 'examples/pipeline-classify.sh')], {
      reject: false,
      detached: true,
      stdin: 'ignore',
      env: { PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`, SITE: site, PORT: String(port), QUIET: '1s', ON_STUDY: onStudy, NO_COLOR: '1' },
    });
    try {
      await waitForPort(port, 20_000);
      const r = await storescu(files, { port });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const log = join(site, 'state', 'studies.ndjson');
      const until = Date.now() + 20_000;
      let events: Array<Record<string, unknown>> = [];
      while (Date.now() < until) {
        events = existsSync(log) ? (await readFile(log, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
        if (events.filter((e) => e.event === 'study-exec').length === 2) break;
        await sleep(100);
      }
      const complete = events.filter((e) => e.event === 'study-complete');
      expect(complete).toHaveLength(2);
      expect(complete.every((e) => e.instances === 6 && e.series === 2)).toBe(true);
      const done = (await readFile(join(tmp.dir, 'done.txt'), 'utf8')).split('\n').filter(Boolean).sort();
      expect(done).toEqual(complete.map((e) => String(e.manifest)).sort());
    } finally {
      process.kill(-script.pid!, 'SIGTERM');
      await script;
      const until = Date.now() + 10_000;
      while (groupAlive(script.pid!) && Date.now() < until) await sleep(50);
    }
    expect(groupAlive(script.pid!)).toBe(false);
  });
});

describe('examples/pipeline-demo.sh', () => {
  it('classifies the built-in sample and prints each series with its types', async () => {
    const r = await execa('bash', [join(ROOT, 'examples/pipeline-demo.sh'), join(tmp.dir, 'demo')], { reject: false, env: { NO_COLOR: '1' } });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(r.stderr).toMatch(/classified 96, quarantined 0, failed 0/);
    expect(r.stderr).toMatch(/2 studies reported/);
    const rows = String(r.stdout).split('\n').filter((l) => /^\d+\.\d/.test(l));
    expect(rows).toHaveLength(12);
    expect(rows.find((l) => l.includes('t1_mprage_sag_p2_iso'))).toMatch(/\s8\s+MR,SIEMENS,original,sagittal,T1$/);
    expect(rows.find((l) => l.includes('3Plane Loc FGRE'))).toMatch(/localizer$/);
  });
});
