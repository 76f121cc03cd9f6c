import { formatTag } from './tags.js';

/**
 * A file that cannot be read as DICOM: not DICOM at all, truncated, or a length that does
 * not fit. The message names the file, the byte offset where reading stopped and, when
 * known, the element's tag, so a sysadmin can look at the bytes with `xxd -s OFFSET`.
 */
export class DicomParseError extends Error {
  file?: string;
  offset: number;
  tag?: string;
  /** The bare reason, without file/offset/tag. */
  readonly reason: string;

  constructor(reason: string, offset: number, opts: { file?: string; tag?: number } = {}) {
    const tag = opts.tag === undefined ? undefined : formatTag(opts.tag);
    const where = `offset ${offset}${tag ? `, tag ${tag}` : ''}`;
    super(`${opts.file ? `${opts.file}: ` : ''}${reason} (at ${where})`);
    this.name = 'DicomParseError';
    this.reason = reason;
    this.offset = offset;
    this.file = opts.file;
    this.tag = tag;
  }

  /** The same error for a named file (parsers work on bytes and learn the name later). */
  withFile(file: string): DicomParseError {
    if (this.file) return this;
    const tag = this.tag === undefined ? undefined : Number.parseInt(this.tag.replace(/[(),]/g, ''), 16);
    return new DicomParseError(this.reason, this.offset, { file, tag });
  }
}
