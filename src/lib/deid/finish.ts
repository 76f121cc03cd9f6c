import { open } from 'node:fs/promises';
import { type Header, formatTag, readHeaderFull } from '../dicom/index.js';
import { parseBytes } from '../dicom/read.js';
import { PIXEL_DATA } from '../dicom/tags.js';
import { type Needle, findNeedle, haystackOf } from './leak.js';
import { RefusedError } from './refused.js';

/**
 * Making a written output final, before it is published: zero the preamble (it may hold
 * anything, PS3.15 E.1.1 item 7), check that the output parses, and the leak check: no
 * identifying value outside the pixel data.
 */

const NO_BYTES = new Uint8Array(0);

export interface FinishInput {
  needles: Needle[];
}

function hasPreamble(b: Uint8Array): boolean {
  return b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;
}

function leakError(leak: { label: string; offset: number; where?: string }): RefusedError {
  return new RefusedError(`leak check: the output still holds the ${leak.label} at byte ${leak.offset}${leak.where ? ` (in ${leak.where})` : ''}; nothing was released`);
}

function parseOutput(bytes: Uint8Array): Header {
  try {
    return parseBytes(bytes, { stopBeforePixels: true });
  } catch (err) {
    throw new Error(`the written file does not parse (a bug; nothing was released): ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Make an output held in memory final: zero the preamble (it may hold anything, PS3.15
 * E.1.1 item 7), check that it parses and holds no identifying value outside its pixel data.
 */
function finishInMemory(bytes: Buffer, o: FinishInput): void {
  const out = parseOutput(bytes);
  if (hasPreamble(bytes)) bytes.fill(0, 0, 128);
  if (o.needles.length === 0) return;
  if (out.inflated) {
    const hit = findNeedle(haystackOf(out.store.windows[0]!.bytes), o.needles);
    if (hit) throw leakError(hit);
    return;
  }
  const px = out.element(PIXEL_DATA);
  const ranges: Array<[number, number]> = px ? [[0, px.headerOffset], [px.end, bytes.length]] : [[0, bytes.length]];
  for (const [start, end] of ranges) {
    if (end <= start) continue;
    const hit = findNeedle(haystackOf(bytes.subarray(start, end)), o.needles, start);
    if (hit) throw leakError({ ...hit, where: elementAt(out, hit.offset) });
  }
}

/**
 * finishInMemory for an output in parts (MemorySink.parts()): one part, or the bytes before
 * the top-level pixel data value, the value (kept by reference from the input), and the
 * bytes after it if there are any. The parts outside the value are checked as
 * finishInMemory checks them.
 */
export function finishParts(parts: Uint8Array[], o: FinishInput): void {
  if (parts.length === 1) return finishInMemory(Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.byteLength), o);
  const [headPart, value, tail = NO_BYTES] = parts;
  if (parts.length > 3 || !headPart || !value) throw new Error(`the written output has ${parts.length} parts (a bug; nothing was released)`);
  const head = Buffer.from(headPart.buffer, headPart.byteOffset, headPart.byteLength);
  // The head alone parses up to the pixel data (stopping before its value, which is not there).
  const out = parseOutput(head);
  const px = out.element(PIXEL_DATA);
  if (!px || px.valueOffset !== head.length || px.end !== head.length + value.length) {
    throw new Error('the written output does not hold its pixel data where it was put (a bug; nothing was released)');
  }
  if (hasPreamble(head)) head.fill(0, 0, 128);
  if (o.needles.length === 0) return;
  const hit =
    findNeedle(haystackOf(head.subarray(0, px.headerOffset)), o.needles) ??
    (tail.length > 0 ? findNeedle(haystackOf(tail), o.needles, px.end) : undefined);
  if (hit) throw leakError({ ...hit, where: hit.offset < px.headerOffset ? elementAt(out, hit.offset) : undefined });
}

/** The same for an output too large to hold: its preamble zeroed and checked in the temp file. */
export async function finishOnDisk(tmp: string, o: FinishInput, fsync: boolean): Promise<void> {
  const out = await readHeaderFull(tmp).catch((err: unknown) => {
    throw new Error(`the written file does not parse (a bug; nothing was released): ${(err as Error).message}`, { cause: err });
  });
  const fh = await open(tmp, 'r+');
  try {
    const head = out.store.slice(0, 132);
    if (head && hasPreamble(head)) await fh.write(new Uint8Array(128), 0, 128, 0);
    if (o.needles.length > 0) {
      const leak = await scanForLeaks(fh, out, o.needles);
      if (leak) throw leakError(leak);
    }
    if (fsync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Search the file outside its top-level pixel data value. */
async function scanForLeaks(
  fh: Awaited<ReturnType<typeof open>>,
  h: Header,
  needles: Needle[],
): Promise<{ label: string; offset: number; where?: string } | undefined> {
  if (h.inflated) {
    for (const w of h.store.windows) {
      const hit = findNeedle(haystackOf(w.bytes), needles, w.start);
      if (hit) return hit;
    }
    return undefined;
  }
  // The reader already knows the size (it stat'ed the file): no second stat.
  const size = h.fileSize ?? (await fh.stat()).size;
  const px = h.element(PIXEL_DATA);
  const ranges: Array<[number, number]> = px ? [[0, px.headerOffset], [px.end ?? size, size]] : [[0, size]];
  for (const [start, end] of ranges) {
    if (end <= start) continue;
    const mem = h.store.slice(start, end - start);
    const bytes = mem ?? (await readAll(fh, start, end - start));
    const hit = findNeedle(haystackOf(bytes), needles, start);
    if (hit) return { ...hit, where: elementAt(h, hit.offset) };
  }
  return undefined;
}

async function readAll(fh: Awaited<ReturnType<typeof open>>, start: number, length: number): Promise<Uint8Array> {
  // Headers are small; a file whose non-pixel part is huge (a long private blob) is read once here.
  const buf = Buffer.alloc(length);
  await fh.read(buf, 0, length, start);
  return buf;
}

/** The top-level element holding a byte offset, for the message. */
function elementAt(h: Header, offset: number): string | undefined {
  const el = [...h.meta, ...h.elements].find((e) => offset >= e.headerOffset && offset < e.end);
  if (!el) return undefined;
  return formatTag(el.tag);
}

