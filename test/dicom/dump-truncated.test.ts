import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTool } from '../helpers/cli.js';
import { useFixtures } from './fixtures.js';

const { fx, dir } = useFixtures('fiona-dump-cut-');

describe('fiona-dump on a file cut inside its pixel data', () => {
  it('names the file, the offset and the pixel data tag, goes on with the next file and exits 1', async () => {
    const whole = await readFile(fx.synth!);
    const cut = join(dir(), 'cut.dcm');
    await writeFile(cut, whole.subarray(0, whole.length - 100));
    const r = await runTool('fiona-dump', ['--tag', 'PatientID', cut, fx.synth!]);
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toMatch(/cut\.dcm: value of length \d+ runs past the end of the file \(\d+ bytes\).*at offset \d+, tag \(7FE0,0010\)/);
    // The whole file is still printed; the cut one is not.
    expect(String(r.stdout).trim().split('\n')).toHaveLength(1);
    expect(String(r.stdout)).toContain(fx.synth!);
    // The offset is the element's, as the full walk (--all, the parser every tool uses) says it.
    const all = await runTool('fiona-dump', ['--all', cut]);
    expect(all.exitCode).toBe(1);
    const offsetOf = (text: string): string | undefined => /at offset (\d+), tag \(7FE0,0010\)/.exec(text)?.[1];
    expect(offsetOf(String(r.stderr))).toBeDefined();
    expect(offsetOf(String(r.stderr))).toBe(offsetOf(String(all.stderr)));
  });
});
