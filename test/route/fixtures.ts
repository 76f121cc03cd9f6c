import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { siteLayout, type SiteLayout } from '../../src/lib/site/index.js';

/**
 * A study on disk the way receive + classify leave it: instances under archive/, FIONA's
 * series JSON under raw/. Instance bytes are placeholders unless `files` gives real ones.
 */
export interface FixtureSeries {
  uid: string;
  instances?: number;
  modality?: string;
  sopClassUid?: string;
  classifyTypes?: string[];
  burnedIn?: string;
  /** Real instance files to copy in (name -> bytes). */
  files?: Record<string, Uint8Array>;
  /** Leave out the raw/ JSON (classify did not run). */
  noMeta?: boolean;
}

export interface FixtureStudy {
  uid: string;
  patientId?: string;
  patientName?: string;
  accessionNumber?: string;
  calling?: string;
  called?: string;
  series: FixtureSeries[];
}

export async function writeStudy(siteDir: string, s: FixtureStudy): Promise<SiteLayout> {
  const site = siteLayout(siteDir);
  for (const se of s.series) {
    const dir = join(site.archive, s.uid, se.uid);
    await mkdir(dir, { recursive: true });
    const files = se.files ?? Object.fromEntries(Array.from({ length: se.instances ?? 2 }, (_, i) => [`${se.uid}.${i + 1}.dcm`, Buffer.from(`placeholder ${i}`)]));
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
    if (se.noMeta) continue;
    await mkdir(join(site.raw, s.uid), { recursive: true });
    await writeFile(join(site.raw, s.uid, `${se.uid}.json`), JSON.stringify({
      StudyInstanceUID: s.uid,
      SeriesInstanceUID: se.uid,
      PatientID: s.patientId ?? 'PID1',
      PatientName: s.patientName ?? 'Doe^Jane',
      AccessionNumber: s.accessionNumber ?? '',
      StudyDate: '20240131',
      StudyTime: '101500',
      StudyDescription: 'MR HEAD',
      InstitutionName: 'Haukeland',
      SeriesDescription: `series ${se.uid}`,
      Modality: se.modality ?? 'MR',
      SOPClassUID: se.sopClassUid ?? '1.2.840.10008.5.1.4.1.1.4',
      ClassifyType: se.classifyTypes ?? ['MR'],
      ...(se.burnedIn ? { BurnedInAnnotation: se.burnedIn } : {}),
      NumFiles: Object.keys(files).length,
      IncomingConnection: { AETitleCaller: s.calling ?? 'SCANNER', AETitleCalled: s.called ?? 'FIONA', CallerIP: '127.0.0.1' },
    }));
  }
  return site;
}
