/**
 * Bad input and bad luck: refused associations, UIDs that are not UIDs, data sets cut short,
 * senders that vanish, a receiver killed with -9, an unwritable or full site, two senders
 * racing on one SOP Instance UID, SIGTERM mid-instance. The receiver must answer what it can,
 * keep what it got in quarantine with a reason, never leave a partial file under archive/,
 * and keep serving.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { echoscu, p10Parts, storescu } from '../peers/dcmtk.js';
import { requireProgram } from '../peers/process.js';
import { SC, nativeDataset, writeNative, type Ids } from './fixtures.js';
import { arrivedWithBytes, startReceive, type RunningReceiver } from './harness.js';
import { RawAssociation, cStoreRq, pdata } from './raw-client.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const ROOT = '1.2.826.0.1.3680043.9.7433.77';

let dir: string;
let cleanup: () => Promise<void>;
let seq = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('fiona-receive-bad-'));
});

afterAll(async () => cleanup());

function ids(): Ids {
  seq++;
  return { study: `${ROOT}.1`, series: `${ROOT}.1.${seq}`, sop: `${ROOT}.1.${seq}.1` };
}

async function associated(port: number, calling = 'RAW'): Promise<RawAssociation> {
  const a = await RawAssociation.connect(port);
  const ac = await a.associate('FIONA', calling, [{ id: 1, abstractSyntax: SC, transferSyntaxes: [EXPLICIT_LE] }]);
  expect(ac.ok).toBe(true);
  expect(ac.contexts.get(1)).toEqual({ result: 0, ts: EXPLICIT_LE });
  return a;
}

/** Every file under a folder (none when it does not exist yet). */
async function filesIn(folder: string): Promise<string[]> {
  return existsSync(folder) ? filesUnder(folder) : [];
}

async function storeOk(a: RawAssociation, id: Ids, rows = 16): Promise<Buffer> {
  const ds = nativeDataset(id, rows);
  a.store(1, cStoreRq(++seq, SC, id.sop), ds);
  expect(await a.response()).toMatchObject({ status: 0 });
  return ds;
}

describe('associations that must be refused', () => {
  let rx: RunningReceiver;
  let site: string;
  beforeAll(async () => {
    site = join(dir, 'refuse');
    rx = await startReceive(site, ['--aet', 'FIONA', '--allow', 'SCANNER,PACS', '--also-called', 'PROJECT1,PROJECT2']);
  });
  afterAll(async () => expect(await rx.stop()).toBe(0));

  it('rejects a calling AE title not in --allow, stores nothing, says so', async () => {
    const file = join(dir, 'refused.dcm');
    await writeNative(file, ids());
    const r = await storescu([file], { port: rx.port, calledAet: 'FIONA', callingAet: 'INTRUDER' });
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toMatch(/Calling AE Title Not Recognized|rejected/i);
    const ev = await rx.waitFor((e) => e.event === 'association' && e.state === 'rejected' && e.calling === 'INTRUDER');
    expect(String(ev.reason)).toMatch(/calling AE title "INTRUDER" is not in the allow list/);
    expect(await filesIn(join(site, 'archive'))).toEqual([]);
  });

  it('rejects a wrong called AE title', async () => {
    const r = await echoscu({ port: rx.port, calledAet: 'NOTFIONA', callingAet: 'SCANNER' });
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toMatch(/Called AE Title Not Recognized|rejected/i);
    const ev = await rx.waitFor((e) => e.event === 'association' && e.state === 'rejected' && e.called === 'NOTFIONA');
    expect(String(ev.reason)).toMatch(/called AE title "NOTFIONA" is not ours/);
    // The raw reply says result 1 (permanent), source 1 (service user), reason 7 / 3.
    const a = await RawAssociation.connect(rx.port);
    const ac = await a.associate('NOTFIONA', 'SCANNER', [{ id: 1, abstractSyntax: SC, transferSyntaxes: [EXPLICIT_LE] }]);
    expect(ac.reject).toEqual({ result: 1, source: 1, reason: 7 });
    a.destroy();
    const b = await RawAssociation.connect(rx.port);
    expect((await b.associate('FIONA', 'NOBODY', [{ id: 1, abstractSyntax: SC, transferSyntaxes: [EXPLICIT_LE] }])).reject).toEqual({ result: 1, source: 1, reason: 3 });
    b.destroy();
    const ok = await echoscu({ port: rx.port, calledAet: 'FIONA', callingAet: 'PACS' });
    expect(ok.exitCode, String(ok.stderr)).toBe(0);
  });

  it('answers to the project AE titles of --also-called, and records which was called', async () => {
    const file = join(dir, 'to-project.dcm');
    const id = ids();
    await writeNative(file, id);
    const r = await storescu([file], { port: rx.port, calledAet: 'PROJECT2', callingAet: 'SCANNER' });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const ev = await rx.waitFor((e) => e.event === 'stored' && e.sop === id.sop);
    expect(ev.called).toBe('PROJECT2');
  });
});

