/**
 * A PACS address as the command line gives it, AET@HOST:PORT. Kept apart from pull.ts so that
 * parsing it does not load the DICOM network stack (dcmjs-dimse and dcmjs: ~25 MB resident),
 * which fiona-zip-export needs only when it pulls.
 */
export interface PacsAddress {
  aet: string;
  host: string;
  port: number;
}

/** AET@HOST:PORT -> address (host may be a name, an IPv4 or [IPv6]). */
export function parsePacsAddress(text: string): PacsAddress {
  const m = /^([^@]{1,16})@(\[[0-9a-fA-F:]+\]|[^:@\s]+):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`not AET@HOST:PORT: ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`port out of range in ${text}`);
  return { aet: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ''), port };
}
