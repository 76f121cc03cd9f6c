/**
 * Local MD5 of files that are not being uploaded: those the already-there check compares
 * with a copy on the server (an upload hashes the bytes it sends itself, see sftp-hash.ts).
 * Files are hashed by `md5sum` child processes, a few dozen per process, in the order they
 * were asked for, so the event loop that runs the SSH crypto stays free. Where `md5sum` is
 * missing, or a name would need md5sum's escaping, the file is hashed in-process.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { execa } from 'execa';

const PER_CHILD = 32;

export async function md5InProcess(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface Pending {
  path: string;
  resolve: (md5: string) => void;
  reject: (err: Error) => void;
}

export class LocalHasher {
  private queue: Pending[] = [];
  private running = false;
  private childWorks = true;

  /** The md5 of a file (hex); requests are served in order. */
  hash(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, PER_CHILD);
        const simple = batch.filter((p) => !/[\\\n\r]/.test(p.path));
        const done = new Set<Pending>();
        if (this.childWorks && simple.length > 0) {
          try {
            const r = await execa('md5sum', ['-b', '--', ...simple.map((p) => p.path)], { reject: false, stripFinalNewline: true });
            const lines = String(r.stdout).split('\n');
            if (r.exitCode === 0 && lines.length === simple.length) {
              simple.forEach((p, i) => {
                const m = /^([0-9a-f]{32}) \*(.*)$/.exec(lines[i]!);
                if (m && m[2] === p.path) {
                  p.resolve(m[1]!);
                  done.add(p);
                }
              });
            }
          } catch {
            this.childWorks = false; // no md5sum on this machine
          }
        }
        for (const p of batch) {
          if (done.has(p)) continue;
          try {
            p.resolve(await md5InProcess(p.path));
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
