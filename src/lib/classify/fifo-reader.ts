import { constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ensureFifo } from '../events/fifo.js';

/**
 * A named pipe to read lines from, as FIONA's daemon read /tmp/.processSingleFilePipe. It is
 * created when missing and opened read-write (Linux), so the stream never sees end-of-file
 * when a writer closes: writers come and go, the reader stays until it is closed.
 */
export async function openFifoForReading(path: string): Promise<Readable> {
  await ensureFifo(path);
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  // libuv reads a FIFO as a pipe (non-blocking, on the event loop), not through the thread pool.
  return new Socket({ fd, readable: true, writable: false });
}
