/**
 * Local checksums of files that are not being uploaded: those the already-there check
 * compares with a copy on the server, and, when the server turned out to have only md5sum,
 * the MD5 of a file whose upload began before that answer (an upload hashes the bytes it
 * sends itself, see sftp-hash.ts). Files are hashed by child processes (`md5sum -b`, or
 * `openssl dgst -sha256 -r`), a few dozen per process, in the order they were asked for, so
 * the event loop that runs the SSH crypto stays free. Where the command is missing, or a
 * name would need escaping, the file is hashed in-process.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { sumLine, type HashAlg } from './checksum.js';

const PER_CHILD = 32;

/** The local command per digest: both print `<hex> *<path>` for a plain path. */
const COMMAND: Record<HashAlg, [string, string[]]> = {
  md5: ['md5sum', ['-b', '--']],
  sha256: ['openssl', ['dgst', '-sha256', '-r', '--']],
};

async function hashInProcess(alg: HashAlg, path: string): Promise<string> {
  const h = createHash(alg);
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface Pending {
  path: string;
  resolve: (digest: string) => void;
  reject: (err: Error) => void;
}

export class LocalHasher {
  private queue: Pending[] = [];
  private running = false;
  private childWorks = true;

  constructor(readonly alg: HashAlg) {}

  /** The digest of a file (hex); requests are served in order. */
  hash(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    const [cmd, args] = COMMAND[this.alg];
    const line = sumLine(this.alg);
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, PER_CHILD);
        const simple = batch.filter((p) => !/[\\\n\r]/.test(p.path));
        const done = new Set<Pending>();
        if (this.childWorks && simple.length > 0) {
          try {
            // Loaded here, not at the top: execa costs ~0.1-0.15 s to load, and most runs never
            // hash a file outside an upload.
            const { execa } = await import('execa');
            const r = await execa(cmd, [...args, ...simple.map((p) => p.path)], { reject: false, stripFinalNewline: true });
            const lines = String(r.stdout).split('\n');
            if (r.exitCode === 0 && lines.length === simple.length) {
              simple.forEach((p, i) => {
                const m = line.exec(lines[i]!);
                if (m && m[2] === p.path) {
                  p.resolve(m[1]!);
                  done.add(p);
                }
              });
            }
          } catch {
            this.childWorks = false; // no such command on this machine
          }
        }
        for (const p of batch) {
          if (done.has(p)) continue;
          try {
            p.resolve(await hashInProcess(this.alg, p.path));
          } catch (err) {
            p.reject(err as Error);
          }
        }
      }
    } finally {
      this.running = false;
    }
  }
}
