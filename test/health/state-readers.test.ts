/**
 * The looking readers of <site>/state/ JSON (site/state-json.ts) as fiona-heartbeat's stuck and
 * transfer-queue checks and fiona-cleanup's activity use them: a missing folder is empty, a file
 * being rewritten (not JSON, or JSON that is no object) is skipped, the rest is read.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { readActivity } from '../../src/lib/cleanup/policy.js';
import { checkTransferQueue } from '../../src/lib/health/queues.js';
import { findStuck } from '../../src/lib/health/stuck.js';
import { ensureSite } from '../../src/lib/site/layout.js';
import { readdirIfExists, readTextIfExists } from '../../src/lib/site/if-exists.js';
import { jsonFileNames, readJsonObject, readJsonObjects } from '../../src/lib/site/state-json.js';
import { makeTempDir } from '../helpers/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await makeTempDir('fiona-state-json-');
});
afterEach(async () => {
  await tmp.cleanup();
});

async function put(path: string, text: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, text);
}

test('readJsonObjects reads the *.json objects of a folder and skips what does not parse as an object', async () => {
  const d = join(tmp.dir, 'q');
  expect(await jsonFileNames(d)).toBeUndefined();
  expect(await readJsonObjects(d)).toEqual([]);
  await put(join(d, 'a.json'), '{"study":"1.2"}');
  await put(join(d, 'b.json'), '{"study":'); // half a file
  await put(join(d, 'c.json'), 'null');
  await put(join(d, 'd.json'), '[1]');
  await put(join(d, '.e.json.123.ab.tmp'), '{"study":"9"}'); // a writer's temp name
  await put(join(d, 'notes.txt'), '{}');
  expect((await jsonFileNames(d))?.sort()).toEqual(['a.json', 'b.json', 'c.json', 'd.json']);
  expect(await readJsonObjects(d)).toEqual([{ path: join(d, 'a.json'), value: { study: '1.2' } }]);
  expect(await readJsonObject(join(d, 'missing.json'))).toBeUndefined();
  expect(await readJsonObject(join(d, 'c.json'))).toBeUndefined();
  // The strict read: only "not there" is undefined.
  expect(await readTextIfExists(join(d, 'a.json'))).toBe('{"study":"1.2"}');
  expect(await readTextIfExists(join(d, 'missing.json'))).toBeUndefined();
  await expect(readTextIfExists(d)).rejects.toMatchObject({ code: 'EISDIR' });
  expect(await readdirIfExists(join(d, 'none'))).toEqual([]);
  expect((await readdirIfExists(d)).length).toBe(6);
  await expect(readdirIfExists(join(d, 'a.json'))).rejects.toMatchObject({ code: 'ENOTDIR' });
});

test('cleanup activity: open, queued, running, failed and done transfers; damaged files skipped', async () => {
  const site = await ensureSite(tmp.dir);
  await put(join(site.state, 'detect-study.json'), JSON.stringify({ version: 1, open: { '1.1': {} }, exec: [{ study: '1.2' }, null] }));
  await put(join(site.state, 'requests', 'r1.json'), '{"study":"1.3"}');
  await put(join(site.state, 'requests', 'r2.json'), 'null');
  await put(join(site.state, 'requests', 'failed', 'r3.json'), '{"study":"1.4"}');
  await put(join(site.state, 'transfers', 't1.json'), '{"study":"1.5","status":"running"}');
  await put(join(site.state, 'transfers', 't2.json'), '{"study":"1.6","status":"done","destination":"sftp://x"}');
  await put(join(site.state, 'transfers', 't3.json'), '{"study":"1.6","status":"done","project":"P"}');
  await put(join(site.state, 'transfers', 't4.json'), '{"study":"1.7","sta');
  const a = await readActivity(site);
  expect([...a.open].sort()).toEqual(['1.1', '1.2']);
  expect([...a.queued].sort()).toEqual(['1.3', '1.5']);
  expect([...a.failedTransfers]).toEqual(['1.4']);
  expect(a.transferred.get('1.6')?.sort()).toEqual(['P', 'sftp://x']);
  expect(a.transferred.size).toBe(1);
});

test('cleanup activity of a site without state is empty; a damaged detect-study.json opens nothing', async () => {
  const site = await ensureSite(tmp.dir);
  expect(await readActivity(site)).toEqual({ open: new Set(), queued: new Set(), failedTransfers: new Set(), transferred: new Map() });
  await put(join(site.state, 'detect-study.json'), '{"open":');
  expect((await readActivity(site)).open.size).toBe(0);
});

test('heartbeat: a transfer running longer than the limit is stuck; the transfer queue is counted', async () => {
  const state = join(tmp.dir, 'state');
  expect(await checkTransferQueue(state, { warn: 1, crit: 3 })).toEqual([]);
  const now = Date.parse('2026-01-01T12:00:00Z');
  await put(join(state, 'transfers', 'old.json'), JSON.stringify({ status: 'running', started: '2026-01-01T10:00:00Z', pid: 2 ** 22 + 7 }));
  await put(join(state, 'transfers', 'new.json'), JSON.stringify({ status: 'running', started: '2026-01-01T11:59:00Z' }));
  await put(join(state, 'transfers', 'done.json'), JSON.stringify({ status: 'done', started: '2026-01-01T09:00:00Z' }));
  await put(join(state, 'transfers', 'bad.json'), '{"status":"running",');
  const stuck = await findStuck([state], 30 * 60_000, now);
  expect(stuck).toEqual([{ path: join(state, 'transfers', 'old.json'), ageMs: 2 * 3600_000, pid: 2 ** 22 + 7, alive: false, what: 'transfer' }]);

  await put(join(state, 'requests', 'a.json'), '{}');
  await put(join(state, 'requests', 'b.json'), '{}');
  await put(join(state, 'requests', 'failed', 'c.json'), '{}');
  const [queue, failed] = await checkTransferQueue(state, { warn: 1, crit: 3 });
  expect(queue).toMatchObject({ name: 'queue:transfers', state: 'warning', data: { items: 2 } });
  expect(failed).toMatchObject({ name: 'failed:transfers', state: 'warning', data: { items: 1 } });
});
