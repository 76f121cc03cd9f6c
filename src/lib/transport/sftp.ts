/**
 * sftp:// destination (FIONA's sendFiles.sh, made safe): key authentication, strict host
 * key checking, upload to `<name>.part`, verify size and checksum, then rename to `<name>`.
 * A name without `.part` on the server is therefore always a whole, verified file.
 *
 * Verification (`verify`):
 *   sha256    run `openssl dgst -sha256 -r` on the server over the session (an exec channel)
 *             and compare with the SHA-256 of the bytes sent
 *   md5sum    the same with `md5sum` and MD5 (servers without openssl)
 *   size      the remote size only (servers that allow no exec, e.g. ForceCommand internal-sftp)
 *   readback  download the .part again and hash it (slow, needs nothing from the server)
 *   auto      sha256 when the server runs openssl, else md5sum when it runs that (probed once
 *             per connection), else size
 * SHA-256 costs about a third of MD5 on both ends where OpenSSL has the CPU's SHA instructions
 * (see checksum.ts). With `md5File`, a `<name>.md5` in md5sum format is written beside each
 * file, so the far side can check too (`md5sum -c`): MD5 is computed only then, or when the
 * server has nothing but md5sum.
 *
 * Idempotent re-runs: before uploading, a file already present under its final name with
 * the same size and (when the server hashes) the same checksum is not sent again.
 *
 * Each file is read once (sftp-upload.ts): the same blocks are hashed and sent, so the digest
 * compared is that of the bytes that went up. A file larger than one segment (64 MiB) is
 * hashed on the server while it arrives (sftp-stream-hash.ts), so verification after the
 * upload only waits for the last segment; smaller files are checked in batches, one
 * hashing process per batch, while the next files go up.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { DEFAULT_PARALLEL, type SftpDestination } from './destination.js';
import { EMPTY_DIGEST, remoteHashCommand, stdinSum, verificationName, type HashAlg } from './checksum.js';
import { LocalHasher } from './local-hash.js';
import { execText, hashCommand, parseSums, sshOf } from './sftp-exec.js';
import { RemoteHashService } from './sftp-hash-service.js';
import { tunePackets } from './sftp-packets.js';
import { RemoteStreamHash, SEGMENT } from './sftp-stream-hash.js';
import type { BlockHasher, Digests } from './sftp-hash.js';
import { blockLenOf, corkWhileReading, hasherFor, InFlightBudget, uploadFile } from './sftp-upload.js';
import { checkHostKey, hostKeyAlgorithms, knownKeysFor, readKnownHosts, type KnownKey } from './known-hosts.js';
import type { AttemptResult, SendFile, Transport } from './types.js';

export type VerifyMode = 'auto' | 'sha256' | 'md5sum' | 'size' | 'readback';
/** The check a connection uses (what the `sent` event's `verified` says). */
export type Verification = 'sha256' | 'md5sum' | 'size' | 'readback';

/**
 * Fill the undefined entries of `sums` (digests of `paths`, same order) with what `more`
 * answers for just those paths.
 */
async function fillMissing(
  sums: Array<string | undefined>,
  paths: string[],
  more: (paths: string[]) => Promise<Array<string | undefined>>,
): Promise<void> {
  const missing = sums.flatMap((v, i) => (v === undefined ? [i] : []));
  if (missing.length === 0) return;
  const again = await more(missing.map((i) => paths[i]!));
  missing.forEach((i, k) => {
    sums[i] = again[k];
  });
}

/** The digest the server computes for a verification (undefined: the server hashes nothing). */
function remoteAlgOf(v: Verification): HashAlg | undefined {
  return v === 'sha256' ? 'sha256' : v === 'md5sum' ? 'md5' : undefined;
}

export interface SftpTransportOptions {
  /** Private key file (OpenSSH or PEM format). */
  identity: string;
  passphrase?: string;
  /** known_hosts file; the server's key must be in it. */
  knownHosts: string;
  verify?: VerifyMode;
  /** Write <name>.md5 beside each file. */
  md5File?: boolean;
  /** Files uploaded at the same time over the one connection (default DEFAULT_PARALLEL). */
  parallel?: number;
  /** SSH handshake and authentication (ms). */
  connectMs?: number;
}

