import { readFile } from 'node:fs/promises';
import { writeJsonAtomic } from '../site/atomic.js';

/**
 * FIONA's mapping.json: the original -> new Study and Series Instance UIDs of what was
 * anonymized, `{"StudyInstanceUID": {orig: new}, "SeriesInstanceUID": {orig: new}}`. It
 * links research data back to the archive, so it is as sensitive as the archive itself and
 * belongs beside it, never with the research copy. Written atomically; an existing file is
 * merged, so one mapping file can collect several runs.
 */
export type UidMapping = Record<'StudyInstanceUID' | 'SeriesInstanceUID', Record<string, string>>;

export class MappingRecorder {
  private readonly data: UidMapping = { StudyInstanceUID: {}, SeriesInstanceUID: {} };
  private count = 0;

  add(kind: keyof UidMapping, original: string, replaced: string): void {
    if (this.data[kind][original] === undefined) this.count++;
    this.data[kind][original] = replaced;
  }

  get size(): number {
    return this.count;
  }

  snapshot(): UidMapping {
    return { StudyInstanceUID: { ...this.data.StudyInstanceUID }, SeriesInstanceUID: { ...this.data.SeriesInstanceUID } };
  }

  /** Merge into the file (created if missing); a file that is not a mapping is an error, never overwritten. */
  async save(file: string): Promise<void> {
    let existing: Partial<UidMapping> = {};
    try {
      existing = JSON.parse(await readFile(file, 'utf8')) as Partial<UidMapping>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`mapping file ${file} exists but cannot be read as a mapping: ${(err as Error).message}`);
      }
    }
    if (typeof existing !== 'object' || existing === null || Array.isArray(existing)) {
      throw new Error(`mapping file ${file} exists and is not a JSON object`);
    }
    const merged: UidMapping & Record<string, unknown> = {
      ...existing,
      StudyInstanceUID: { ...(existing.StudyInstanceUID ?? {}), ...this.data.StudyInstanceUID },
      SeriesInstanceUID: { ...(existing.SeriesInstanceUID ?? {}), ...this.data.SeriesInstanceUID },
    };
    await writeJsonAtomic(file, merged);
  }
}
