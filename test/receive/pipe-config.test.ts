/**
 * FIONA compatibility: the old config keys (DICOMPORT, DICOMAETITLE, DATADIR) and the pipe
 * lines `callingAET,calledAET,callerIP,dir,filename` written into a FIFO that readers may
 * leave and join without stopping the receiver.
 */
import { execa } from 'execa';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFionaLine } from '../../src/lib/events/index.js';
import { binPath } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { storescu } from '../peers/dcmtk.js';
import { writeNative } from './fixtures.js';
import { startReceive } from './harness.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('fiona-receive-pipe-'));
});
afterAll(async () => cleanup());

const ROOT = '1.2.826.0.1.3680043.9.7433.88';

async function instance(n: number): Promise<string> {
  const file = join(dir, `in-${n}.dcm`);
  await writeNative(file, { study: `${ROOT}.1`, series: `${ROOT}.1.1`, sop: `${ROOT}.1.1.${n}` });
  return file;
}

/** Read whatever lines a FIFO gives within `ms` (a reader that joins, reads, and leaves). */
async function readFifo(path: string, ms: number): Promise<string[]> {
  const r = await execa('timeout', [String(ms / 1000), 'cat', path], { reject: false });
  return String(r.stdout).split('\n').filter(Boolean);
}

describe('FIONA config keys and pipe lines', () => {
  it('reads DATADIR, DICOMPORT and DICOMAETITLE; the command line wins over them', async () => {
    const site = join(dir, 'site-config');
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ DATADIR: site, DICOMPORT: 0, DICOMAETITLE: 'OLDFIONA' }));
    const bin = binPath('fiona-receive');
    // --site/--port/--host are not given: DATADIR and DICOMPORT come from the file.
    const p = execa(bin, ['--config', config, '--host', '127.0.0.1'], { reject: false, buffer: false });
    const first = await new Promise<string>((resolve) => p.stdout?.once('data', (d: Buffer) => resolve(d.toString())));
    const listening = JSON.parse(first.split('\n')[0] as string) as Record<string, unknown>;
    expect(listening).toMatchObject({ event: 'listening', aet: 'OLDFIONA', site });
    expect(Number(listening.port)).toBeGreaterThan(0);
    p.kill('SIGTERM');
    expect((await p).exitCode).toBe(0);
    expect(existsSync(join(site, '.arrived'))).toBe(true);

    const rx = await startReceive(join(dir, 'site-override'), ['--config', config, '--aet', 'NEWFIONA']);
    expect(rx.events[0]).toMatchObject({ event: 'listening', aet: 'NEWFIONA', site: join(dir, 'site-override') });
    expect(await rx.stop()).toBe(0);

    await writeFile(config, JSON.stringify({ DATADIR: site, DICOMAETITLE: 'WAY_TOO_LONG_AE_TITLE' }));
    const bad = await execa(bin, ['--config', config], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/DICOMAETITLE/);
  });

  it('writes a FIONA pipe line per stored file; readers come and go, the receiver stays', async () => {
    const site = join(dir, 'site-pipe');
    const fifo = join(dir, 'fiona.pipe');
    const rx = await startReceive(site, ['--aet', 'FIONA', '--pipe', fifo]);
    try {
      expect(statSync(fifo).isFIFO()).toBe(true);
      // No reader at all: the receiver must neither block nor fail.
      const r1 = await storescu([await instance(1)], { port: rx.port, calledAet: 'FIONA', callingAet: 'MRSCANNER' });
      expect(r1.exitCode, String(r1.stderr)).toBe(0);
      // A reader joins: it gets the line written while nobody read.
      const reading = readFifo(fifo, 1500);
      await new Promise((r) => setTimeout(r, 300));
      const r2 = await storescu([await instance(2)], { port: rx.port, calledAet: 'FIONA', callingAet: 'MRSCANNER' });
      expect(r2.exitCode, String(r2.stderr)).toBe(0);
      const lines = await reading;
      expect(lines).toHaveLength(2);
      const stored = rx.of('stored');
      for (const [i, line] of lines.entries()) {
        const parsed = parseFionaLine(line);
        expect(parsed, line).toBeDefined();
        const ev = stored[i] as Record<string, unknown>;
        expect(parsed).toMatchObject({ calling: 'MRSCANNER', called: 'FIONA', peer: '127.0.0.1', dir: dirname(String(ev.path)), file: basename(String(ev.path)) });
        expect((await readFile(parsed?.path as string)).length).toBe(ev.bytes);
      }
      // The reader left (timeout killed cat); storing goes on.
      const r3 = await storescu([await instance(3)], { port: rx.port, calledAet: 'FIONA' });
      expect(r3.exitCode, String(r3.stderr)).toBe(0);
      expect(rx.of('stored')).toHaveLength(3);
    } finally {
      expect(await rx.stop()).toBe(0);
    }
  });
});
