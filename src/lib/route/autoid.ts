import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sanitizePathPart } from '../site/sanitize.js';
import { compileAutoIdPattern } from './autoid-pattern.js';
import { loadOrCreateKey, writePrivateFileAtomic } from './private-file.js';
import type { Project } from './types.js';
import { withLock } from '../site/lock.js';

/**
 * Automatic pseudonyms: the same patient always gets the same ID in a project, a new patient
 * a new random ID that follows the project's pattern and no one else has. The mapping is
 * kept under <site>/state/autoid/ (folder 0700, files 0600): keyed hashes of PatientID
 * (HMAC-SHA256 with a key that never leaves the gateway) to IDs, so even the mapping file
 * does not hold a patient's ID. FIONA kept unkeyed SHA-512 hashes in REDCap's AutoID project;
 * an unkeyed hash of a short hospital number is reversed by trying every number.
 */
export interface AutoIdEntry {
  id: string;
  created: string;
}

interface MappingFile {
  project: string;
  pattern: string;
  entries: Record<string, AutoIdEntry>;
}

export class AutoIdError extends Error {}

export class AutoIdStore {
  private key?: Buffer;
  constructor(readonly dir: string) {}

  /** <site>/state/autoid */
  static forState(stateDir: string): AutoIdStore {
    return new AutoIdStore(join(stateDir, 'autoid'));
  }

  private fileFor(project: string): string {
    // Project names may hold spaces and other characters; the short hash keeps two names
    // that sanitise alike apart.
    const h = createHash('sha256').update(project).digest('hex').slice(0, 8);
    return join(this.dir, `${sanitizePathPart(project, 'project', 40)}.${h}.json`);
  }

  private async hmacKey(): Promise<Buffer> {
    this.key ??= await loadOrCreateKey(join(this.dir, 'key'));
    return this.key;
  }

  /** The keyed hash under which a patient's ID is kept for a project. */
  async keyedHash(project: string, patientId: string): Promise<string> {
    return createHmac('sha256', await this.hmacKey()).update(project).update('\0').update(patientId).digest('hex');
  }

  private async read(file: string, project: Project): Promise<MappingFile> {
    try {
      const m = JSON.parse(await readFile(file, 'utf8')) as MappingFile;
      if (typeof m.entries !== 'object' || m.entries === null) throw new Error('no entries');
      return m;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return { project: project.name, pattern: project.autoId?.pattern ?? '', entries: {} };
      }
      // Never start a fresh mapping over a damaged one: that would give known patients new IDs.
      throw new AutoIdError(`the automatic-ID mapping ${file} cannot be read: ${(err as Error).message}`);
    }
  }

  /** The patient's ID in the project: the one given before, or a new one. */
  async idFor(project: Project, patientId: string): Promise<{ id: string; created: boolean }> {
    if (!project.autoId) throw new AutoIdError(`project ${project.name} derives no automatic IDs`);
    if (patientId.trim() === '') throw new AutoIdError('the study has no PatientID to derive an automatic ID from');
    const gen = compileAutoIdPattern(project.autoId.pattern);
    const hash = await this.keyedHash(project.name, patientId);
    const file = this.fileFor(project.name);
    const known = (await this.read(file, project)).entries[hash];
    if (known) return { id: known.id, created: false };
    return withLock(`${file}.lock`, async () => {
      const m = await this.read(file, project);
      const again = m.entries[hash];
      if (again) return { id: again.id, created: false };
      const used = new Set(Object.values(m.entries).map((e) => e.id));
      if (used.size >= gen.capacity) {
        throw new AutoIdError(`project ${project.name} has given out all ${gen.capacity} IDs its pattern ${project.autoId!.pattern} allows`);
      }
      let id = gen.generate();
      for (let tries = 0; used.has(id); tries++) {
        if (tries > 100_000) throw new AutoIdError(`no free ID left for project ${project.name} after many tries`);
        id = gen.generate();
      }
      m.entries[hash] = { id, created: new Date().toISOString() };
      m.pattern = project.autoId!.pattern;
      await writePrivateFileAtomic(file, `${JSON.stringify(m, null, 1)}\n`);
      return { id, created: true };
    });
  }
}
