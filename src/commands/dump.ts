import { collect, createProgram } from '../lib/cli/program.js';
import { createLogger } from '../lib/cli/output.js';
import { describeJson, describeText, selectValues, type JsonDataset } from '../lib/dicom/describe.js';
import { parseTagKey } from '../lib/dicom/dictionary.js';
import { DicomParseError } from '../lib/dicom/errors.js';
import type { Header } from '../lib/dicom/header.js';
import { indexFile, readHeaderFull } from '../lib/dicom/read.js';
import { UsageError, errorMessage } from '../lib/errors.js';

const HELP = `
Prints the header of each DICOM FILE as it is stored: as text like dcmdump (default),
as DICOM JSON (PS3.18 F.2) with --json / --ndjson, or chosen values with --tag.
Reading stops before the pixel data unless --all is given.

Examples:
  fiona-dump scan.dcm
  fiona-dump --json scan.dcm | jq -r '."0020000D".Value[0]'
  fiona-dump --tag StudyInstanceUID --tag SeriesNumber archive/*/*/*.dcm
  fiona-dump --tag ReferencedImageSequence.ReferencedSOPInstanceUID scan.dcm

A file that cannot be read (not DICOM, truncated, a wrong length) is reported on stderr
with the offset and tag where reading stopped; the other files are still printed, and the
exit code is 1.
`;

interface Options {
  json?: boolean;
  ndjson?: boolean;
  tag: string[];
  all?: boolean;
  meta?: boolean;
  filename?: boolean;
}

function checkTags(keys: string[]): void {
  for (const k of keys) {
    for (const part of k.split('.')) {
      const bare = part.replace(/\[\d+\]$/, '');
      try {
        parseTagKey(bare);
      } catch {
        throw new UsageError(`--tag ${k}: ${bare} is not a keyword or a tag (use e.g. PatientID or 0010,0020)`);
      }
    }
  }
}

async function load(file: string, all: boolean): Promise<Header> {
  if (all) return indexFile(file);
  const header = await readHeaderFull(file, { stopBeforePixels: true });
  checkPixelDataFits(file, header);
  return header;
}

/**
 * The header read stops before the pixel data's value, so a file cut inside it would print
 * as whole: its declared length is checked against the file's size, as the full walk
 * (--all) checks every value. Not for a deflated file: its offsets are in the inflated stream.
 */
function checkPixelDataFits(file: string, header: Header): void {
  const last = header.elements.at(-1);
  const size = header.fileSize;
  if (last === undefined || last.length === 0xffffffff || size === undefined || header.inflated) return;
  if (last.valueOffset + last.length > size) {
    throw new DicomParseError(`value of length ${last.length} runs past the end of the file (${size} bytes): truncated or wrong length`, last.headerOffset, { file, tag: last.tag });
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-dump', 'Print DICOM headers as text, DICOM JSON, or chosen values.', HELP)
    .argument('<file...>', 'DICOM files (Part 10 or bare datasets)')
    .option('--json', 'DICOM JSON model: one object per file, an array when there are several files')
    .option('--ndjson', 'DICOM JSON model, one object per line (for streams of files)')
    .option('--tag <key>', 'print this value (keyword, gggg,eeee, or Sequence.Keyword path); repeatable', collect, [])
    .option('--all', 'read the whole file: pixel data fragments and elements after pixel data too')
    .option('--meta', 'include the File Meta group in JSON output too (text shows it by default)')
    .option('--no-meta', 'leave the File Meta group out of the text output')
    .option('-H, --filename', 'with --tag: print the file name first (default when there are several files)')
    .option('--no-filename', 'with --tag: never print the file name');
  program.parse(argv);
  const files = program.args;
  const opts = program.opts<Options>();
  if (opts.json && opts.ndjson) throw new UsageError('--json and --ndjson: choose one');
  if (opts.tag.length > 0 && (opts.json || opts.ndjson)) throw new UsageError('--tag prints plain values; leave out --json/--ndjson');
  checkTags(opts.tag);
  const metaInJson = opts.meta === true;
  const log = createLogger('fiona-dump');
  const showName = opts.filename ?? files.length > 1;
  const write = (s: string): boolean => process.stdout.write(s);
  let failed = 0;
  const jsonOut: JsonDataset[] = [];
  for (const [k, file] of files.entries()) {
    let header: Header;
    try {
      header = await load(file, Boolean(opts.all));
    } catch (err) {
      failed++;
      if (err instanceof DicomParseError) log.error(err.message);
      else log.error(`${file}: ${errorMessage(err)}`);
      continue;
    }
    if (opts.tag.length > 0) {
      const fields = opts.tag.map((t) => selectValues(header, t, parseTagKey).join('\\'));
      write(`${showName ? `${file}\t` : ''}${fields.join('\t')}\n`);
    } else if (opts.ndjson) {
      write(`${JSON.stringify(describeJson(header, { meta: metaInJson }))}\n`);
    } else if (opts.json) {
      jsonOut.push(describeJson(header, { meta: metaInJson }));
    } else {
      if (files.length > 1) write(`${k > 0 ? '\n' : ''}# File: ${file}\n`);
      write(`${describeText(header, { meta: opts.meta !== false }).join('\n')}\n`);
    }
  }
  if (opts.json) {
    const value = files.length === 1 ? (jsonOut[0] ?? null) : jsonOut;
    if (value !== null) write(`${JSON.stringify(value, null, 2)}\n`);
  }
  return failed > 0 ? 1 : 0;
}
