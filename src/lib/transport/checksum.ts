/**
 * The checksums fiona-send compares between the local file and the copy on an SFTP server,
 * and the server commands that compute them.
 *
 *   sha256  `openssl dgst -sha256 -r` on the server, Node's OpenSSL locally. Both use the
 *           CPU's SHA instructions where it has them: measured on the development machine
 *           (500 MB in the page cache) openssl 0.31 s of CPU, Node 0.27 s, against md5sum's
 *           0.73 s and Node's md5 0.69 s. Stronger than MD5 and a third of its cost.
 *   md5     `md5sum` on the server (coreutils, on every Linux server): for servers without
 *           openssl, and for the `.md5` files FIONA-style receivers read.
 *
 * Both commands print `<hex> *<name>` (md5sum may print two spaces) for plain names; a name
 * with a backslash, newline or carriage return may be printed escaped, so such names are
 * hashed one at a time from stdin instead (see sftp-exec.ts).
 */
export type HashAlg = 'md5' | 'sha256';

/** Hex digits of each digest. */
export const HEX_LEN: Readonly<Record<HashAlg, number>> = { md5: 32, sha256: 64 };

/** The digest of no bytes: what a probe over /dev/null must answer. */
export const EMPTY_DIGEST: Readonly<Record<HashAlg, string>> = {
  md5: 'd41d8cd98f00b204e9800998ecf8427e',
  sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
};

/**
 * The server command (fixed text) that hashes the files named after it, or stdin when none
 * is named. `--` ends the options for both (coreutils; OpenSSL 1.1 and 3).
 */
export function remoteHashCommand(alg: HashAlg): string {
  return alg === 'sha256' ? 'openssl dgst -sha256 -r' : 'md5sum';
}

/** What the event and the error messages call the check done with each digest. */
export function verificationName(alg: HashAlg): 'sha256' | 'md5sum' {
  return alg === 'sha256' ? 'sha256' : 'md5sum';
}

/** A line `<hex> <name>` or `<hex> *<name>` of this digest: groups 1 (hex) and 2 (name). */
export function sumLine(alg: HashAlg): RegExp {
  return new RegExp(`^([0-9a-f]{${HEX_LEN[alg]}}) [ *](.*)$`);
}

/** The digest of stdin in a command's output (md5sum says `-`, openssl says `stdin`). */
export function stdinSum(alg: HashAlg, out: string): string | undefined {
  return new RegExp(`^([0-9a-f]{${HEX_LEN[alg]}}) [ *](?:-|stdin)$`, 'm').exec(out)?.[1];
}
