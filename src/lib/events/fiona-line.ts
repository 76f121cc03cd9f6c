import { join } from 'node:path';

/**
 * FIONA's pipe line: `callingAET,calledAET,callerIP,dir,filename`, one per stored file,
 * as storescp's --exec-on-reception wrote it into FIONA's named pipe.
 */
export interface FionaLine {
  calling: string;
  called: string;
  peer: string;
  dir: string;
  file: string;
}

/** AE titles and paths with commas would make the line ambiguous; they are replaced. */
function clean(field: string): string {
  return field.replace(/[,\r\n]/g, '_');
}

export function formatFionaLine(l: FionaLine): string {
  return [l.calling, l.called, l.peer, l.dir, l.file].map(clean).join(',');
}

/** Parse a FIONA pipe line; undefined when the line is not one. */
export function parseFionaLine(text: string): (FionaLine & { path: string }) | undefined {
  const parts = text.split(',');
  if (parts.length !== 5) return undefined;
  const [calling, called, peer, dir, file] = parts.map((p) => p.trim()) as [string, string, string, string, string];
  if (!dir.startsWith('/') || file === '' || file.includes('/')) return undefined;
  return { calling, called, peer, dir, file, path: join(dir, file) };
}
