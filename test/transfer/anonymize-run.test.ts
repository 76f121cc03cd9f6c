/**
 * The transfer's anonymize step on real files (fiona-synth): every file de-identified into the
 * work folder, outputs in path order; a missing file is refused, a work folder that cannot be
 * written fails the step.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/lib/dicom/index.js';
import type { Project } from '../../src/lib/route/types.js';
import { ensureSite } from '../../src/lib/site/layout.js';
import { createTransferAnonymizer } from '../../src/lib/transfer/anonymize.js';
import type { TransferRequest } from '../../src/lib/transfer/requests.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { synth } from './setup.js';

const request: TransferRequest = { version: 1, id: 'x', study: '1.2', project: 'P', pseudonym: 'P-0001', event: '', via: [], created: '', updated: '', revision: 1, signature: {}, reason: 'new' };
const project: Project = { name: 'P', active: true, destination: 'dicom://A@h:1', features: new Set(), institution: 'P' };

describe('createTransferAnonymizer().run', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it('de-identifies every file, a few at once, and returns the outputs sorted by path; an unwritable work folder fails the step', async () => {
    await synth(join(dir, 'in'), ['--patients', '1', '--series', '2', '--instances', '4', '--rows', '16', '--seed', 'run']);
    const files = (await filesUnder(join(dir, 'in'))).filter((f) => f.endsWith('.dcm'));
    expect(files).toHaveLength(8);
    const site = await ensureSite(join(dir, 'site'));
    const out = join(dir, 'work');
    const anonymizer = await createTransferAnonymizer({ site, project, request, outDir: out, concurrency: 3 });

    const step = await anonymizer.run([...files].reverse());
    expect(step.refused).toEqual([]);
    expect(step.outputs.map((r) => r.source).sort()).toEqual(files);
    const paths = step.outputs.map((r) => r.path);
    expect(paths).toEqual([...paths].sort());
    expect(await filesUnder(out)).toEqual([...paths].sort());
    for (const p of paths) {
      const h = await readHeader(p);
      expect(h.string('PatientID')).toBe('P-0001');
    }

    // A file gone meanwhile is refused (the rest goes on); a work folder that cannot be
    // written fails the whole step.
    const missing = join(dir, 'in', 'gone.dcm');
    const again = await anonymizer.run([files[0]!, missing]);
    expect(again.outputs).toHaveLength(1);
    expect(again.refused).toMatchObject([{ source: missing, reason: expect.stringMatching(/ENOENT/) }]);
    await writeFile(join(dir, 'not-a-folder'), 'x');
    const blocked = await createTransferAnonymizer({ site, project, request, outDir: join(dir, 'not-a-folder', 'work') });
    await expect(blocked.run(files)).rejects.toThrow(/ENOTDIR|EEXIST|not a directory/i);
  });
});
