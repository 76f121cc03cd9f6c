import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/lib/dicom/index.js';
import type { Project } from '../../src/lib/route/types.js';
import { ensureSite } from '../../src/lib/site/layout.js';
import { createTransferAnonymizer, projectRulesFor } from '../../src/lib/transfer/anonymize.js';
import { selectSeries } from '../../src/lib/transfer/features.js';
import type { TransferRequest } from '../../src/lib/transfer/requests.js';
import type { SeriesInfo, StudyInfo } from '../../src/lib/route/study.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { synth } from './setup.js';

const request = (event: string): TransferRequest => ({ version: 1, id: 'x', study: '1.2', project: 'P', pseudonym: 'P-0001', event, via: [], created: '', updated: '', revision: 1, signature: {}, reason: 'new' });
const project = (o: Partial<Project> = {}): Project => ({ name: 'P', active: true, destination: 'dicom://A@h:1', features: new Set(), institution: 'P', ...o });

describe('what a transfer tells the anonymizer', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it('pseudonym as PatientID and PatientName; FIONA\'s event tags and institution by default', () => {
    const r = projectRulesFor(project(), request('baseline'));
    expect(r.patientId).toBe('P-0001');
    expect(r.patientName).toBe('P-0001');
    const set = Object.fromEntries(r.set.map((s) => [s.tag.toString(16).padStart(8, '0'), s.value]));
    expect(set).toEqual({ '00080080': 'P', '00402001': 'EventName:baseline', '00401002': 'EventName:baseline', '00080090': 'EventName:baseline' });
    // No event: no event tags (FIONA added them only with an event name).
    expect(projectRulesFor(project({ institution: 'Research' }), request('')).set.map((s) => s.value)).toEqual(['Research']);
  });

  it('a project rules file that sets one of those tags decides for it', async () => {
    const file = join(dir, 'p.json');
    await writeFile(file, JSON.stringify({ name: 'P', set: { ReferringPhysicianName: '', InstitutionName: 'MMIV' } }));
    const r = projectRulesFor(project({ rules: file }), request('visit2'));
    const set = new Map(r.set.map((s) => [s.tag, s.value]));
    expect(set.get(0x00080090)).toBe('');
    expect(set.get(0x00080080)).toBe('MMIV');
    expect(set.get(0x00402001)).toBe('EventName:visit2');
  });

  it('features drop presentation states, secondary captures and possible burned-in series', () => {
    const s = (uid: string, o: Partial<SeriesInfo>): SeriesInfo => ({ uid, files: ['f'], classifyTypes: [], header: {}, ...o });
    const study = {
      series: [
        s('1', { modality: 'MR' }),
        s('2', { modality: 'PR' }),
        s('3', { sopClassUid: '1.2.840.10008.5.1.4.1.1.11.1' }),
        s('4', { sopClassUid: '1.2.840.10008.5.1.4.1.1.7' }),
        s('5', { sopClassUid: '1.2.840.10008.5.1.4.1.1.7.4' }),
        s('6', { burnedInAnnotation: 'YES' }),
        s('7', { classifyTypes: ['CHECKBURNEDINFO'] }),
      ],
    } as StudyInfo;
    const ids = (f: string[]) => selectSeries(study, new Set(f as never[])).send.map((x) => x.uid).join('');
    expect(ids([])).toBe('1234567');
    expect(ids(['drop-presentation-states'])).toBe('14567');
    expect(ids(['drop-secondary-captures'])).toBe('1236');
    expect(ids(['never-release-burned-in'])).toBe('12345');
  });

  it('de-identifies every file, a few at once, and returns the outputs sorted by path; an unwritable work folder fails the step', async () => {
    await synth(join(dir, 'in'), ['--patients', '1', '--series', '2', '--instances', '4', '--rows', '16', '--seed', 'run']);
    const files = (await filesUnder(join(dir, 'in'))).filter((f) => f.endsWith('.dcm'));
    expect(files).toHaveLength(8);
    const site = await ensureSite(join(dir, 'site'));
    const out = join(dir, 'work');
    const anonymizer = await createTransferAnonymizer({ site, project: project(), request: request(''), outDir: out, concurrency: 3 });

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
    const blocked = await createTransferAnonymizer({ site, project: project(), request: request(''), outDir: join(dir, 'not-a-folder', 'work') });
    await expect(blocked.run(files)).rejects.toThrow(/ENOTDIR|EEXIST|not a directory/i);
  });
});
