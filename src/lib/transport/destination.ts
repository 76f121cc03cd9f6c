/**
 * Destination URLs (DESIGN.md, "Command-line contract"):
 *   dicom://CALLED@HOST:PORT?calling=AET    C-STORE to a PACS (port 104 when omitted)
 *   sftp://USER@HOST:PORT/DIR               SFTP upload with key auth (port 22 when omitted)
 */
import { isValidAet } from '../config/config.js';
import { UsageError } from '../errors.js';
import type { DicomPeer } from '../net/scu/association.js';

export interface DicomDestination {
  kind: 'dicom';
  /** The URL as shown in events (no secrets: dicom URLs have none). */
  url: string;
  peer: DicomPeer;
}

export interface SftpDestination {
  kind: 'sftp';
  url: string;
  user: string;
  host: string;
  port: number;
  /** Remote folder (absolute, or relative to the login folder when the URL path starts with /~/). */
  dir: string;
}

export type Destination = DicomDestination | SftpDestination;

/**
 * Files uploaded at once over one SFTP connection when the caller does not say (fiona-send's
 * --parallel default). Here, not in sftp.ts, so fiona-send can show it without loading ssh2.
 */
export const DEFAULT_PARALLEL = 16;

function decode(part: string, what: string, text: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new UsageError(`--to ${text}: bad percent-encoding in the ${what}`);
  }
}

function portOf(u: URL, fallback: number, text: string): number {
  if (u.port === '') return fallback;
  const n = Number(u.port);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`--to ${text}: port must be 1..65535`);
  return n;
}

/** Hostname without IPv6 brackets. */
function hostOf(u: URL, text: string): string {
  const h = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (h === '') throw new UsageError(`--to ${text}: no host`);
  return h;
}

export function parseDestination(text: string, defaults: { callingAet?: string } = {}): Destination {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`--to ${text}: not a URL (use dicom://CALLED@HOST:PORT?calling=AET or sftp://USER@HOST:PORT/DIR)`);
  }
  if (u.protocol === 'dicom:') {
    const called = decode(u.username, 'called AE title', text);
    if (!called) throw new UsageError(`--to ${text}: the called AE title is missing (dicom://CALLED@HOST:PORT)`);
    if (!isValidAet(called)) throw new UsageError(`--to ${text}: not a valid called AE title: ${JSON.stringify(called)}`);
    if (u.password) throw new UsageError(`--to ${text}: a dicom:// URL has no password`);
    const calling = u.searchParams.get('calling') ?? defaults.callingAet ?? 'FIONA';
    if (!isValidAet(calling)) throw new UsageError(`--to ${text}: not a valid calling AE title: ${JSON.stringify(calling)}`);
    for (const key of u.searchParams.keys()) {
      if (key !== 'calling') throw new UsageError(`--to ${text}: unknown parameter ${key} (only calling=AET)`);
    }
    if (u.pathname !== '' && u.pathname !== '/') throw new UsageError(`--to ${text}: a dicom:// URL has no path`);
    const host = hostOf(u, text);
    const port = portOf(u, 104, text);
    return {
      kind: 'dicom',
      url: `dicom://${encodeURIComponent(called)}@${u.hostname}:${port}?calling=${encodeURIComponent(calling)}`,
      peer: { host, port, calledAet: called, callingAet: calling },
    };
  }
  if (u.protocol === 'sftp:') {
    const user = decode(u.username, 'user', text);
    if (!user) throw new UsageError(`--to ${text}: the user is missing (sftp://USER@HOST:PORT/DIR)`);
    if (u.password) throw new UsageError(`--to ${text}: passwords in URLs are not accepted; use key authentication (--identity)`);
    if (u.search || u.hash) throw new UsageError(`--to ${text}: an sftp:// URL takes no parameters`);
    const host = hostOf(u, text);
    const port = portOf(u, 22, text);
    let dir = decode(u.pathname, 'path', text) || '/';
    if (dir.startsWith('/~/')) dir = dir.slice(3) || '.';
    else if (dir === '/~') dir = '.';
    if (dir.split('/').includes('..')) throw new UsageError(`--to ${text}: the remote folder may not contain '..'`);
    if (dir.length > 1) dir = dir.replace(/\/+$/, '');
    return { kind: 'sftp', url: `sftp://${encodeURIComponent(user)}@${u.hostname}:${port}${u.pathname || '/'}`, user, host, port, dir };
  }
  throw new UsageError(`--to ${text}: unknown scheme ${u.protocol} (dicom:// or sftp://)`);
}
