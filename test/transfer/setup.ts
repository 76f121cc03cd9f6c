import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { readHeader } from '../../src/lib/dicom/index.js';
import { binPath } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startOrthanc, type Orthanc } from '../peers/orthanc.js';

/**
 * A study in a site as receive + classify + detect-study leave it, made from fiona-synth's
 * output: archive/<Study>/<Series>/<SOP>.dcm, raw/<Study>/<Series>.json with FIONA's
 * fields (the connection given here), studies/<Study>.json.
 */
export interface ImportedStudy {
  uid: string;
  patientId: string;
  series: string[];
  files: string[];
}

export async function synth(out: string, args: string[]): Promise<void> {
  await execa(binPath('fiona-synth'), ['--out', out, ...args], { env: { NO_COLOR: '1' } });
}

export async function importStudies(
  synthDir: string,
  siteDir: string,
  conn: { calling: string; called: string },
  patch: (series: string, json: Record<string, unknown>) => void = () => {},
): Promise<ImportedStudy[]> {
  const byStudy = new Map<string, ImportedStudy>();
  const seriesJson = new Map<string, Record<string, unknown>>();
  for (const f of (await filesUnder(synthDir)).filter((n) => n.endsWith('.dcm'))) {
    const h = await readHeader(f);
    const study = h.string('StudyInstanceUID')!;
    const series = h.string('SeriesInstanceUID')!;
    const sop = h.string('SOPInstanceUID')!;
    const dest = join(siteDir, 'archive', study, series, `${sop}.dcm`);
    await mkdir(join(siteDir, 'archive', study, series), { recursive: true });
    await copyFile(f, dest);
    let s = byStudy.get(study);
    if (!s) byStudy.set(study, (s = { uid: study, patientId: h.string('PatientID') ?? '', series: [], files: [] }));
    if (!s.series.includes(series)) s.series.push(series);
    s.files.push(dest);
    const key = `${study}/${series}`;
    const j = seriesJson.get(key) ?? {
      IncomingConnection: { AETitleCaller: conn.calling, AETitleCalled: conn.called, CallerIP: '127.0.0.1' },
      StudyInstanceUID: study,
      SeriesInstanceUID: series,
      PatientID: h.string('PatientID') ?? '',
      PatientName: h.string('PatientName') ?? '',
      StudyDate: h.string('StudyDate') ?? '',
      SeriesDescription: h.string('SeriesDescription') ?? '',
      Modality: h.string('Modality') ?? '',
      SOPClassUID: h.string('SOPClassUID') ?? '',
      NumFiles: 0,
      ClassifyType: ['MR'],
    };
    j.NumFiles = (j.NumFiles as number) + 1;
    seriesJson.set(key, j);
  }
  for (const [key, j] of seriesJson) {
    const [study, series] = key.split('/') as [string, string];
    patch(series, j);
    await mkdir(join(siteDir, 'raw', study), { recursive: true });
    await writeFile(join(siteDir, 'raw', study, `${series}.json`), JSON.stringify(j));
  }
  await mkdir(join(siteDir, 'studies'), { recursive: true });
  for (const s of byStudy.values()) await writeFile(join(siteDir, 'studies', `${s.uid}.json`), JSON.stringify({ study: s.uid }));
  return [...byStudy.values()];
}

/** What useResearchPacs gives each test: the PACS (one per describe block) and a fresh folder. */
export interface ResearchPacsFixture {
  pacs: Orthanc;
  dir: string;
  /** <dir>/site (not created: the tools make it). */
  siteDir: string;
}

/**
 * A real Orthanc as the research PACS (AE title RPACS) for the calling describe block, and a
 * temp folder per test. The PACS is emptied after each test, so counts stay exact when the
 * next test sends another synthetic patient. Read the fields inside hooks and tests: they
 * are set when the hooks run.
 */
export function useResearchPacs(): ResearchPacsFixture {
  const fx = {} as ResearchPacsFixture;
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    fx.pacs = await startOrthanc({ aet: 'RPACS' });
  });
  afterAll(async () => {
    await fx.pacs?.stop();
  });
  beforeEach(async () => {
    const t = await makeTempDir();
    cleanup = t.cleanup;
    fx.dir = t.dir;
    fx.siteDir = join(t.dir, 'site');
  });
  afterEach(async () => {
    for (const id of await fx.pacs.rest<string[]>('GET', '/studies')) await fx.pacs.rest('DELETE', `/studies/${id}`);
    await cleanup?.();
  });
  return fx;
}
