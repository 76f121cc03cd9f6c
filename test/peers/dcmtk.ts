/**
 * DCMTK as a test peer: storescu / echoscu as senders, storescp as a receiver, and the
 * converters that make fixtures in every transfer syntax DCMTK can produce. Every program is
 * looked up with requireProgram, so a machine without DCMTK fails with the install command.
 * All network use is on 127.0.0.1; every run gets TCP_NODELAY=1 (DCMTK is slow on loopback
 * without it).
 */
import { execa, type Result, type ResultPromise } from 'execa';
import { open, readFile } from 'node:fs/promises';
import { freePort, waitForPort } from './ports.js';
import { DCMTK_ENV, requireProgram, startPeer, stopProcess, type Peer } from './process.js';

export { stopProcess };

export function dcmtk(program: string): string {
  return requireProgram(program, 'dcmtk');
}

/** Run a DCMTK program; the returned promise is also the child (kill(), pid). Never rejects. */
function run(program: string, args: string[], timeoutMs = 60_000): ResultPromise & Promise<Result> {
  return execa(dcmtk(program), args, { reject: false, env: { ...DCMTK_ENV }, timeout: timeoutMs, stdin: 'ignore' }) as ResultPromise & Promise<Result>;
}

/** Run a DCMTK converter and throw (with its stderr) if it fails. */
async function convert(program: string, args: string[]): Promise<void> {
  const r = await run(program, args);
  if (r.exitCode !== 0) throw new Error(`${program} ${args.join(' ')} failed (${r.exitCode}): ${String(r.stderr)}`);
}

export interface SendOptions {
  port: number;
  calledAet?: string;
  callingAet?: string;
  /** Extra storescu options, e.g. ['-xs'] (propose JPEG lossless) or ['+sd'] (scan folders). */
  args?: string[];
  timeoutMs?: number;
}

/** storescu to 127.0.0.1; resolves with the result (never throws for a non-zero exit); kill() stops it. */
export function storescu(files: string[], o: SendOptions): ResultPromise & Promise<Result> {
  const args = ['-aec', o.calledAet ?? 'FIONA', '-aet', o.callingAet ?? 'STORESCU', ...(o.args ?? []), '127.0.0.1', String(o.port), ...files];
  return run('storescu', args, o.timeoutMs);
}

/** echoscu to 127.0.0.1. */
export function echoscu(o: SendOptions): ResultPromise & Promise<Result> {
  const args = ['-aec', o.calledAet ?? 'FIONA', '-aet', o.callingAet ?? 'ECHOSCU', ...(o.args ?? []), '127.0.0.1', String(o.port)];
  return run('echoscu', args, o.timeoutMs);
}

/** A DCMTK storescp on a free port writing into dir; stop() ends it (SIGTERM, then SIGKILL). */
export async function startStorescp(dir: string, o: { aet?: string; args?: string[] } = {}): Promise<Peer & { port: number }> {
  const port = await freePort();
  const peer = startPeer(dcmtk('storescp'), ['-aet', o.aet ?? 'STORESCP', '-od', dir, ...(o.args ?? []), String(port)]);
  await waitForPort(port);
  return { proc: peer.proc, port, stop: () => stopProcess(peer.proc) };
}

// --- fixtures ----------------------------------------------------------------------------------

/** dcmconv with a transfer syntax flag: +te explicit LE, +ti implicit, +tb big endian, +td deflated. */
export function dcmconv(input: string, output: string, flags: string[]): Promise<void> {
  return convert('dcmconv', [...flags, input, output]);
}

/** RLE lossless. */
export function dcmcrle(input: string, output: string, flags: string[] = []): Promise<void> {
  return convert('dcmcrle', [...flags, input, output]);
}

/** JPEG: default lossless SV1 (+e1); ['+eb'] baseline, ['+ee'] extended, ['+el'] lossless. */
export function dcmcjpeg(input: string, output: string, flags: string[] = []): Promise<void> {
  return convert('dcmcjpeg', [...flags, input, output]);
}

/** JPEG-LS: default lossless; ['+en'] near-lossless. */
export function dcmcjpls(input: string, output: string, flags: string[] = []): Promise<void> {
  return convert('dcmcjpls', [...flags, input, output]);
}

/** dump2dcm: a DCMTK text dump to a file (['+te'] etc. choose the encoding). */
export function dump2dcm(dumpFile: string, output: string, flags: string[] = []): Promise<void> {
  return convert('dump2dcm', [...flags, dumpFile, output]);
}

/** dcmodify in place (no .bak). */
export function dcmodify(file: string, args: string[]): Promise<void> {
  return convert('dcmodify', ['-nb', ...args, file]);
}

/** dcmdump text of a file. */
export async function dcmdump(file: string, args: string[] = []): Promise<string> {
  const r = await run('dcmdump', [...args, file]);
  if (r.exitCode !== 0) throw new Error(`dcmdump ${file} failed: ${String(r.stderr)}`);
  return String(r.stdout);
}

// --- bytes ---------------------------------------------------------------------------------------

export interface P10Parts {
  /** File Meta group bytes (from (0002,0000) to its end). */
  meta: Buffer;
  /** The data set bytes after the File Meta. */
  dataset: Buffer;
  /** (0002,0010) */
  transferSyntax: string;
}

/**
 * Split a Part 10 file into File Meta and data set using the group length (0002,0000),
 * which DCMTK always writes. Independent of fiona's own parser.
 */
export async function p10Parts(file: string): Promise<P10Parts> {
  const bytes = await readFile(file);
  if (bytes.toString('latin1', 128, 132) !== 'DICM') throw new Error(`${file}: no DICM prefix`);
  if (bytes.readUInt16LE(132) !== 0x0002 || bytes.readUInt16LE(134) !== 0x0000) throw new Error(`${file}: no (0002,0000) group length`);
  const groupLength = bytes.readUInt32LE(140);
  const metaEnd = 144 + groupLength;
  const meta = bytes.subarray(132, metaEnd);
  let ts = '';
  for (let off = 144; off < metaEnd; ) {
    const elem = bytes.readUInt16LE(off + 2);
    const vr = bytes.toString('latin1', off + 4, off + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT'].includes(vr);
    const len = long ? bytes.readUInt32LE(off + 8) : bytes.readUInt16LE(off + 6);
    const start = off + (long ? 12 : 8);
    if (elem === 0x0010) ts = bytes.toString('latin1', start, start + len).replace(/[\0 ]+$/, '');
    off = start + len;
  }
  return { meta, dataset: bytes.subarray(metaEnd), transferSyntax: ts };
}

/** The first `n` bytes of a file (for truncation tests). */
export async function headBytes(file: string, n: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
