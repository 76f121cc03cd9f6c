import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  archivePath, ensureSite, quarantineFile, sanitizePathPart, tryLock, writeFileAtomic, UnsafeUidError,
} from '../../src/lib/site/index.js';
import { makeTempDir } from '../helpers/tmp.js';
import { dirSyncUnsupported, fsyncDir } from '../../src/lib/site/fsync-dir.js';
import { fsyncDirSync } from '../../src/lib/dicom/publish.js';

describe('site', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it('creates the layout', async () => {
    const s = await ensureSite(join(dir, 'site'));
    for (const d of [s.arrived, s.archive, s.quarantine, s.state]) expect(existsSync(d)).toBe(true);
  });

  it('builds archive paths only from safe UIDs', async () => {
    const s = await ensureSite(dir);
    expect(archivePath(s, '1.2.3', '1.2.3.4', '1.2.3.4.5')).toBe(join(s.archive, '1.2.3/1.2.3.4/1.2.3.4.5.dcm'));
    expect(() => archivePath(s, '../../etc', '1.2', '1.3')).toThrowError(UnsafeUidError);
    expect(() => archivePath(s, '1.2', '1.2/3', '1.3')).toThrowError(/SeriesInstanceUID/);
    expect(() => archivePath(s, '1.2', '1.2', undefined)).toThrowError(/SOPInstanceUID/);
    expect(() => archivePath(s, '1.2', '1.2', '1.'.repeat(40) + '1')).toThrowError(UnsafeUidError);
  });

  it('sanitises other header values used in paths', () => {
    expect(sanitizePathPart('../../etc/passwd')).toBe('etc_passwd');
    expect(sanitizePathPart('..')).toBe('unknown');
    expect(sanitizePathPart('Müller^Jürgen')).toBe('Muller_Jurgen');
    expect(sanitizePathPart('a\0b\nc')).toBe('a_b_c');
    expect(sanitizePathPart('')).toBe('unknown');
  });

  it('writes atomically and leaves no temp file', async () => {
    const target = join(dir, 'a', 'b.json');
    await writeFileAtomic(target, 'one');
    await writeFileAtomic(target, 'two');
    expect(await readFile(target, 'utf8')).toBe('two');
    expect(await readdir(join(dir, 'a'))).toEqual(['b.json']);
  });

  it('quarantines with a reason file', async () => {
    const src = join(dir, 'bad.dcm');
    await writeFile(src, 'not dicom');
    const q = await quarantineFile(join(dir, 'q'), src, 'not DICOM');
    expect(existsSync(src)).toBe(false);
    expect(await readFile(q.path, 'utf8')).toBe('not dicom');
    const reason = JSON.parse(await readFile(`${q.path}.reason.json`, 'utf8'));
    expect(reason.reason).toBe('not DICOM');
    expect(reason.original).toBe(src);
  });

  it('locks against a live holder and takes over a dead one', async () => {
    const path = join(dir, 'state', 'x.lock');
    const a = await tryLock(path);
    expect(a).toBeDefined();
    expect(await tryLock(path)).toBeUndefined();
    await a!.release();
    // A holder killed with -9: its pid no longer exists.
    const child = execa('sleep', ['10']);
    await writeFile(path, JSON.stringify({ pid: child.pid, host: (await import('node:os')).hostname(), time: '' }));
    expect(await tryLock(path)).toBeUndefined();
    child.kill('SIGKILL');
    await child.catch(() => undefined);
    const b = await tryLock(path);
    expect(b).toBeDefined();
    await b!.release();
    expect(existsSync(path)).toBe(false);
  });
});

describe('folder fsync', () => {
  it('syncs a folder, and throws what is not "folders cannot be synced here" (a file must not be reported durable after a failed sync)', async () => {
    const t = await makeTempDir('fiona-fsyncdir-');
    try {
      await expect(fsyncDir(t.dir)).resolves.toBeUndefined();
      expect(() => fsyncDirSync(t.dir)).not.toThrow();
      const gone = join(t.dir, 'gone');
      await expect(fsyncDir(gone)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(() => fsyncDirSync(gone)).toThrow(/ENOENT/);
      for (const code of ['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EBADF', 'EISDIR', 'EACCES']) expect(dirSyncUnsupported(Object.assign(new Error(code), { code }))).toBe(true);
      for (const code of ['EIO', 'EMFILE', 'ENOSPC', 'ENOENT', undefined]) expect(dirSyncUnsupported(Object.assign(new Error(String(code)), { code }))).toBe(false);
    } finally {
      await t.cleanup();
    }
  });
});
