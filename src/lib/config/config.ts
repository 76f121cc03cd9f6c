import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

/**
 * The one config file of a site. fiona's own keys are lower camel case; FIONA's old keys
 * (DICOMPORT, DICOMAETITLE, DATADIR, SITES) are read where they mean the same thing so that
 * an old site's config still works. Sections that a later tool owns (projects, smtp, ...)
 * are kept in `raw` and validated by that tool through the helpers below.
 */
export interface FionaConfig {
  /** The site folder (FIONA: DATADIR). */
  site?: string;
  /** The receiver's DICOM port (FIONA: DICOMPORT). */
  port: number;
  /** The receiver's AE title (FIONA: DICOMAETITLE). */
  aet: string;
  /** Calling AE titles allowed to send; undefined means any. */
  allow?: string[];
  maxAssociations: number;
  /** Where the config came from, for messages; undefined when defaults. */
  source?: string;
  raw: Record<string, unknown>;
}

export const DEFAULT_CONFIG: Readonly<FionaConfig> = {
  port: 11112,
  aet: 'FIONA',
  maxAssociations: 16,
  raw: {},
};

const DEFAULT_PATH = '/etc/fiona/config.json';

/** Where the config comes from: --config, then FIONA_CONFIG, then /etc/fiona/config.json. */
export function resolveConfigPath(explicit?: string, env = process.env): string | undefined {
  if (explicit) return explicit;
  if (env.FIONA_CONFIG) return env.FIONA_CONFIG;
  return existsSync(DEFAULT_PATH) ? DEFAULT_PATH : undefined;
}

export function loadConfig(explicit?: string, env = process.env): FionaConfig {
  const path = resolveConfigPath(explicit, env);
  if (!path) return { ...DEFAULT_CONFIG, raw: {} };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, `cannot read the config file: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(path, `not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(raw, path);
}

export function parseConfig(raw: unknown, source?: string): FionaConfig {
  if (!isObject(raw)) throw new ConfigError('(top level)', 'the config must be a JSON object');
  const site = optString(raw, 'site') ?? optString(raw, 'DATADIR');
  const port = optPort(raw, 'port') ?? optPort(raw, 'DICOMPORT') ?? DEFAULT_CONFIG.port;
  const aet = optAet(raw, 'aet') ?? optAet(raw, 'DICOMAETITLE') ?? DEFAULT_CONFIG.aet;
  const allow = optStringArray(raw, 'allow');
  allow?.forEach((a, i) => checkAet(`allow[${i}]`, a));
  const maxAssociations = optInt(raw, 'maxAssociations', 1, 1000) ?? DEFAULT_CONFIG.maxAssociations;
  if (raw.SITES !== undefined && !isObject(raw.SITES)) throw new ConfigError('SITES', 'must be an object of projects');
  if (raw.projects !== undefined && !isObject(raw.projects)) throw new ConfigError('projects', 'must be an object');
  return { site, port, aet, allow, maxAssociations, source, raw };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function optString(o: Record<string, unknown>, key: string, path = key): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new ConfigError(path, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

export function optInt(o: Record<string, unknown>, key: string, min: number, max: number, path = key): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(path, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function optStringArray(o: Record<string, unknown>, key: string, path = key): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new ConfigError(path, 'must be a list of strings');
  }
  return v as string[];
}

function optPort(o: Record<string, unknown>, key: string): number | undefined {
  return optInt(o, key, 0, 65535);
}

function optAet(o: Record<string, unknown>, key: string): string | undefined {
  const v = optString(o, key);
  if (v !== undefined) checkAet(key, v);
  return v;
}

/** An AE title: 1 to 16 characters of the default repertoire, no backslash or control chars. */
export function isValidAet(aet: string): boolean {
  return /^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(aet) && aet.trim() !== '';
}

export function checkAet(key: string, aet: string): void {
  if (!isValidAet(aet)) throw new ConfigError(key, `not a valid AE title (1-16 printable characters, no backslash): ${JSON.stringify(aet)}`);
}
