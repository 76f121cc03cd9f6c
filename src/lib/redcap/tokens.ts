import { readFile, stat } from 'node:fs/promises';
import { UsageError } from '../errors.js';

/**
 * REDCap API tokens, one per REDCap project (a token belongs to a user and a project).
 * FIONA used five projects; fiona reads these roles from one token file:
 *
 *   routing=<token>     Routing project (routes)
 *   coupling=<token>    CouplingList project
 *   projects=<token>    DataTransferProjects project
 *   incoming=<token>    Incoming project (arrivals and transfer results are written here)
 *
 * A file with a single bare token uses it for every role. The file must not be readable by
 * group or others (like ssh's keys), and no message ever shows a token.
 */
export const REDCAP_ROLES = ['routing', 'coupling', 'projects', 'incoming'] as const;
export type RedcapRole = (typeof REDCAP_ROLES)[number];
export type RedcapTokens = Partial<Record<RedcapRole, string>>;

const TOKEN_RE = /^(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{64})$/;

export function parseTokenText(text: string, path: string): RedcapTokens {
  const tokens: RedcapTokens = {};
  const bare: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Za-z_]+)\s*[=:]\s*(\S+)$/.exec(line);
    const value = m ? m[2]! : line;
    if (!TOKEN_RE.test(value)) throw new UsageError(`${path} line ${i + 1}: not a REDCap API token (32 hex digits)`);
    if (!m) {
      bare.push(value);
      return;
    }
    const role = m[1]!.toLowerCase();
    if (!(REDCAP_ROLES as readonly string[]).includes(role)) {
      throw new UsageError(`${path} line ${i + 1}: unknown role ${JSON.stringify(m[1])} (known: ${REDCAP_ROLES.join(', ')})`);
    }
    tokens[role as RedcapRole] = value;
  });
  if (bare.length > 1) throw new UsageError(`${path}: more than one bare token; write role=token lines (${REDCAP_ROLES.join(', ')})`);
  if (bare.length === 1) {
    if (Object.keys(tokens).length > 0) throw new UsageError(`${path}: mixes a bare token with role=token lines`);
    for (const r of REDCAP_ROLES) tokens[r] = bare[0];
  }
  if (Object.keys(tokens).length === 0) throw new UsageError(`${path}: no token in the file`);
  return tokens;
}

export async function readTokenFile(path: string): Promise<RedcapTokens> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    throw new UsageError(`cannot read the REDCap token file ${path}: ${(err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new UsageError(`the REDCap token file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}): run chmod 600 ${path}`);
  }
  return parseTokenText(await readFile(path, 'utf8'), path);
}
