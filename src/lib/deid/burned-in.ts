import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isPathSafeUid, type DicomHeader } from '../dicom/index.js';
import { siteLayout } from '../site/layout.js';

/**
 * Burned-in identity: text in the pixels no header edit can remove. An instance is
 * suspect when it says BurnedInAnnotation YES, or when fiona-classify put its series in the
 * CHECKBURNEDINFO class (FIONA's rule for screenshots, secondary captures and the like;
 * series JSON at <site>/raw/<Study>/<Series>.json).
 */
export const CHECK_BURNED_IN_CLASS = 'CHECKBURNEDINFO';

export class SeriesClassLookup {
  private readonly cache = new Map<string, Promise<string[]>>();
  constructor(private readonly site: string) {}

  /** The series' ClassifyType list, [] when fiona-classify wrote none (yet). */
  types(study: string, series: string): Promise<string[]> {
    if (!isPathSafeUid(study) || !isPathSafeUid(series)) return Promise.resolve([]);
    const file = join(siteLayout(this.site).raw, study, `${series}.json`);
    let p = this.cache.get(file);
    if (!p) {
      p = readFile(file, 'utf8').then(
        (text) => {
          const v = JSON.parse(text) as { ClassifyType?: unknown };
          return Array.isArray(v.ClassifyType) ? v.ClassifyType.filter((x): x is string => typeof x === 'string') : [];
        },
        () => [],
      );
      if (this.cache.size > 1000) this.cache.clear();
      this.cache.set(file, p);
    }
    return p;
  }
}

/** Why the instance's own header says it carries burned-in identity, or undefined (no I/O). */
export function annotationReason(h: DicomHeader): string | undefined {
  return (h.string(0x00280301) ?? '').toUpperCase() === 'YES' ? 'BurnedInAnnotation is YES' : undefined;
}

/** Why an instance may carry burned-in identity, or undefined. */
export async function burnedInReason(h: DicomHeader, lookup?: SeriesClassLookup): Promise<string | undefined> {
  const own = annotationReason(h);
  if (own) return own;
  if (lookup) {
    const study = h.string(0x0020000d);
    const series = h.string(0x0020000e);
    if (study && series) {
      const types = await lookup.types(study, series);
      if (types.some((t) => t.toUpperCase() === CHECK_BURNED_IN_CLASS)) return `the series is classified ${CHECK_BURNED_IN_CLASS}`;
    }
  }
  return undefined;
}
