import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parseFionaLine } from './fiona-line.js';
import type { BaseEvent, InputItem } from './types.js';

/** Classify one input line: an NDJSON event, a FIONA pipe line, or a plain absolute path. */
export function parseInputLine(text: string, line: number): InputItem | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (t.startsWith('{')) {
    try {
      const v = JSON.parse(t) as unknown;
      if (typeof v === 'object' && v !== null && typeof (v as BaseEvent).event === 'string') {
        return { kind: 'event', event: v as BaseEvent, line };
      }
      return { kind: 'invalid', text: t, reason: 'JSON without an "event" field', line };
    } catch (err) {
      return { kind: 'invalid', text: t, reason: `not valid JSON: ${(err as Error).message}`, line };
    }
  }
  const fiona = parseFionaLine(t);
  if (fiona) return { kind: 'fiona', ...fiona, line };
  if (t.startsWith('/') && !t.includes('\0')) return { kind: 'path', path: t, line };
  return { kind: 'invalid', text: t, reason: 'neither an event, a FIONA pipe line nor an absolute path', line };
}

/** Read input items from a stream (stdin or a FIFO), one per non-empty line. */
export async function* readInput(stream: Readable): AsyncGenerator<InputItem> {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let n = 0;
  for await (const text of rl) {
    n++;
    const item = parseInputLine(text, n);
    if (item) yield item;
  }
}
