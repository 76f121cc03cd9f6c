/**
 * Host key checking against an OpenSSH known_hosts file, as `StrictHostKeyChecking yes`
 * does it: a host with no entry is refused (unknown), a host whose key differs from every
 * entry is refused (changed: possible man in the middle), a key marked @revoked is refused.
 * Understood: plain and hashed (|1|salt|hash) host fields, [host]:port for ports other
 * than 22, comma lists, * and ? wildcards, !negation. @cert-authority lines are skipped
 * (certificates are not supported).
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface KnownKey {
  type: string;
  key: Buffer;
  revoked: boolean;
  line: number;
}

export interface HostKeyCheck {
  ok: boolean;
  reason?: string;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function hostEntryName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i');
}

function matchHashed(field: string, name: string): boolean {
  const m = /^\|1\|([^|]+)\|([^|]+)$/.exec(field);
  if (!m) return false;
  const salt = Buffer.from(m[1]!, 'base64');
  const hash = createHmac('sha1', salt).update(name).digest('base64');
  return hash === m[2];
}

/** Does a known_hosts host field match the name? Negated patterns veto. */
function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return matchHashed(field, name);
  let matched = false;
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!');
    const pat = negated ? raw.slice(1) : raw;
    if (globToRegExp(pat).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** All keys the file holds for host:port. */
export function knownKeysFor(text: string, host: string, port: number): KnownKey[] {
  const name = hostEntryName(host, port);
  const out: KnownKey[] = [];
  text.split('\n').forEach((rawLine, i) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    let parts = line.split(/\s+/);
    let revoked = false;
    if (parts[0]!.startsWith('@')) {
      if (parts[0] === '@cert-authority') return;
      if (parts[0] === '@revoked') revoked = true;
      else return;
      parts = parts.slice(1);
    }
    if (parts.length < 3) return;
    const [hosts, type, b64] = parts as [string, string, string];
    if (!hostsFieldMatches(hosts, name)) return;
    out.push({ type, key: Buffer.from(b64, 'base64'), revoked, line: i + 1 });
  });
  return out;
}

/** The key type named inside an SSH public key blob (string at its start). */
export function keyBlobType(blob: Buffer): string {
  if (blob.length < 4) return '';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function checkHostKey(known: KnownKey[], presented: Buffer, host: string, port: number, file: string): HostKeyCheck {
  const name = hostEntryName(host, port);
  const type = keyBlobType(presented);
  if (known.some((k) => k.revoked && k.key.equals(presented))) {
    return { ok: false, reason: `the ${type} host key of ${name} is marked @revoked in ${file}` };
  }
  const valid = known.filter((k) => !k.revoked);
  if (valid.some((k) => k.key.equals(presented))) return { ok: true };
  if (valid.length === 0) {
    return { ok: false, reason: `unknown host ${name}: no key for it in ${file} (add it with: ssh-keyscan -p ${port} ${host} >> ${file}, after checking its fingerprint)` };
  }
  return {
    ok: false,
    reason: `the host key of ${name} does not match ${file} (line ${valid.map((k) => k.line).join(', ')}): it changed, or someone is in between; refused`,
  };
}

/** The server host key algorithms to offer, so that the server shows a key type we know. */
export function hostKeyAlgorithms(known: KnownKey[]): string[] {
  const out: string[] = [];
  for (const k of known) {
    if (k.revoked) continue;
    const algs = k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.type];
    for (const a of algs) if (!out.includes(a)) out.push(a);
  }
  return out;
}

export function readKnownHosts(file: string): string {
  return readFileSync(file, 'utf8');
}
