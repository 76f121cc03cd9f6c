import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, isValidAet } from '../../src/lib/config/config.js';
import { ConfigError } from '../../src/lib/errors.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('config', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it('reads FIONA keys DICOMPORT, DICOMAETITLE and DATADIR', () => {
    const c = parseConfig({ DICOMPORT: '4006', DICOMAETITLE: 'FIONA2', DATADIR: '/data/site' });
    expect(c.port).toBe(4006);
    expect(c.aet).toBe('FIONA2');
    expect(c.site).toBe('/data/site');
  });

  it("prefers fiona's own keys over FIONA's", () => {
    const c = parseConfig({ port: 104, DICOMPORT: 4006, aet: 'NEW', DICOMAETITLE: 'OLD' });
    expect([c.port, c.aet]).toEqual([104, 'NEW']);
  });

  it('names the bad key in the error', () => {
    expect(() => parseConfig({ DICOMPORT: 'http' })).toThrowError(/DICOMPORT/);
    expect(() => parseConfig({ port: 70000 })).toThrowError(/port: must be an integer in 0\.\.65535/);
    expect(() => parseConfig({ aet: 'A\\B' })).toThrowError(/aet: not a valid AE title/);
    expect(() => parseConfig({ allow: ['OK', 'WAY_TOO_LONG_AE_TITLE'] })).toThrowError(/allow\[1\]/);
    expect(() => parseConfig([])).toThrowError(ConfigError);
  });

  it('loads from FIONA_CONFIG and reports the file on bad JSON', async () => {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ DICOMPORT: 11113 }));
    expect(loadConfig(undefined, { FIONA_CONFIG: good }).port).toBe(11113);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"port": 1,');
    expect(() => loadConfig(bad)).toThrowError(new RegExp(`${bad}.*not valid JSON`));
  });

  it('checks AE titles', () => {
    expect(isValidAet('FIONA')).toBe(true);
    expect(isValidAet('')).toBe(false);
    expect(isValidAet('    ')).toBe(false);
    expect(isValidAet('X'.repeat(17))).toBe(false);
  });
});