describe('instances that must be refused', () => {
  let rx: RunningReceiver;
  let site: string;
  beforeAll(async () => {
    site = join(dir, 'instances');
    rx = await startReceive(site, ['--aet', 'FIONA', '--max-associations', '2', '--idle-timeout', '2s']);
  });
  afterAll(async () => expect(await rx.stop()).toBe(0));

  it.each([
    ['a "/" in the Study UID', { study: '1.2.3/4', series: `${ROOT}.2.1`, sop: `${ROOT}.2.1.1` }, /StudyInstanceUID is not a valid UID/],
    ['".." as the Series UID', { study: `${ROOT}.2`, series: '..', sop: `${ROOT}.2.2.1` }, /SeriesInstanceUID is not a valid UID/],
    ['a path in the SOP UID', { study: `${ROOT}.2`, series: `${ROOT}.2.3`, sop: '../../../etc/passwd' }, /SOPInstanceUID is not a valid UID/],
  ])('refuses %s: failure status, quarantined with a reason, keeps serving', async (_what, bad, reason) => {
    const a = await associated(rx.port);
    const ds = nativeDataset(bad);
    a.store(1, cStoreRq(1, SC, bad.sop), ds);
    const rsp = await a.response();
    expect(rsp.status).toBe(0xc000);
    expect(rsp.comment).toMatch(/not a valid UID/);
    const q = await rx.waitFor((e) => e.event === 'quarantined' && e.sop === bad.sop);
    expect(String(q.reason)).toMatch(reason);
    const qPath = String(q.path);
    expect(qPath.startsWith(join(site, 'quarantine'))).toBe(true);
    const kept = await p10Parts(qPath);
    expect(Buffer.compare(kept.dataset, ds)).toBe(0);
    const why = JSON.parse(await readFile(`${qPath}.reason.json`, 'utf8')) as Record<string, unknown>;
    expect(String(why.reason)).toMatch(reason);
    expect(why.calling).toBe('RAW');
    // Same association, next instance: stored.
    const good = ids();
    await storeOk(a, good);
    await a.release();
    expect(await filesIn(join(site, 'archive'))).not.toContainEqual(expect.stringContaining('passwd'));
    expect(existsSync(join(site, 'etc'))).toBe(false);
    expect(await arrivedWithBytes(site)).toEqual([]);
  });

  it('refuses a data set whose bytes end early (last fragment flagged): 0xC000, quarantined', async () => {
    const a = await associated(rx.port);
    const id = ids();
    const ds = nativeDataset(id, 64);
    const cut = ds.subarray(0, ds.length - 777);
    a.store(1, cStoreRq(2, SC, id.sop), cut);
    const rsp = await a.response();
    expect(rsp.status).toBe(0xc000);
    expect(rsp.comment).toMatch(/incomplete/);
    const q = await rx.waitFor((e) => e.event === 'quarantined' && e.sop === id.sop);
    expect(String(q.reason)).toMatch(/ends inside element \(7FE0,0010\).*777 of 8192 value bytes missing/);
    expect(Buffer.compare((await p10Parts(String(q.path))).dataset, cut)).toBe(0);
    expect(existsSync(join(site, 'archive', id.study, id.series))).toBe(false);
    await storeOk(a, ids());
    await a.release();
  });

  it('refuses a data set that is not the instance the request named (0xA900)', async () => {
    const a = await associated(rx.port);
    const id = ids();
    a.store(1, cStoreRq(3, SC, `${id.sop}.999`), nativeDataset(id));
    const rsp = await a.response();
    expect(rsp.status).toBe(0xa900);
    await rx.waitFor((e) => e.event === 'quarantined' && e.sop === `${id.sop}.999`);
    await a.release();
  });

  it('keeps nothing under archive/ when the sender disconnects or aborts mid-instance', async () => {
    for (const how of ['disconnect', 'abort', 'release'] as const) {
      const a = await associated(rx.port, `CUT${how.toUpperCase()}`.slice(0, 16));
      const id = ids();
      const ds = nativeDataset(id, 256);
      // Command, then 60 kB of the data set in PDVs none of which is flagged last.
      a.send(pdata(1, cStoreRq(4, SC, id.sop), true, true));
      for (let off = 0; off < 60_000; off += 15_000) a.send(pdata(1, ds.subarray(off, off + 15_000), false, false));
      await new Promise((r) => setTimeout(r, 100));
      if (how === 'disconnect') a.destroy();
      else if (how === 'abort') a.abort();
      else await a.release();
      const q = await rx.waitFor((e) => e.event === 'quarantined' && e.sop === id.sop, 20_000, `quarantine after ${how}`);
      expect(String(q.path).startsWith(join(site, 'quarantine'))).toBe(true);
      expect(existsSync(join(site, 'archive', id.study, id.series, `${id.sop}.dcm`))).toBe(false);
    }
    expect(await arrivedWithBytes(site)).toEqual([]);
  });

  it('quarantines what storescu sent before it was killed with -9 mid-instance', async () => {
    // A 96 MB instance, so storescu is still sending when it is killed.
    const id = ids();
    const file = join(dir, 'big-for-storescu.dcm');
    await writeNative(file, id, 7000);
    const sender = storescu([file], { port: rx.port, calledAet: 'FIONA', callingAet: 'KILLED', timeoutMs: 60_000 });
    const until = Date.now() + 20_000;
    while ((await arrivedWithBytes(site)).length === 0) {
      if (Date.now() > until) throw new Error('storescu never started sending');
      await new Promise((r) => setTimeout(r, 20));
    }
    sender.kill('SIGKILL');
    await sender;
    const q = await rx.waitFor((e) => e.event === 'quarantined' && e.sop === id.sop);
    expect(String(q.reason)).toMatch(/connection closed before the data set was complete|aborted/);
    expect(existsSync(join(site, 'archive', id.study, id.series))).toBe(false);
    expect(await arrivedWithBytes(site)).toEqual([]);
  });

  it('limits associations at once and aborts silent ones after --idle-timeout', async () => {
    const a = await associated(rx.port, 'HOLD1');
    const b = await associated(rx.port, 'HOLD2');
    const c = await RawAssociation.connect(rx.port);
    const ac = await c.associate('FIONA', 'HOLD3', [{ id: 1, abstractSyntax: SC, transferSyntaxes: [EXPLICIT_LE] }]);
    expect(ac.reject).toEqual({ result: 2, source: 3, reason: 2 });
    c.destroy();
    // Both held associations are silent: after 2 s the receiver aborts them.
    expect(await a.nextPduType(10_000)).toBe(0x07);
    expect(await b.nextPduType(10_000)).toBe(0x07);
    await rx.waitFor((e) => e.event === 'association' && e.calling === 'HOLD1' && e.state === 'timeout');
    const ok = await echoscu({ port: rx.port, calledAet: 'FIONA' });
    expect(ok.exitCode, String(ok.stderr)).toBe(0);
  });

  it('aborts an association that sends garbage, and keeps serving', async () => {
    const a = await associated(rx.port, 'GARBAGE');
    a.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await a.nextPduType(10_000)).toBe(0x07);
    await rx.waitFor((e) => e.event === 'error' && e.calling === 'GARBAGE');
    const ok = await echoscu({ port: rx.port, calledAet: 'FIONA' });
    expect(ok.exitCode, String(ok.stderr)).toBe(0);
  });
});

