import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../helpers/tmp.js';

const ROOT = join(import.meta.dirname, '..', '..');

// `npm run demo` is the README's first command on a fresh machine: it must run end to end,
// needing nothing but Node, and say what it did in plain text when stdout is not a terminal.
describe('npm run demo (examples/demo.mjs)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    tmp = await makeTempDir('fiona-demo-test-');
  });
  afterEach(() => tmp.cleanup());

  it('receives, classifies, de-identifies, sends and exports the built-in sample; plain text off a terminal', async () => {
    const env = { ...process.env };
    delete env.NO_COLOR;
    const r = await execa(process.execPath, [join(ROOT, 'examples/demo.mjs'), '--out', tmp.dir], { reject: false, env, timeout: 120_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const out = String(r.stdout);
    expect(out).not.toContain('\x1b');
    const sent = /(\d+) instances sent and acknowledged/.exec(out)?.[1];
    expect(Number(sent)).toBeGreaterThan(0);
    expect(out).toContain(`${sent} de-identified instances stored at the research PACS`);
    // The original patient ID is shown on the left of its row, never on the right.
    const idRow = /PatientID\s+(\S+)\s+->\s+(\S*)/.exec(out);
    expect(idRow?.[1]).toBeTruthy();
    expect(idRow?.[2]).not.toBe(idRow?.[1]);
    // The export's MD5 line is the MD5 of the ZIP it names.
    const zip = /^\s+(\/\S+\.zip) \(\d+ bytes\)$/m.exec(out)?.[1];
    expect(zip).toBeDefined();
    const md5 = createHash('md5').update(await readFile(zip!)).digest('hex');
    expect(out).toContain(`md5 ${md5} *${basename(zip!)}`);
  }, 150_000);
});
