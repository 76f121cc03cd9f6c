import { closeSync, constants, existsSync, openSync, statSync, writeSync } from 'node:fs';

/**
 * Make the FIFO at `path` unless it exists, and check that what is there is a FIFO. The
 * other end may create the same FIFO at this moment: losing that race is fine.
 */
export async function ensureFifo(path: string): Promise<void> {
  if (!existsSync(path)) {
    // execa is loaded here, not at the top: every tool imports the events module, and
    // loading execa (about 100 files) costs 70-85 ms of start-up that only FIFOs need.
    const { execa } = await import('execa');
    const r = await execa('mkfifo', ['-m', '0660', path], { reject: false });
    if (!existsSync(path)) throw new Error(`cannot create the FIFO ${path}: ${String(r.stderr).trim() || `mkfifo exit ${r.exitCode}`}`);
  }
  if (!statSync(path).isFIFO()) throw new Error(`${path} exists and is not a FIFO`);
}

/**
 * A line writer into a named pipe that never blocks and never dies with its reader.
 * The FIFO is opened read-write (Linux): we hold a read end ourselves, so opening does not
 * wait for a reader and a reader that goes away causes no EPIPE; lines written while no
 * one reads wait in the pipe buffer (64 KiB) for the next reader. When the buffer is full,
 * lines are dropped and counted rather than stalling the receiver.
 */
export class FifoWriter {
  private fd: number;
  dropped = 0;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
  }

  static async open(path: string): Promise<FifoWriter> {
    await ensureFifo(path);
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    return new FifoWriter(path, fd);
  }

  /** Write one line; returns false when it was dropped because the pipe is full. */
  writeLine(line: string): boolean {
    const buf = Buffer.from(`${line}\n`);
    try {
      // Lines under PIPE_BUF (4096) are written atomically or not at all.
      writeSync(this.fd, buf);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        this.dropped++;
        return false;
      }
      throw err;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}