describe('the same SOP Instance UID from two associations at once', () => {
  it('ends with one whole file, byte-equal to one of the two, and both senders answered', async () => {
    const site = join(dir, 'race');
    const rx = await startReceive(site, ['--aet', 'FIONA']);
    try {
      for (let round = 0; round < 3; round++) {
        const id = ids();
        const one = nativeDataset(id, 256);
        const two = Buffer.from(one);
        two.fill(0x5a, two.length - 50_000); // different pixel bytes, same UIDs
        const a = await associated(rx.port, 'RACE_A');
        const b = await associated(rx.port, 'RACE_B');
        // A sends its command and most of its data set; B sends all of its instance; then A ends.
        const cmdA = cStoreRq(1, SC, id.sop);
        const cmdB = cStoreRq(1, SC, id.sop);
        a.send(pdata(1, cmdA, true, true));
        a.send(pdata(1, one.subarray(0, 100_000), false, false));
        b.store(1, cmdB, two);
        a.send(pdata(1, one.subarray(100_000), false, true));
        const [ra, rb] = await Promise.all([a.response(), b.response()]);
        expect(ra.status).toBe(0);
        expect(rb.status).toBe(0);
        await Promise.all([a.release(), b.release()]);
        const path = join(site, 'archive', id.study, id.series, `${id.sop}.dcm`);
        const got = (await p10Parts(path)).dataset;
        expect(Buffer.compare(got, one) === 0 || Buffer.compare(got, two) === 0).toBe(true);
        expect(await arrivedWithBytes(site)).toEqual([]);
        expect((await readdir(join(site, 'archive', id.study, id.series))).filter((n) => n.includes(id.sop))).toEqual([`${id.sop}.dcm`]);
      }
    } finally {
      expect(await rx.stop()).toBe(0);
    }
  });
});