/** Files per hashing process on the server. */
const SUM_BATCH = 64;
/**
 * Hashing channels that run during uploads, per connection. OpenSSH allows 10 sessions per
 * connection (MaxSessions): the SFTP session and the batch service need one each; a big file
 * beyond this many is checked by the batch service after its upload instead.
 */
const MAX_STREAMS = 4;
/** Longest a verified-ready .part waits for its batch to fill. */
const BATCH_WAIT_MS = 2_000;

interface LocalFacts {
  size: number;
  /** Hashed on demand (the already-there check); an upload hashes what it sends itself. */
  sums: Partial<Record<HashAlg, Promise<string>>>;
}

/** A .part that is up, waiting for its check and rename. */
interface Uploaded {
  file: SendFile;
  /** Digests of the bytes sent (the hashing thread may still be on the last block). */
  sums: Promise<Digests>;
  /** The server's digest of the .part, computed during the upload (undefined: not available). */
  remoteSum?: Promise<string | undefined>;
}

class ConnectionLost extends Error {}

/** ssh2-sftp-client keeps the ssh2 SFTP session in .sftp once connected. */
function sftpOf(client: SftpClient): SFTPWrapper {
  const s = (client as unknown as { sftp?: SFTPWrapper }).sftp;
  if (!s) throw new ConnectionLost('No SFTP connection');
  return s;
}

export class SftpTransport implements Transport {
  readonly url: string;
  private client?: SftpClient;
  private lost?: string;
  /** The digest the server computes over an exec channel (none: undefined), probed once per connection. */
  private remoteAlg: Promise<HashAlg | undefined> = Promise.resolve(undefined);
  /** The probe's answer once it is in (null: none; undefined: not yet). */
  private probed: HashAlg | null | undefined;
  /** Set when a streaming hash (sh, dd, the command) failed on this connection: its later big files go to the batch service. */
  private streamBroken = false;
  /** The hashing channel of the current connection (batches of files, one login shell). */
  private serviceP?: Promise<RemoteHashService | undefined>;
  private serviceAlg?: HashAlg;
  /** Streaming hash channels open on the current connection. */
  private streamSlots = { open: 0 };
  /** Unacknowledged upload bytes on the current connection, all files together. */
  private budget = new InFlightBudget();
  private readonly dirsMade = new Map<string, Promise<void>>();
  private readonly facts = new Map<string, LocalFacts>();
  private readonly hashers = new Map<HashAlg, LocalHasher>();
  /** Reads, hashes and hands the uploads' blocks to ssh2 (a worker thread hashes). */
  private blocks?: BlockHasher;
  private readonly known: KnownKey[];

  constructor(
    private readonly dest: SftpDestination,
    private readonly opts: SftpTransportOptions,
  ) {
    this.url = dest.url;
    this.known = knownKeysFor(readKnownHosts(opts.knownHosts), dest.host, dest.port);
  }

  /** The verification used on the current connection. */
  async verification(): Promise<Verification> {
    const mode = this.opts.verify ?? 'auto';
    if (mode === 'size' || mode === 'readback') return mode;
    const alg = await this.remoteAlg;
    if (mode === 'auto') return alg ? verificationName(alg) : 'size';
    if (!alg || verificationName(alg) !== mode) {
      const what = mode === 'sha256' ? 'openssl dgst -sha256' : 'md5sum';
      throw new Error(`${this.dest.host}: the server does not run ${what} over the session (use --verify size or readback)`);
    }
    return mode;
  }

  /** The digests an upload computes of the bytes it sends, decided when it starts. */
  private localAlgs(): HashAlg[] {
    const algs: HashAlg[] = this.opts.md5File ? ['md5'] : [];
    const mode = this.opts.verify ?? 'auto';
    if (mode === 'sha256' || mode === 'readback') algs.push('sha256');
    else if (mode === 'md5sum') algs.push('md5');
    // auto before the probe has answered: SHA-256, the likely answer; a server that turns out
    // to have only md5sum gets the MD5 of those few files from a second read (localSum).
    else if (mode === 'auto' && this.probed !== null) algs.push(this.probed ?? 'sha256');
    return algs;
  }

