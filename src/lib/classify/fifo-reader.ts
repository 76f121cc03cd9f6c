import { constants, existsSync, openSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { execa } from 'execa';

/**
 * A named pipe to read lines from, as FIONA's daemon read /tmp/.processSingleFilePipe. It is
 * created when missing and opened read-write (Linux), so the stream never sees end-of-file
 * when a writer closes: writers come and go, the reader stays until it is closed.
 */
export async function openFifoForReading(path: string): Promise<Readable> {
  if (!existsSync(path)) {
    // The writer (fiona-receive --pipe) may be creating it at the same moment: that is fine.
    const r = await execa('mkfifo', ['-m', '0660', path], { reject: false });
    if (r.exitCode !== 0 && !existsSync(path)) throw new Error(`cannot create the FIFO ${path}: ${String(r.stderr).trim()}`);
  }
  if (!statSync(path).isFIFO()) {
    throw new Error(`${path} exists and is not a FIFO`);
  }
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  // libuv reads a FIFO as a pipe (non-blocking, on the event loop), not through the thread pool.
  return new Socket({ fd, readable: true, writable: false });
}