describe('a receiver killed with -9 mid-instance', () => {
  it('leaves no partial file under archive/; what was acknowledged is whole; the next start quarantines the rest', async () => {
    const site = join(dir, 'kill9');
    const rx = await startReceive(site, ['--aet', 'FIONA']);
    const a = await associated(rx.port, 'VICTIM');
    const done = ids();
    const acked = await storeOk(a, done, 64);
    // A 12 MB data set, more than the receiver keeps in memory: it is on its way to disk.
    const big = ids();
    const ds = nativeDataset(big, 2500);
    a.send(pdata(1, cStoreRq(9, SC, big.sop), true, true));
    for (let off = 0; off < 8_000_000; off += 16_000) a.send(pdata(1, ds.subarray(off, off + 16_000), false, false));
    // Wait until the temp file has grown on disk, then kill.
    const until = Date.now() + 20_000;
    for (;;) {
      if ((await arrivedWithBytes(site)).length > 0) break;
      if (Date.now() > until) throw new Error('no temp file appeared in .arrived/');
      await new Promise((r) => setTimeout(r, 50));
    }
    await rx.stop('SIGKILL');
    a.destroy();
    const archived = await filesIn(join(site, 'archive'));
    expect(archived).toEqual([join(site, 'archive', done.study, done.series, `${done.sop}.dcm`)]);
    expect(Buffer.compare((await p10Parts(archived[0] as string)).dataset, acked)).toBe(0);
    const left = await arrivedWithBytes(site);
    expect(left).toHaveLength(1);

    const again = await startReceive(site, ['--aet', 'FIONA']);
    try {
      const q = await again.waitFor((e) => e.event === 'quarantined');
      expect(String(q.reason)).toMatch(new RegExp(`receiver pid ${rx.pid}, which stopped before the instance was complete`));
      // Only the partial instance: the dead receiver's empty temp files were just removed.
      expect(again.of('quarantined')).toHaveLength(1);
      expect((await readdir(join(site, '.arrived'))).filter((n) => n.startsWith(`${rx.pid}-`))).toEqual([]);
      expect(await arrivedWithBytes(site)).toEqual([]);
      expect(await filesIn(join(site, 'archive'))).toHaveLength(1);
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });
});

describe('a site that cannot be written', () => {
  it('answers Processing Failure, logs it, removes its temp file, and keeps serving', async () => {
    const site = join(dir, 'unwritable');
    const rx = await startReceive(site, ['--aet', 'FIONA']);
    try {
      const a = await associated(rx.port, 'NOWRITE');
      await storeOk(a, ids());
      // Works for root too: archive/ becomes a file, so no folder can be made under it.
      await rm(join(site, 'archive'), { recursive: true });
      await writeFile(join(site, 'archive'), 'not a folder');
      const id = ids();
      a.store(1, cStoreRq(5, SC, id.sop), nativeDataset(id));
      const rsp = await a.response();
      expect(rsp.status).toBe(0x0110);
      expect(rsp.comment).toMatch(/cannot write: ENOTDIR/);
      const err = await rx.waitFor((e) => e.event === 'error' && e.sop === id.sop);
      expect(String(err.message)).toMatch(/cannot write .* under /);
      expect(rx.stderr()).toMatch(/error: cannot write/);
      expect(await arrivedWithBytes(site)).toEqual([]);
      // Fixed: the same association goes on storing.
      await rm(join(site, 'archive'));
      await mkdir(join(site, 'archive'));
      await storeOk(a, ids());
      await a.release();
    } finally {
      expect(await rx.stop()).toBe(0);
    }
  });

  it('answers Out of Resources when the disk is full, in memory and while streaming, and keeps serving', async () => {
    requireProgram('unshare', 'util-linux');
    const site = join(dir, 'full');
    await mkdir(site);
    // A private 3 MiB tmpfs as the site (a user+mount namespace: no root needed, nothing leaks).
    const wrap = ['unshare', '-rm', 'sh', '-c', `mount -t tmpfs -o size=3m fiona-test "${site}" && exec "$0" "$@"`];
    const rx = await startReceive(site, ['--aet', 'FIONA'], {}, wrap);
    try {
      const a = await associated(rx.port, 'FULL');
      await storeOk(a, ids(), 700); // ~1 MB: fits
      const big = ids();
      a.store(1, cStoreRq(6, SC, big.sop), nativeDataset(big, 1100)); // ~2.4 MB in memory: does not fit
      expect((await a.response()).status).toBe(0xa700);
      const huge = ids();
      a.store(1, cStoreRq(7, SC, huge.sop), nativeDataset(huge, 2000)); // 8 MB, streamed to disk: does not fit
      const rsp = await a.response();
      expect(rsp.status).toBe(0xa700);
      expect(rsp.comment).toMatch(/out of disk space/);
      const err = await rx.waitFor((e) => e.event === 'error' && e.sop === huge.sop);
      expect(err.code).toBe('ENOSPC');
      // The receiver's own view of the site (its mount namespace): no temp files left.
      expect(await arrivedWithBytes(`/proc/${rx.pid}/root${site}`)).toEqual([]);
      await storeOk(a, ids(), 64); // small ones still fit
      await a.release();
      const echo = await echoscu({ port: rx.port, calledAet: 'FIONA' });
      expect(echo.exitCode).toBe(0);
    } finally {
      expect(await rx.stop()).toBe(0);
    }
  });
});

describe('SIGTERM', () => {
  it('finishes and answers the instance in flight, then exits 0', async () => {
    const site = join(dir, 'sigterm');
    const rx = await startReceive(site, ['--aet', 'FIONA']);
    const a = await associated(rx.port, 'LATE');
    const id = ids();
    const ds = nativeDataset(id, 512);
    a.send(pdata(1, cStoreRq(8, SC, id.sop), true, true));
    a.send(pdata(1, ds.subarray(0, 200_000), false, false));
    await new Promise((r) => setTimeout(r, 200));
    rx.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    a.send(pdata(1, ds.subarray(200_000), false, true));
    expect((await a.response()).status).toBe(0);
    expect(await a.nextPduType(10_000)).toBe(0x07); // then an A-ABORT: the receiver is going
    expect(await rx.stop()).toBe(0);
    expect(await readdir(join(site, '.arrived'))).toEqual([]); // its spare temp files removed too
    const got = await p10Parts(join(site, 'archive', id.study, id.series, `${id.sop}.dcm`));
    expect(Buffer.compare(got.dataset, ds)).toBe(0);
    // New associations are no longer taken.
    const r = await echoscu({ port: rx.port, calledAet: 'FIONA' });
    expect(r.exitCode).not.toBe(0);
  });
});

describe('the command line', () => {
  it('says what is wrong and exits 2 or 3', async () => {
    const bin = binPath('fiona-receive');
    const noSite = await execa(bin, ['--port', '0'], { reject: false, env: { FIONA_CONFIG: '' } });
    expect(noSite.exitCode).toBe(2);
    expect(noSite.stderr).toMatch(/no site folder/);
    const badAet = await execa(bin, ['--site', join(dir, 'x'), '--aet', 'A\\B'], { reject: false });
    expect(badAet.exitCode).toBe(2);
    expect(badAet.stderr).toMatch(/--aet: not a valid AE title/);
    const rx = await startReceive(join(dir, 'busy'));
    try {
      const busy = await execa(bin, ['--site', join(dir, 'busy2'), '--port', String(rx.port), '--host', '127.0.0.1'], { reject: false });
      expect(busy.exitCode).toBe(3);
      expect(busy.stderr).toMatch(/already in use/);
    } finally {
      await rx.stop();
    }
  });
});
