import { existsSync, readdirSync } from 'node:fs';
import { chmod, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../site/atomic.js';
import { md5sumLine, verifyZip, writeZip, type EntryRecord } from './zip/index.js';

/**
 * Pack a staged folder into <out>/<name>.zip, safely:
 *   1. stream it to <name>.zip.part (never a name a downloader would take),
 *   2. read the .part back and check every entry (CRC-32, sizes, AES authentication)
 *      against what was written,
 *   3. write <name>.zip.md5 (md5sum -b format, the MD5 of the bytes on disk),
 *   4. rename <name>.zip.part to <name>.zip: the archive appears complete or not at all.
 * On any failure the .part is removed and nothing is published.
 */
export interface ArchiveOptions {
  stageDir: string;
  outDir: string;
  /** File name without .zip; must carry no identifying value (the caller's job). */
  name: string;
  level: number;
  password?: Buffer;
  onEntry?: (entry: EntryRecord) => void;
}

export interface PublishedArchive {
  path: string;
  md5Path: string;
  md5: string;
  bytes: number;
  entries: number;
}

/**
 * Every file under dir, as archive names ('/'-separated, sorted so the archive is stable),
 * one folder at a time: a study of 100,000 instances is never listed in memory at once.
 * Synchronous on purpose (the writer reads each file synchronously too): an async generator
 * cost a promise chain per file and the optimiser more to compile than the listing itself.
 */
export function* listStage(dir: string, prefix = ''): Generator<{ name: string; path: string }> {
  const entries = readdirSync(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.isDirectory()) yield* listStage(join(dir, e.name), `${prefix}${e.name}/`);
    else if (e.isFile()) yield { name: `${prefix}${e.name}`, path: join(dir, e.name) };
  }
}

export function archivePaths(outDir: string, name: string): { zip: string; part: string; md5: string } {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`unsafe archive name ${JSON.stringify(name)}`);
  const zip = join(outDir, `${name}.zip`);
  return { zip, part: `${zip}.part`, md5: `${zip}.md5` };
}

export async function buildArchive(o: ArchiveOptions): Promise<PublishedArchive> {
  const p = archivePaths(o.outDir, o.name);
  try {
    const keyCache = o.password ? new Map() : undefined;
    const written = await writeZip(p.part, listStage(o.stageDir), {
      level: o.level,
      password: o.password,
      onEntry: o.onEntry,
      keyCache,
      sync: false,
      deferMd5: true,
    });
    // The flush to disk (sync: false) and the MD5 (on its worker thread) run while the archive
    // is read back from the page cache; all three must finish before the archive is published.
    await verifyZip(p.part, { password: o.password, digest: written.digest, diskCrcs: written.diskCrcs, keyCache });
    await written.synced;
    const md5 = await written.md5Pending;
    await writeFileAtomic(p.md5, md5sumLine(md5, p.zip));
    // Written 0600 while incomplete; published group-readable, for a web server in the group.
    await chmod(p.part, 0o640);
    await rename(p.part, p.zip);
    await fsyncDir(o.outDir);
    return { path: p.zip, md5Path: p.md5, md5, bytes: written.bytes, entries: written.count };
  } catch (err) {
    await rm(p.part, { force: true });
    if (!existsSync(p.zip)) await rm(p.md5, { force: true });
    throw err;
  }
}

/** Remove what an interrupted run may have left for this archive name (never a finished .zip). */
export async function removePartial(outDir: string, name: string): Promise<void> {
  const p = archivePaths(outDir, name);
  await rm(p.part, { force: true });
}
