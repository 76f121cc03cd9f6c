import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import { FionaError, EXIT } from '../errors.js';

/** The folders of a site on disk (see DESIGN.md, "The site on disk"). */
export interface SiteLayout {
  root: string;
  arrived: string;
  archive: string;
  quarantine: string;
  state: string;
  raw: string;
  participants: string;
  studies: string;
}

export function siteLayout(root: string): SiteLayout {
  const abs = resolve(root);
  return {
    root: abs,
    arrived: join(abs, '.arrived'),
    archive: join(abs, 'archive'),
    quarantine: join(abs, 'quarantine'),
    state: join(abs, 'state'),
    raw: join(abs, 'raw'),
    participants: join(abs, 'participants'),
    studies: join(abs, 'studies'),
  };
}

/** Create the site's folders (idempotent). */
export async function ensureSite(root: string): Promise<SiteLayout> {
  const layout = siteLayout(root);
  try {
    for (const dir of [layout.arrived, layout.archive, layout.quarantine, layout.state]) {
      await mkdir(dir, { recursive: true });
    }
  } catch (err) {
    throw new FionaError(`cannot create the site folders under ${layout.root}: ${(err as Error).message}`, EXIT.UNAVAILABLE, { cause: err });
  }
  return layout;
}

export class UnsafeUidError extends Error {
  constructor(readonly field: string, readonly value: string) {
    super(`${field} is not a valid UID: ${JSON.stringify(value.slice(0, 80))}`);
  }
}

export function checkPathUid(field: string, value: string | undefined): string {
  if (value === undefined || !isPathSafeUid(value)) throw new UnsafeUidError(field, value ?? '(missing)');
  return value;
}

/** raw/<Study>/<Series>.json: fiona-classify's record of a series (read by export, burned-in checks, manifests). */
export function seriesJsonPath(layout: SiteLayout, study: string, series: string): string {
  return join(layout.raw, study, `${series}.json`);
}

/** archive/<Study>/<Series>/<SOP>.dcm; throws UnsafeUidError when a UID is not path-safe. */
export function archivePath(layout: SiteLayout, study: string | undefined, series: string | undefined, sop: string | undefined): string {
  return join(
    layout.archive,
    checkPathUid('StudyInstanceUID', study),
    checkPathUid('SeriesInstanceUID', series),
    `${checkPathUid('SOPInstanceUID', sop)}.dcm`,
  );
}
