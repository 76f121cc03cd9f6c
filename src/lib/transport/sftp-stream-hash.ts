/**
 * Checksum of a file on the server computed while it is uploaded. For MD5 one exec channel runs
 *
 *   f='<path>'; while read s c; do dd if="$f" bs=1048576 skip=$s ${c:+count=$c}; done | md5sum
 *
 * and is told on its stdin which 1 MiB blocks to read next, only once the server has
 * acknowledged every byte of them. The reads follow each other without a gap and the last
 * one runs to the end of the file, so the one hash covers every byte of the .part exactly
 * once, and after the upload only the last segment is left to hash. The command string
 * holds nothing but the quoted path (and fixed text); the numbers travel on stdin and are ours.
 *
 * For SHA-256 the same protocol is served by a few lines of Python (`python3`, hashlib on
 * OpenSSL) that map the ranges (mmap, see PY_SHA256): `dd | openssl dgst` would cost the
 * server more than the hash itself, because openssl reads a pipe 8 KiB at a time (measured:
 * 1.4-1.7 s of CPU per GB through the pipe against 0.8 s reading the file; Python on the file
 * is as cheap as openssl on it).
 *
 * POSIX sh and dd + md5sum (MD5) or python3 (SHA-256) are needed. Where one is missing the
 * answer is FAILED (or no digest at all), and the caller checks the file by a whole-file
 * checksum after the upload instead (there is no probe of its own: see sftp.ts).
 */
import { remoteHashCommand, stdinSum, type HashAlg } from './checksum.js';
import { openExec, shellQuote, type SshExec, type ExecStream } from './sftp-exec.js';

/** dd block: every segment starts on one. */
const DD_BLOCK = 1024 * 1024;
/** Bytes the server may hash before the upload ends, per request (a multiple of DD_BLOCK). */
export const SEGMENT = 64 * DD_BLOCK;
/**
 * The same for the SHA-256 reader: one Python process reads every range (no process per
 * request, as dd is), so it is asked in smaller steps and only the last 8 MiB are left to hash
 * after the upload (~5 ms instead of ~40 ms for 64 MiB), read while still in the page cache.
 */
const SHA_SEGMENT = 8 * DD_BLOCK;

/**
 * The SHA-256 reader: lines `s c` (c blocks from block s) or `s` (from block s to the end of
 * the file), read as dd would (a short read at the end of the file is not an error: the
 * digest comparison decides); prints `<hex>  -` like md5sum. The file is opened with the first
 * request, as dd opens it, not at start: the channel may start before the upload has created
 * the `.part`. A file it cannot open or read ends it with a traceback on stderr and no digest.
 * The ranges are mapped (mmap), not read: hashlib hashes the page cache's pages without a
 * copy (1 GB: 0.74-0.77 s of CPU against 0.79-0.82 s with 1 MiB preads). A range is cut at the
 * file's current size first (a mapping past the end would fault).
 */
const PY_SHA256 = [
  'import sys, os, hashlib, mmap',
  `B = ${1024 * 1024}`,
  'h = hashlib.sha256()',
  'fd = None',
  'for line in sys.stdin:',
  '    if fd is None:',
  '        fd = os.open(sys.argv[1], os.O_RDONLY)',
  '    p = line.split()',
  '    pos = int(p[0]) * B',
  '    size = os.fstat(fd).st_size',
  '    end = min(size, pos + int(p[1]) * B) if len(p) > 1 else size',
  '    while pos < end:',
  '        n = min(64 * B, end - pos)',
  '        m = mmap.mmap(fd, n, mmap.MAP_SHARED, mmap.PROT_READ, offset=pos)',
  '        h.update(m)',
  '        m.close()',
  '        pos += n',
  'sys.stdout.write(h.hexdigest() + "  -\\n")',
].join('\n');

/**
 * A dd that fails (missing, unreadable file) says FAILED on the channel through fd 3, beside
 * the hash's line: the hash alone would print the digest of the bytes it got, which for a dd
 * that never ran is the valid-looking digest of nothing.
 */
function streamHashCommand(alg: HashAlg, path: string): string {
  // The system's python3 where it is (a python3 first in the login PATH may be a version
  // manager's shim that costs a shell script and a lock per start), else the PATH's.
  if (alg === 'sha256') return `p=/usr/bin/python3; [ -x "$p" ] || p=python3; exec "$p" -c ${shellQuote(PY_SHA256)} ${shellQuote(path)}`;
  return (
    `f=${shellQuote(path)}; { while read s c; do dd if="$f" bs=${DD_BLOCK} skip=$s \${c:+count=$c} 2>/dev/null ` +
    `|| { echo FAILED >&3; exit 1; }; done | ${remoteHashCommand(alg)}; } 3>&1`
  );
}

/** The digest from the channel's output; undefined when a dd failed or there is none. */
function parseStreamHash(alg: HashAlg, out: string): string | undefined {
  if (/^FAILED$/m.test(out)) return undefined;
  return stdinSum(alg, out);
}

/** A running remote checksum over a file that is still being written. */
export class RemoteStreamHash {
  private next = 0; // first block not yet asked for
  private ended = false;
  private readonly result: Promise<string | undefined>;
  /** Settles when the channel has closed (the digest or nothing). */
  readonly closed: Promise<unknown>;

  private constructor(
    private readonly stream: ExecStream,
    private readonly segment: number,
    alg: HashAlg,
  ) {
    this.result = new Promise((resolve) => {
      let out = '';
      stream.on('data', (d: Buffer) => {
        out += d.toString('latin1');
      });
      stream.on('close', () => resolve(parseStreamHash(alg, out)));
    });
    this.closed = this.result;
  }

  /** Open the channel (undefined when the server refuses one). */
  static start(ssh: SshExec, alg: HashAlg, path: string, segment = alg === 'sha256' ? SHA_SEGMENT : SEGMENT): Promise<RemoteStreamHash | undefined> {
    if (segment % DD_BLOCK !== 0 || segment <= 0) throw new Error(`segment ${segment} is not a whole number of ${DD_BLOCK}-byte blocks`);
    return openExec(ssh, streamHashCommand(alg, path)).then((stream) => stream && new RemoteStreamHash(stream, segment, alg));
  }

  /** The server holds the first `acked` bytes: ask for every whole segment among them. */
  advance(acked: number): void {
    this.request(Math.floor(acked / this.segment) * (this.segment / DD_BLOCK));
  }

  /** Ask for the blocks up to (not including) block `upTo`. */
  request(upTo: number): void {
    if (this.ended || upTo <= this.next) return;
    this.stream.write(`${this.next} ${upTo - this.next}\n`);
    this.next = upTo;
  }

  /** The upload is complete: hash the rest to the end of the file; the digest of the whole file. */
  finish(timeoutMs: number): Promise<string | undefined> {
    if (!this.ended) {
      this.ended = true;
      this.stream.write(`${this.next}\n`);
      this.stream.end();
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        this.abort();
        resolve(undefined);
      }, timeoutMs);
    });
    return Promise.race([this.result, late]).finally(() => clearTimeout(timer));
  }

  /** Give up (the upload failed): the remote loop ends on EOF. */
  abort(): void {
    this.ended = true;
    try {
      this.stream.end();
      this.stream.close?.();
    } catch {
      // already gone
    }
  }
}