  private async connect(): Promise<SftpClient> {
    if (this.client && !this.lost) return this.client;
    await this.drop();
    const { host, port, user } = this.dest;
    let hostKeyProblem: string | undefined;
    const client = new SftpClient('fiona-send', {
      error: (err: unknown) => {
        this.lost = (err as Error).message ?? String(err);
      },
      end: () => {
        this.lost ??= 'the server ended the connection';
      },
      close: () => {
        this.lost ??= 'the connection closed';
      },
    });
    const keyAlgs = hostKeyAlgorithms(this.known);
    try {
      await client.connect({
        host,
        port,
        username: user,
        privateKey: readFileSync(this.opts.identity),
        passphrase: this.opts.passphrase,
        readyTimeout: this.opts.connectMs ?? 20_000,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          const c = checkHostKey(this.known, key, host, port, this.opts.knownHosts);
          if (!c.ok) hostKeyProblem = c.reason;
          return c.ok;
        },
        ...(keyAlgs.length > 0 ? { algorithms: { serverHostKey: keyAlgs as never } } : {}),
      });
    } catch (err) {
      await client.end().catch(() => undefined);
      throw new Error(hostKeyProblem ?? describeConnectError(err as Error, this.dest, this.opts.identity));
    }
    // Small requests (open, stat, rename) each wait for an answer: without TCP_NODELAY, Nagle
    // and delayed ACKs add ~40 ms to every one of them (measured: 45 ms per 1 MB file).
    sshOf(client)?.setNoDelay(true);
    // Padding and packet buffers without a call into the RNG and an allocation per packet.
    tunePackets(sshOf(client));
    // ssh2-sftp-client adds listeners per call; parallel uploads exceed Node's default of 10.
    sshOf(client)?.setMaxListeners(0);
    // ssh2-sftp-client passes an error to the call that saw it and then tells no one else;
    // the connection's own close says for sure that it is gone (the next attempt reconnects).
    sshOf(client)?.on('close', () => {
      if (this.client === client) this.lost ??= 'the connection closed';
    });
    const sftp = (client as unknown as { sftp?: SFTPWrapper }).sftp;
    if (sftp) corkWhileReading(sftp);
    this.client = client;
    this.lost = undefined;
    this.dirsMade.clear();
    this.streamBroken = false;
    this.streamSlots = { open: 0 };
    this.budget = new InFlightBudget();
    const mode = this.opts.verify ?? 'auto';
    // Probed while the first uploads run; verification waits for the answer.
    const candidates: HashAlg[] = mode === 'auto' ? ['sha256', 'md5'] : mode === 'sha256' ? ['sha256'] : mode === 'md5sum' ? ['md5'] : [];
    this.probed = undefined;
    const probe = candidates.length > 0 ? this.probeRemote(candidates) : Promise.resolve(undefined);
    this.remoteAlg = probe;
    void probe.then((alg) => {
      if (this.remoteAlg === probe) this.probed = alg ?? null;
    });
    return client;
  }

  private async drop(): Promise<void> {
    const service = this.serviceP;
    this.serviceP = undefined;
    void service?.then((s) => s?.close());
    const c = this.client;
    this.client = undefined;
    if (c) await c.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.drop();
    await this.blocks?.close();
    this.blocks = undefined;
  }

  private blocksFor(sftp: SFTPWrapper): BlockHasher {
    if (this.blocks?.blockLen !== blockLenOf(sftp)) {
      void this.blocks?.close();
      this.blocks = hasherFor(sftp, this.opts.parallel ?? DEFAULT_PARALLEL);
    }
    return this.blocks;
  }

  private exec(command: string, timeoutMs: number): Promise<string | undefined> {
    return execText(sshOf(this.client), command, timeoutMs);
  }

  /**
   * The digest big files get on the server while they go up (undefined: none, they are
   * hashed after the upload). SHA-256 goes through python3 (mmap), not `dd | openssl dgst`
   * (see sftp-stream-hash.ts): through the pipe it cost the server 1.4-1.7 s of CPU per GB
   * against 0.8 s for `openssl dgst -sha256 file` after the upload.
   */
  private async streaming(): Promise<HashAlg | undefined> {
    // No probe of its own (an exec costs the server a login shell): a stream that fails
    // (no dd, no python3, no POSIX sh) says so, its file is checked by the batch service, and
    // the rest of the connection's big files go that way too.
    return this.streamBroken ? undefined : remoteAlgOf(await this.verification());
  }

  /**
   * The first digest of `algs` the server computes. The connection's hashing channel hashes
   * /dev/null: that is the probe (one login shell less than a probe of its own). A loop that
   * runs but whose command is missing (no openssl) answers without a digest: the next
   * candidate gets its own channel. A server that forces internal-sftp reads the request as
   * an oversized SFTP packet and ends the channel at once; a server whose shell cannot run
   * the loop gets the plain probe.
   */
  private async probeRemote(algs: HashAlg[]): Promise<HashAlg | undefined> {
    for (const alg of algs) {
      const service = await this.hashService(alg);
      const sums = service?.usable ? await service.hash(['/dev/null'], 10_000) : undefined;
      if (sums?.[0] === EMPTY_DIGEST[alg]) return alg;
      service?.close();
      if (sums) continue; // the loop ran: the command is not there
      const out = await this.exec(`${remoteHashCommand(alg)} < /dev/null`, 10_000);
      if (out !== undefined && stdinSum(alg, out) === EMPTY_DIGEST[alg]) return alg;
    }
    return undefined;
  }

  /** Digests of remote files, in order; undefined for a file the command could not read. */
  private async remoteSums(alg: HashAlg, paths: string[]): Promise<Array<string | undefined>> {
    const out: Array<string | undefined> = [];
    for (let i = 0; i < paths.length; i += SUM_BATCH) {
      const part = paths.slice(i, i + SUM_BATCH);
      const timeoutMs = 60_000 + part.length * 5_000;
      // One hashing process per batch, down the connection's one hashing channel.
      const service = await this.hashService(alg);
      const sums = (service?.usable ? await service.hash(part, timeoutMs) : undefined) ?? part.map(() => undefined);
      // Names the channel cannot carry, files it found no sum for, or no channel: one exec.
      await fillMissing(sums, part, async (paths) => {
        const text = await this.exec(hashCommand(alg, paths), timeoutMs);
        if (text === undefined) throw new ConnectionLost(`${remoteHashCommand(alg)} on the server did not answer`);
        return parseSums(alg, text, paths);
      });
      out.push(...sums);
    }
    return out;
  }

  /**
   * The connection's hashing channel for `alg`, opened on first use (undefined: the server
   * refused it). One per connection: another digest closes the old one (only the probe does that).
   */
  private hashService(alg: HashAlg): Promise<RemoteHashService | undefined> {
    const ssh = sshOf(this.client);
    if (!ssh) return Promise.resolve(undefined);
    if (this.serviceP && this.serviceAlg !== alg) {
      void this.serviceP.then((s) => s?.close());
      this.serviceP = undefined;
    }
    this.serviceAlg = alg;
    this.serviceP ??= RemoteHashService.open(ssh, alg);
    return this.serviceP;
  }

  private async readbackSum(client: SftpClient, alg: HashAlg, path: string): Promise<string> {
    const h = createHash(alg);
    const stream = client.createReadStream(path, { highWaterMark: 1024 * 1024 } as never);
    for await (const chunk of stream) h.update(chunk as Buffer);
    return h.digest('hex');
  }

  private factsOf(path: string, size: number): LocalFacts {
    let f = this.facts.get(path);
    if (!f || f.size !== size) {
      f = { size, sums: {} };
      this.facts.set(path, f);
    }
    return f;
  }

  /** The digest of a local file by reading it (files not uploaded in this run, or hashed with another digest). */
  private localSum(alg: HashAlg, path: string, facts: LocalFacts): Promise<string> {
    let p = facts.sums[alg];
    if (!p) {
      let hasher = this.hashers.get(alg);
      if (!hasher) this.hashers.set(alg, (hasher = new LocalHasher(alg)));
      p = facts.sums[alg] = hasher.hash(path);
      p.catch(() => undefined);
    }
    return p;
  }

  private remotePath(name: string): string {
    return posix.join(this.dest.dir, name);
  }

  /** mkdir -p once per folder and connection; parallel uploads into one folder share the promise. */
  private ensureDir(client: SftpClient, dir: string): Promise<void> {
    if (dir === '.' || dir === '/') return Promise.resolve();
    let made = this.dirsMade.get(dir);
    if (!made) {
      made = (async () => {
        const kind = await client.exists(dir);
        if (kind === false) await client.mkdir(dir, true);
        else if (kind !== 'd') throw new Error(`${dir} exists on the server and is not a folder`);
      })();
      made.catch(() => this.dirsMade.delete(dir));
      this.dirsMade.set(dir, made);
    }
    return made;
  }

  async attempt(files: SendFile[], onResult: (r: AttemptResult) => void, signal?: AbortSignal): Promise<void> {
    let client: SftpClient;
    try {
      client = await this.connect();
    } catch (err) {
      const reason = (err as Error).message;
      for (const file of files) onResult({ file, ok: false, reason, retryable: true, details: {} });
      await this.drop();
      return;
    }
    const reported = new Set<SendFile>();
    const report = (r: AttemptResult): void => {
      if (reported.has(r.file)) return;
      reported.add(r.file);
      onResult(r);
    };
    try {
      await this.pipeline(client, files, report, signal);
    } catch (err) {
      const reason = this.reasonOf(err, 'transfer');
      for (const file of files) report({ file, ok: false, reason, retryable: true, details: {} });
    }
    // Whatever is left unreported (connection lost mid-way) fails for this attempt.
    for (const file of files) {
      report({ file, ok: false, reason: this.lost ? `connection lost: ${this.lost}` : 'stopped', retryable: true, details: {} });
    }
    if (this.lost) await this.drop();
  }

  /**
   * Uploads run `parallel` at a time; each finished .part joins the verify queue, which is
   * checked in batches (one md5sum exec per batch) while the next uploads go on, then renamed.
   */
  private async pipeline(client: SftpClient, files: SendFile[], report: (r: AttemptResult) => void, signal?: AbortSignal): Promise<void> {
    // Local facts: a file that cannot be read is not retryable.
    const local = new Map<SendFile, LocalFacts>();
    for (const file of files) {
      try {
        const st = await stat(file.path);
        if (!st.isFile()) throw new Error('not a regular file');
        local.set(file, this.factsOf(file.path, st.size));
      } catch (err) {
        report({ file, ok: false, reason: `cannot read ${file.path}: ${(err as Error).message}`, retryable: false, details: {} });
      }
    }
    const todo = await this.skipAlreadyThere(client, files.filter((f) => local.has(f)), local, report);

    const ready: Uploaded[] = [];
    let uploadsDone = false;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      wake?.();
      wake = undefined;
    };

    const uploader = async (): Promise<void> => {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < todo.length) {
          const file = todo[next++]!;
          if (signal?.aborted || this.lost) return;
          let stream: Promise<RemoteStreamHash | undefined> | undefined;
          try {
            const final = this.remotePath(file.name);
            const part = `${final}.part`;
            const { size } = local.get(file)!;
            await this.ensureDir(client, posix.dirname(final));
            // The server's hash starts as soon as the first segment is acknowledged; the
            // channel opens while the upload already runs (acks seen before are passed on).
            let acked = 0;
            let hashing: RemoteStreamHash | undefined;
            const slots = this.streamSlots;
            if (size > SEGMENT && slots.open < MAX_STREAMS) {
              slots.open++;
              let held = true;
              const release = (): void => {
                if (held) slots.open--;
                held = false;
              };
              stream = this.streaming().then(async (alg) => {
                const ssh = sshOf(client);
                const r = alg && ssh ? await RemoteStreamHash.start(ssh, alg, part) : undefined;
                if (!r) release();
                r?.closed.then(release, release);
                r?.advance(acked);
                hashing = r;
                return r;
              });
              stream.catch(release);
            }
            const sftp = sftpOf(client);
            const { digests } = await uploadFile(sftp, this.blocksFor(sftp), file.path, part, {
              size,
              algs: this.localAlgs(),
              budget: this.budget,
              onAcked: (n: number) => {
                acked = n;
                hashing?.advance(n);
              },
            });
            const remoteSum = stream?.then(async (r) => {
              const sum = await r?.finish(60_000 + size / 50_000);
              if (r && sum === undefined && !this.lost) this.streamBroken = true;
              return sum;
            });
            remoteSum?.catch(() => undefined);
            ready.push({ file, sums: digests, remoteSum });
            notify();
          } catch (err) {
            void stream?.then((r) => r?.abort(), () => undefined);
            report({ file, ok: false, reason: this.reasonOf(err, 'upload'), retryable: true, details: {} });
            // Leave no half .part behind where the connection still allows cleaning up.
            if (!this.lost) await client.delete(`${this.remotePath(file.name)}.part`, true).catch(() => undefined);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(this.opts.parallel ?? DEFAULT_PARALLEL, todo.length)) }, worker));
    };

    const verifier = async (): Promise<void> => {
      let since = 0; // when the oldest waiting .part became ready
      const batched = await this.verification().then((v) => remoteAlgOf(v) !== undefined, () => false);
      for (;;) {
        if (ready.length === 0) {
          if (uploadsDone) return;
          since = 0;
          await new Promise<void>((r) => {
            wake = r;
          });
          continue;
        }
        // Each hashing call costs the server a process: wait for a full batch while uploads go
        // on (measured: batches of a few files each cost the server seconds of CPU per 1,000
        // files), but publish what waits longer than BATCH_WAIT_MS.
        since ||= Date.now();
        const waited = Date.now() - since;
        if (batched && !uploadsDone && ready.length < SUM_BATCH && waited < BATCH_WAIT_MS && ready.some((u) => !u.remoteSum)) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, BATCH_WAIT_MS - waited);
            wake = () => {
              clearTimeout(t);
              r();
            };
          });
          continue;
        }
        since = 0;
        const batch = ready.splice(0, SUM_BATCH);
        await this.verifyAndPublish(client, batch, local, report);
      }
    };

    const up = uploader().finally(() => {
      uploadsDone = true;
      notify();
    });
    await Promise.all([up, verifier()]);
  }

  private reasonOf(err: unknown, what: string): string {
    const msg = (err as Error).message ?? String(err);
    // A dead connection seen by one call: the next attempt must reconnect, not reuse it.
    if (/EPIPE|ECONNRESET|No SFTP connection|not connected|Channel (is )?(closed|not open)|connection (closed|lost|ended)/i.test(msg)) this.lost ??= msg;
    if (this.lost) return `connection lost during ${what}: ${this.lost}`;
    if (/No space left|ENOSPC|quota/i.test(msg)) return `the server's disk is full (${msg})`;
    if (/Permission denied|EACCES/i.test(msg)) return `permission denied on the server (${msg})`;
    return `${what} failed: ${msg}`;
  }

  /** Files whose final name already holds the same bytes (a run killed after the rename) are done. */
  private async skipAlreadyThere(
    client: SftpClient,
    files: SendFile[],
    local: Map<SendFile, LocalFacts>,
    report: (r: AttemptResult) => void,
  ): Promise<SendFile[]> {
    if (files.length === 0) return files;
    // One listing per remote folder instead of a stat per file (1,000 round trips for 1,000 files).
    const byDir = new Map<string, SendFile[]>();
    for (const f of files) {
      const dir = posix.dirname(this.remotePath(f.name));
      byDir.set(dir, [...(byDir.get(dir) ?? []), f]);
    }
    const candidates: SendFile[] = [];
    for (const [dir, group] of byDir) {
      let listing: Map<string, number>;
      try {
        listing = new Map((await client.list(dir)).filter((e) => e.type === '-').map((e) => [e.name, e.size]));
      } catch {
        continue; // no such folder yet: nothing there
      }
      for (const f of group) {
        if (listing.get(posix.basename(f.name)) === local.get(f)!.size) candidates.push(f);
      }
    }
    if (candidates.length === 0) return files;
    const verification = await this.verification();
    const alg = remoteAlgOf(verification);
    if (!alg) return files;
    const sums = await this.remoteSums(alg, candidates.map((f) => this.remotePath(f.name)));
    const skipped = new Set<SendFile>();
    for (let i = 0; i < candidates.length; i++) {
      const f = candidates[i]!;
      const facts = local.get(f)!;
      const digest = await this.localSum(alg, f.path, facts);
      if (sums[i] === digest) {
        skipped.add(f);
        report({
          file: f,
          ok: true,
          retryable: false,
          bytes: 0,
          details: { remote: this.remotePath(f.name), [alg]: digest, size: facts.size, verified: verification, alreadyThere: true },
        });
      }
    }
    return files.filter((f) => !skipped.has(f));
  }

  private async verifyAndPublish(
    client: SftpClient,
    batch: Uploaded[],
    local: Map<SendFile, LocalFacts>,
    report: (r: AttemptResult) => void,
  ): Promise<void> {
    const verification = await this.verification();
    const alg = remoteAlgOf(verification);
    const parts = batch.map((u) => `${this.remotePath(u.file.name)}.part`);
    // A digest says the size implicitly (same digest); the other modes stat the .part.
    const sizes = alg ? [] : await Promise.all(parts.map((p) => client.stat(p).then((s) => s.size, () => -1)));
    const there = alg ? await this.serverSums(alg, batch, parts) : [];
    await Promise.all(
      batch.map(async ({ file, sums: hashed }, i) => {
        const facts = local.get(file)!;
        const part = parts[i]!;
        const final = this.remotePath(file.name);
        let sums: Digests;
        try {
          sums = { ...(await hashed) };
        } catch (err) {
          // The hashing thread died with this file's blocks: send it again.
          await client.delete(part, true).catch(() => undefined);
          report({ file, ok: false, reason: (err as Error).message, retryable: true, details: { remote: final } });
          return;
        }
        try {
          let problem: string | undefined;
          // A digest the upload did not compute (it began before the probe answered md5sum,
          // or --md5-file needs MD5 in readback mode) is read from the file.
          const digest = async (a: HashAlg): Promise<string> => (sums[a] ??= await this.localSum(a, file.path, facts));
          if (alg) {
            const mine = await digest(alg);
            if (there[i] !== mine) problem = `${alg} on the server ${there[i] ?? '(unreadable)'} != local ${mine}`;
          } else if (sizes[i] !== facts.size) {
            problem = `size on the server ${sizes[i]} != local ${facts.size}`;
          } else if (verification === 'readback') {
            const mine = await digest('sha256');
            const back = await this.readbackSum(client, 'sha256', part);
            if (back !== mine) problem = `sha256 read back ${back} != local ${mine}`;
          }
          // The local file may have changed while it was sent: then the remote copy is not this file.
          const now = await stat(file.path).catch(() => undefined);
          if (!problem && now?.size !== facts.size) problem = 'the local file changed while it was sent';
          if (problem) {
            await client.delete(part, true).catch(() => undefined);
            this.facts.delete(file.path);
            report({ file, ok: false, reason: `verification failed: ${problem}`, retryable: true, details: { remote: final } });
            return;
          }
          if (this.opts.md5File) {
            const base = posix.basename(final);
            await client.put(Buffer.from(`${await digest('md5')} *${base}\n`), `${final}.md5.part`);
            await this.rename(client, `${final}.md5.part`, `${final}.md5`);
          }
          await this.rename(client, part, final);
          // The digests of what was sent: sha256 and/or md5, whichever were computed.
          report({ file, ok: true, retryable: false, bytes: facts.size, details: { remote: final, ...sums, size: facts.size, verified: verification } });
        } catch (err) {
          report({ file, ok: false, reason: this.reasonOf(err, 'rename'), retryable: true, details: { remote: final } });
        }
      }),
    );
  }

  /** The server's digest of each .part: from the streaming check where it ran, else one batch. */
  private async serverSums(alg: HashAlg, batch: Uploaded[], parts: string[]): Promise<Array<string | undefined>> {
    const sums = await Promise.all(batch.map((u) => u.remoteSum?.catch(() => undefined)));
    await fillMissing(sums, parts, (paths) => this.remoteSums(alg, paths));
    return sums;
  }

  /** Atomic replace (posix-rename@openssh.com); plain rename after removing the target otherwise. */
  private async rename(client: SftpClient, from: string, to: string): Promise<void> {
    try {
      await client.posixRename(from, to);
    } catch (err) {
      if (!/not supported|unsupported|extension/i.test((err as Error).message)) throw err;
      await client.delete(to, true).catch(() => undefined);
      await client.rename(from, to);
    }
  }
}

function describeConnectError(err: Error, dest: SftpDestination, identity: string): string {
  const where = `${dest.user}@${dest.host}:${dest.port}`;
  const msg = err.message;
  if (/ECONNREFUSED|refused connection/i.test(msg)) return `${where}: connection refused (no SSH server there)`;
  if (/authentication methods failed|All configured authentication/i.test(msg)) return `${where}: the server refused the key ${identity} for user ${dest.user}`;
  if (/Timed out|timeout/i.test(msg)) return `${where}: no SSH handshake within the time limit`;
  if (/EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/.test(msg)) return `${where}: host unreachable (${msg})`;
  return `${where}: ${msg}`;
}
