import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/lib/dicom/index.js';
import { parseEvents, runTool } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startSshd, type Sshd } from '../peers/sshd.js';
import { importStudies, synth } from './setup.js';

describe('fiona-transfer to a real sshd (sftp://)', () => {
  let sshd: Sshd;
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    sshd = await startSshd();
  });
  afterEach(async () => {
    await sshd.stop();
    await cleanup();
  });

  it('uploads the de-identified study under the project folder, verified, no partial files', async () => {
    const siteDir = join(dir, 'site');
    const remote = join(dir, 'research-inbox');
    await mkdir(remote);
    const routes = join(dir, 'routes.json');
    await synth(join(dir, 'synth'), ['--seed', 'sftp', '--series', '2', '--instances', '4', '--rows', '32']);
    const [s] = await importStudies(join(dir, 'synth'), siteDir, { calling: 'MRI1', called: 'FIONA' });
    // Couple by this study's UID (the coupling list's other key).
    await writeFile(routes, JSON.stringify({
      projects: { DC: { destination: sshd.url(remote), identity: sshd.identity, knownHosts: sshd.knownHosts } },
      coupling: [{ studyInstanceUid: s!.uid, project: 'DC', subject: 'DC-0007', event: 'week2', date: new Date().toISOString().slice(0, 10) }],
    }));
    expect(parseEvents((await runTool('fiona-route', ['--site', siteDir, '--routes', routes, '--scan'])).stdout)).toMatchObject([{ pseudonym: 'DC-0007', via: ['coupling:coupling[0]'] }]);
    const t = await runTool('fiona-transfer', ['--site', siteDir, '--routes', routes]);
    expect(t.exitCode).toBe(0);
    const [ev] = parseEvents(t.stdout);
    expect(ev).toMatchObject({ event: 'transferred', instances: 8, series: 2, to: sshd.url(remote) });
    const files = await filesUnder(remote);
    expect(files).toHaveLength(8);
    expect(files.filter((f) => f.endsWith('.part'))).toEqual([]);
    for (const f of files) {
      expect(relative(remote, f).split('/')[0]).toBe(ev!.mappedStudy);
      const h = await readHeader(f);
      expect(h.string('PatientID')).toBe('DC-0007');
      expect(h.string('StudyInstanceUID')).toBe(ev!.mappedStudy);
      expect(h.string(0x00402001)).toBe('EventName:week2');
      expect(h.string(0x00080090)).toBe('EventName:week2');
    }
  });
});
