import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isObject, optString, type FionaConfig } from '../config/config.js';
import { ConfigError, UsageError } from '../errors.js';
import { RedcapClient } from '../redcap/client.js';
import { IncomingSink } from '../redcap/sink.js';
import { RedcapRulesSource } from '../redcap/source.js';
import { readTokenFile } from '../redcap/tokens.js';
import type { RawRules } from './parse.js';
import { FileRulesSource, rawRulesFromJson, type RulesSource } from './source.js';

/**
 * Where fiona-route and fiona-transfer get their rules and write their results, from the
 * command line or the config file (keys `routes`, `redcap.url`, `redcap.tokenFile`).
 */
export interface SourceOptions {
  routes?: string;
  redcap?: string;
  tokenFile?: string;
  /** REDCap request timeout. */
  timeoutMs?: number;
}

export interface OpenedSources {
  rules: RulesSource;
  /** The REDCap Incoming project, when a token for it is given. */
  incoming?: IncomingSink;
  /** http:// to a host other than loopback: the token would travel in clear. */
  warnings: string[];
  /**
   * The token check: ask each REDCap project for its info (only a valid token gets it), so a
   * wrong or revoked token stops the run before anything is queued or sent. Returns one
   * line per project for the log.
   */
  checkTokens(): Promise<string[]>;
}

export function sourceOptionsFromConfig(cli: SourceOptions, config: FionaConfig): SourceOptions {
  const raw = config.raw;
  const out: SourceOptions = { ...cli };
  out.routes ??= optString(raw, 'routes');
  const rc = raw.redcap;
  if (rc !== undefined) {
    if (!isObject(rc)) throw new ConfigError('redcap', 'must be an object {url, tokenFile}');
    out.redcap ??= optString(rc, 'url', 'redcap.url');
    out.tokenFile ??= optString(rc, 'tokenFile', 'redcap.tokenFile');
  }
  return out;
}

async function readLocal(path: string): Promise<RawRules> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the routes file ${path}: ${(err as Error).message}`);
  }
  try {
    return rawRulesFromJson(JSON.parse(text));
  } catch (err) {
    throw new UsageError(`${path}: ${(err as Error).message}`);
  }
}

export async function openSources(o: SourceOptions, stateDir: string): Promise<OpenedSources> {
  if (!o.routes && !o.redcap) throw new UsageError('give --routes FILE and/or --redcap URL --token-file F (or set routes / redcap in the config)');
  if (o.redcap && !o.tokenFile) throw new UsageError('--redcap needs --token-file F (the file holding the API token(s))');
  if (o.tokenFile && !o.redcap) throw new UsageError('--token-file needs --redcap URL');
  if (!o.redcap) return { rules: new FileRulesSource(o.routes!), warnings: [], checkTokens: async () => [] };

  const tokens = await readTokenFile(o.tokenFile!);
  const warnings: string[] = [];
  const url = new URL(o.redcap);
  if (url.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    warnings.push(`REDCap URL ${o.redcap} is not https: the API token travels unencrypted`);
  }
  const client = (role: keyof typeof tokens): RedcapClient | undefined =>
    tokens[role] ? new RedcapClient(o.redcap!, tokens[role]!, role, { timeoutMs: o.timeoutMs }) : undefined;
  const localPath = o.routes ? resolve(o.routes) : undefined;
  const rules = new RedcapRulesSource({
    routing: client('routing'),
    coupling: client('coupling'),
    projects: client('projects'),
    local: localPath ? await readLocal(localPath) : undefined,
    localOrigin: localPath,
    baseDir: localPath ? dirname(localPath) : process.cwd(),
  });
  const inc = client('incoming');
  const clients = [client('routing'), client('coupling'), client('projects'), inc].filter((c): c is RedcapClient => c !== undefined);
  const checkTokens = async (): Promise<string[]> => {
    const lines: string[] = [];
    for (const c of clients) {
      const info = await c.projectInfo();
      lines.push(`REDCap ${c.label} project: ${JSON.stringify(String(info.project_title ?? '?'))} (token accepted)`);
    }
    return lines;
  };
  return { rules, incoming: inc ? new IncomingSink(inc, stateDir) : undefined, warnings, checkTokens };
}
