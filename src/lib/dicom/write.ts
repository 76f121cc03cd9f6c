import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { fsyncDir, tempNameFor } from '../site/atomic.js';
import type { Header } from './header.js';
import type { Plan } from './plan.js';
import { readAt } from './read.js';
import type { DicomElement } from './types.js';

/**
 * Writing a plan: copy ranges come from the windows already in memory or are read from the
 * input in 1 MiB pieces, new bytes are written as they are, all through a 1 MiB buffer.
 * Memory stays bounded whatever the file size. Paths get temp name + fsync + rename.
 */

export type Output = string | NodeJS.WritableStream;

const PIECE = 1024 * 1024;

/** What the rewriter needs of the input beyond the index: its size and a way to read one value. */
export async function sourceInfo(input: string, header: Header): Promise<{ size: number; readValue: (el: DicomElement) => Promise<Uint8Array> }> {
  const { size } = await stat(input);
  const readValue = async (el: DicomElement): Promise<Uint8Array> => {
    if (el.length === 0xffffffff) return new Uint8Array(0);
    const inMemory = header.bytesOf(el);
    if (inMemory) return inMemory;
    const fh = await open(input, 'r');
    try {
      return await readAt(fh, el.valueOffset, el.length);
    } finally {
      await fh.close();
    }
  };
  return { size, readValue };
}

/** Collects small writes into 1 MiB blocks; passes large ones straight through. */
class Sink {
  private buf = Buffer.allocUnsafe(PIECE);
  private used = 0;
  written = 0;
  constructor(private readonly write: (b: Uint8Array) => Promise<void>) {}

  async push(b: Uint8Array): Promise<void> {
    if (b.length === 0) return;
    if (this.used + b.length > PIECE) await this.flush();
    if (b.length >= PIECE / 2) {
      await this.write(b);
      this.written += b.length;
      return;
    }
    this.buf.set(b, this.used);
    this.used += b.length;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const out = this.buf.subarray(0, this.used);
    // Streams may keep the buffer after write() returns: hand them this one, take a new one.
    this.buf = Buffer.allocUnsafe(PIECE);
    this.used = 0;
    await this.write(out);
    this.written += out.length;
  }
}

async function render(plan: Plan, sink: Sink, fromMemory: Header | undefined, fh: FileHandle | undefined): Promise<void> {
  for (const s of plan.segments) {
    if (s.kind === 'bytes') {
      await sink.push(s.data);
      continue;
    }
    const mem = fromMemory?.store.slice(s.start, s.end - s.start);
    if (mem) {
      await sink.push(mem);
      continue;
    }
    if (!fh) throw new Error(`bytes ${s.start}..${s.end} of the input are not available`);
    for (let p = s.start; p < s.end; p += PIECE) {
      const len = Math.min(PIECE, s.end - p);
      const piece = await readAt(fh, p, len);
      if (piece.length !== len) throw new Error(`input changed while rewriting: short read at offset ${p}`);
      await sink.push(piece);
    }
  }
}

function streamWriter(stream: NodeJS.WritableStream): (b: Uint8Array) => Promise<void> {
  return (b) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      stream.once('error', onError);
      const ok = stream.write(b, (err) => {
        if (err) reject(err);
      });
      const done = (): void => {
        stream.removeListener('error', onError);
        resolve();
      };
      if (ok) done();
      else stream.once('drain', done);
    });
}

/**
 * Write head + body to the output. `body` undefined with verbatim: the head plan is the
 * whole file. A deflated input's body is deflated again (its ranges refer to the inflated stream).
 */
export async function writePlan(
  input: string,
  header: Header,
  head: Plan,
  body: Plan | undefined,
  output: Output,
  opts: { fsync: boolean; verbatim: boolean },
): Promise<number> {
  const deflate = header.inflated && !opts.verbatim;
  const inFh = deflate ? undefined : await open(input, 'r');
  const memory = deflate ? header : opts.verbatim && header.inflated ? undefined : header;
  try {
    const emit = async (sink: Sink): Promise<void> => {
      await render(head, sink, memory, inFh);
      if (!body) return;
      if (deflate) {
        const parts: Uint8Array[] = [];
        const collect = new Sink(async (b) => {
          parts.push(Buffer.from(b));
        });
        await render(body, collect, memory, undefined);
        await collect.flush();
        await sink.push(deflateRawSync(Buffer.concat(parts)));
      } else {
        await render(body, sink, memory, inFh);
      }
    };
    if (typeof output !== 'string') {
      const sink = new Sink(streamWriter(output));
      await emit(sink);
      await sink.flush();
      return sink.written;
    }
    const tmp = tempNameFor(output);
    const outFh = await open(tmp, 'w', 0o644);
    let written = 0;
    try {
      const sink = new Sink(async (b) => {
        let off = 0;
        while (off < b.length) {
          const { bytesWritten } = await outFh.write(b, off, b.length - off);
          off += bytesWritten;
        }
      });
      await emit(sink);
      await sink.flush();
      written = sink.written;
      if (opts.fsync) await outFh.sync();
      await outFh.close();
    } catch (err) {
      await outFh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
    try {
      await rename(tmp, output);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    if (opts.fsync) await fsyncDir(dirname(output));
    return written;
  } finally {
    await inFh?.close();
  }
}
