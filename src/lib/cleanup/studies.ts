/**
 * The studies of a site and when each last received an instance. Adding a file to a folder
 * changes the folder's mtime, so the newest mtime of archive/<Study>/ and its series folders
 * is the last arrival, found without a stat per file.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isPathSafeUid } from '../dicom/uid.js';
import type { SiteLayout } from '../site/layout.js';

export interface SiteStudy {
  study: string;
  archiveDir: string;
  lastArrival: number;
}

export async function listStudies(layout: SiteLayout): Promise<SiteStudy[]> {
  let names: string[];
  try {
    names = await readdir(layout.archive);
  } catch {
    return [];
  }
  const out: SiteStudy[] = [];
  for (const study of names) {
    if (!isPathSafeUid(study)) continue; // not a study folder fiona made
    const dir = join(layout.archive, study);
    try {
      const st = await stat(dir);
      if (!st.isDirectory()) continue;
      let newest = st.mtimeMs;
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const s = await stat(join(dir, e.name));
        newest = Math.max(newest, s.mtimeMs);
      }
      out.push({ study, archiveDir: dir, lastArrival: newest });
    } catch {
      // removed meanwhile
    }
  }
  return out.sort((a, b) => a.lastArrival - b.lastArrival || a.study.localeCompare(b.study));
}

/** Bytes on disk (allocated blocks) and files under a folder. */
export async function folderUsage(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return { bytes, files };
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const sub = await folderUsage(p);
      bytes += sub.bytes;
      files += sub.files;
    } else if (e.isFile()) {
      try {
        const s = await stat(p);
        bytes += s.blocks * 512;
        files++;
      } catch {
        // gone
      }
    }
  }
  return { bytes, files };
}
