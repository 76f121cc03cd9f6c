import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** fiona's version, from its package.json (read once per process; '0' if it cannot be read). */
export function fionaVersion(): string {
  if (cached === undefined) {
    try {
      cached = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      cached = '0';
    }
  }
  return cached;
}
