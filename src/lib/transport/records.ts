/**
 * Delivery records: which study of a site went where, so that fiona-cleanup knows what it
 * may remove. One NDJSON file per study, appended to (O_APPEND lines under 4 KiB are
 * atomic, so concurrent writers need no lock):
 *
 *   <site>/state/delivered/<StudyInstanceUID>.ndjson
 *   {"study":"1.2.3","to":"dicom://PACS@host:104?calling=FIONA","tool":"fiona-send","time":"...","files":120}
 *
 * Written by fiona-send for files from the site's archive (or events naming their source
 * study); other tools that deliver or export a study (transfer, zip-export) call
 * recordDelivery() with `kind: "exported"` or their own tool name.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import { siteLayout } from '../site/index.js';

export interface DeliveryRecord {
  study: string;
  /** Destination URL, or the export's path. */
  to: string;
  tool: string;
  /** 'sent' (fiona-send) or 'exported' (an archive was made for the study). */
  kind: 'sent' | 'exported';
  time: string;
  files: number;
}

export function deliveredDir(site: string): string {
  return join(siteLayout(site).state, 'delivered');
}

export async function recordDelivery(site: string, rec: Omit<DeliveryRecord, 'time'> & { time?: string }): Promise<void> {
  if (!isPathSafeUid(rec.study)) throw new Error(`not a valid StudyInstanceUID for a delivery record: ${JSON.stringify(rec.study)}`);
  const dir = deliveredDir(site);
  await mkdir(dir, { recursive: true });
  const line = JSON.stringify({ ...rec, time: rec.time ?? new Date().toISOString() });
  await appendFile(join(dir, `${rec.study}.ndjson`), `${line}\n`, { flag: 'a' });
}

export async function readDeliveries(site: string, study: string): Promise<DeliveryRecord[]> {
  if (!isPathSafeUid(study)) return [];
  let text: string;
  try {
    text = await readFile(join(deliveredDir(site), `${study}.ndjson`), 'utf8');
  } catch {
    return [];
  }
  const out: DeliveryRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as DeliveryRecord;
      if (r.study === study) out.push(r);
    } catch {
      // a torn last line after a crash: ignore it
    }
  }
  return out;
}

/** The study folder of a file under <site>/archive/<Study>/..., or undefined. */
export function archiveStudyOf(site: string, path: string): string | undefined {
  const archive = siteLayout(site).archive + sep;
  const abs = resolve(path);
  if (!abs.startsWith(archive)) return undefined;
  const study = abs.slice(archive.length).split(sep)[0];
  return study && isPathSafeUid(study) ? study : undefined;
}
