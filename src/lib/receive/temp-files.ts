/**
 * Empty temp files in `.arrived/`, created ahead of need.
 *
 * Creating a file was the slowest system call on the receiving path (about 0.15-0.2 ms on
 * ext4, more when the journal is busy), and it sat between the last byte of an instance and
 * the answer to the sender. A few files are therefore created in the background (libuv's
 * thread pool) while the receiver waits for data, and each new instance takes one. If none is
 * ready (a burst, or the disk refuses) the instance opens its own, as before.
 *
 * Names are `<pid>-s<n>.dcm`: the start-up sweep tells a dead receiver's leftovers from a live
 * one's by the pid, and removes the ones that are still empty.
 */
import { closeSync, open, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface TempFile {
  path: string;
  /** An open descriptor (write-only) when the file was created ahead; else undefined. */
  fd?: number;
}

export class TempFiles {
  private readonly ready: Array<{ path: string; fd: number }> = [];
  private creating = 0;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly dir: string,
    /** How many to keep ready. */
    private readonly target = 4,
  ) {}

  /** A temp file for a new instance (created ahead if one is ready), and start making more. */
  take(): TempFile {
    const spare = this.ready.pop();
    this.refill();
    return spare ?? { path: this.nextPath() };
  }

  /** Start creating files until `target` are ready or being made. */
  refill(): void {
    while (!this.closed && this.ready.length + this.creating < this.target) {
      const path = this.nextPath();
      this.creating++;
      open(path, 'wx', 0o644, (err, fd) => {
        this.creating--;
        if (err) return; // the next take() tries again; the instance opens its own meanwhile
        if (this.closed) {
          closeQuietly(fd, path);
          return;
        }
        this.ready.push({ path, fd });
      });
    }
  }

  /** Remove the files not used (on shutdown). */
  close(): void {
    this.closed = true;
    for (const { fd, path } of this.ready.splice(0)) closeQuietly(fd, path);
  }

  private nextPath(): string {
    return join(this.dir, `${process.pid}-s${(++this.seq).toString(36)}.dcm`);
  }
}

function closeQuietly(fd: number, path: string): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
