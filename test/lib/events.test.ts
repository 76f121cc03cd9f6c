import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PassThrough, Readable } from 'node:stream';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EventWriter, FifoWriter, formatFionaLine, makeEvent, parseFionaLine, parseInputLine, readInput,
} from '../../src/lib/events/index.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('events', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
  afterEach(() => cleanup());

  it('round-trips FIONA pipe lines', () => {
    const line = formatFionaLine({ calling: 'SCANNER', called: 'FIONA', peer: '127.0.0.1', dir: '/site/archive/1.2/1.3', file: '1.4.dcm' });
    expect(line).toBe('SCANNER,FIONA,127.0.0.1,/site/archive/1.2/1.3,1.4.dcm');
    expect(parseFionaLine(line)).toMatchObject({ calling: 'SCANNER', path: '/site/archive/1.2/1.3/1.4.dcm' });
    // a comma inside a field cannot split the line
    expect(formatFionaLine({ calling: 'A,B', called: 'F', peer: '1', dir: '/d', file: 'f' })).toBe('A_B,F,1,/d,f');
    expect(parseFionaLine('a,b,c,relative,f')).toBeUndefined();
  });

  it('reads events, paths, FIONA lines and reports bad lines', async () => {
    const input = Readable.from([
      `${JSON.stringify(makeEvent('stored', { path: '/x.dcm' }))}\n`,
      '/abs/path.dcm\n\n',
      'S,F,127.0.0.1,/d,f.dcm\n',
      '{"broken": \n',
      'relative/path\n',
    ]);
    const items = [];
    for await (const it of readInput(input)) items.push(it);
    expect(items.map((i) => i.kind)).toEqual(['event', 'path', 'fiona', 'invalid', 'invalid']);
    expect(items[3]!.line).toBe(5);
    expect(parseInputLine('{"a":1}', 1)).toMatchObject({ kind: 'invalid', reason: /event/ });
  });

  it('writes NDJSON and survives a closed reader', () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c) => chunks.push(String(c)));
    let broken = 0;
    const w = new EventWriter(out, () => broken++);
    w.write(makeEvent('listening', { port: 1 }));
    expect(JSON.parse(chunks.join(''))).toMatchObject({ event: 'listening', port: 1, time: expect.any(String) });
    out.emit('error', Object.assign(new Error('EPIPE'), { code: 'EPIPE' }));
    w.write(makeEvent('stored', {}));
    expect(broken).toBe(1);
    expect(w.isBroken).toBe(true);
  });

  it('writes to a FIFO it creates, without a reader and after a reader left', async () => {
    const path = join(dir, 'fiona.pipe');
    const fifo = await FifoWriter.open(path);
    expect(fifo.writeLine('first')).toBe(true); // nobody reads yet: buffered, no block
    const reader = execa('head', ['-n', '2', path]);
    fifo.writeLine('second');
    const { stdout } = await reader;
    expect(stdout.split('\n')).toEqual(['first', 'second']);
    // the reader is gone: writing goes on without EPIPE
    for (let i = 0; i < 10; i++) expect(fifo.writeLine(`after ${i}`)).toBe(true);
    // fill the pipe buffer: lines are dropped and counted, never blocking
    let dropped = false;
    for (let i = 0; i < 5000 && !dropped; i++) dropped = !fifo.writeLine('x'.repeat(100));
    expect(dropped).toBe(true);
    expect(fifo.dropped).toBeGreaterThan(0);
    fifo.close();
    void createReadStream;
  });

  it('opens a FIFO that exists, refuses a regular file', async () => {
    const path = join(dir, 'made-by-reader.pipe');
    await execa('mkfifo', [path]);
    const [a, b] = await Promise.all([FifoWriter.open(path), FifoWriter.open(path)]);
    expect(a.writeLine('x')).toBe(true);
    a.close();
    b.close();
    const file = join(dir, 'plain');
    await (await import('node:fs/promises')).writeFile(file, '');
    await expect(FifoWriter.open(file)).rejects.toThrow(/not a FIFO/);
  });
  it('corkPerTurn: lines corked in a turn still go out when the process dies of an uncaught exception', async () => {
    const writer = pathToFileURL(join(process.cwd(), 'dist/lib/events/writer.js')).href;
    const script = `
      import { EventWriter, corkPerTurn } from ${JSON.stringify(writer)};
      const events = new EventWriter(process.stdout);
      const turn = corkPerTurn(process.stdout);
      turn.cork();
      events.write({ event: 'anonymized', n: 1 });
      events.write({ event: 'anonymized', n: 2 });
      throw new Error('boom');`;
    const r = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('boom');
    expect(r.stdout.split('\n').map((l) => JSON.parse(l).n)).toEqual([1, 2]);
  });
});
