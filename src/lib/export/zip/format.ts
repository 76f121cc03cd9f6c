/**
 * ZIP structures (APPNOTE.TXT 6.3.x) as byte builders: local header, central directory
 * record, end records, and the extra fields fiona writes (ZIP64 0x0001, WinZip AES 0x9901).
 * Only what the writer needs and the verifier reads; nothing here touches the disk.
 */

export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_EOCD = 0x06054b50;
export const SIG_ZIP64_EOCD = 0x06064b50;
export const SIG_ZIP64_LOCATOR = 0x07064b50;

export const METHOD_STORE = 0;
export const METHOD_DEFLATE = 8;
export const METHOD_AES = 99;

export const FLAG_ENCRYPTED = 0x0001;
export const FLAG_UTF8 = 0x0800;

export const EXTRA_ZIP64 = 0x0001;
export const EXTRA_AES = 0x9901;

/** Sizes and offsets at or above this need ZIP64 fields. */
export const U32_LIMIT = 0xffffffff;
export const U16_LIMIT = 0xffff;

/** WinZip AES-256: salt 16 bytes, password verifier 2, authentication code 10. */
export const AES_SALT_LENGTH = 16;
export const AES_PWV_LENGTH = 2;
export const AES_MAC_LENGTH = 10;
export const AES_OVERHEAD = AES_SALT_LENGTH + AES_PWV_LENGTH + AES_MAC_LENGTH;

/** What the writer knows about an entry once its data is written. */
export interface EntryRecord {
  name: string;
  nameBytes: Buffer;
  /** The method stored in the header (99 when AES-encrypted). */
  method: number;
  /** The compression under the encryption (0 or 8). */
  innerMethod: number;
  encrypted: boolean;
  /** CRC-32 of the uncompressed data, always computed; written as 0 for AES (AE-2). */
  crc: number;
  compressedSize: number;
  uncompressedSize: number;
  offset: number;
  zip64: boolean;
  dosTime: number;
  dosDate: number;
}

/** MS-DOS date and time (local time, 2-second resolution), as ZIP stores them. */
export function dosDateTime(d: Date): { dosTime: number; dosDate: number } {
  const year = Math.max(1980, Math.min(2107, d.getFullYear()));
  return {
    dosTime: (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2),
    dosDate: ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

function versionNeeded(e: Pick<EntryRecord, 'encrypted' | 'zip64' | 'innerMethod'>): number {
  if (e.encrypted) return 51;
  if (e.zip64) return 45;
  return e.innerMethod === METHOD_DEFLATE ? 20 : 10;
}

function flags(e: Pick<EntryRecord, 'encrypted' | 'nameBytes' | 'name'>): number {
  let f = 0;
  if (e.encrypted) f |= FLAG_ENCRYPTED;
  if (e.nameBytes.length !== e.name.length) f |= FLAG_UTF8;
  return f;
}

/** The WinZip AES extra field (11 bytes), written at `at`. */
function writeAesExtra(b: Buffer, at: number, innerMethod: number): void {
  b.writeUInt16LE(EXTRA_AES, at);
  b.writeUInt16LE(7, at + 2);
  b.writeUInt16LE(2, at + 4); // AE-2: the CRC field is 0, the HMAC authenticates the data
  b.write('AE', at + 6, 'latin1');
  b.writeUInt8(3, at + 8); // AES-256
  b.writeUInt16LE(innerMethod, at + 9);
}

/**
 * The local header. An entry that may reach 4 GiB is marked ZIP64 up front (both sizes
 * in the extra field), because its header is written before its compressed size is known.
 */
export function localHeader(e: EntryRecord): Buffer {
  // One buffer of the exact length, filled in place (a header per entry: no concatenation).
  const h = Buffer.allocUnsafe(localHeaderLength(e));
  h.writeUInt32LE(SIG_LOCAL, 0);
  h.writeUInt16LE(versionNeeded(e), 4);
  h.writeUInt16LE(flags(e), 6);
  h.writeUInt16LE(e.method, 8);
  h.writeUInt16LE(e.dosTime, 10);
  h.writeUInt16LE(e.dosDate, 12);
  h.writeUInt32LE(e.encrypted ? 0 : e.crc >>> 0, 14);
  h.writeUInt32LE(e.zip64 ? U32_LIMIT : e.compressedSize, 18);
  h.writeUInt32LE(e.zip64 ? U32_LIMIT : e.uncompressedSize, 22);
  h.writeUInt16LE(e.nameBytes.length, 26);
  h.writeUInt16LE((e.zip64 ? 20 : 0) + (e.encrypted ? 11 : 0), 28);
  let at = 30 + e.nameBytes.copy(h, 30);
  if (e.zip64) {
    h.writeUInt16LE(EXTRA_ZIP64, at);
    h.writeUInt16LE(16, at + 2);
    h.writeBigUInt64LE(BigInt(e.uncompressedSize), at + 4);
    h.writeBigUInt64LE(BigInt(e.compressedSize), at + 12);
    at += 20;
  }
  if (e.encrypted) writeAesExtra(h, at, e.innerMethod);
  return h;
}

/** Length of the local header the entry will get (it does not change when sizes are patched). */
export function localHeaderLength(e: Pick<EntryRecord, 'zip64' | 'encrypted' | 'nameBytes'>): number {
  return 30 + e.nameBytes.length + (e.zip64 ? 20 : 0) + (e.encrypted ? 11 : 0);
}

/** A central directory record; ZIP64 fields only for the values that overflow (APPNOTE 4.5.3). */
export function centralRecord(e: EntryRecord): Buffer {
  const z64: number[] = [];
  const bigSize = e.zip64 || e.uncompressedSize >= U32_LIMIT || e.compressedSize >= U32_LIMIT;
  if (bigSize) z64.push(e.uncompressedSize, e.compressedSize);
  const bigOffset = e.offset >= U32_LIMIT;
  if (bigOffset) z64.push(e.offset);
  const z64Length = z64.length > 0 ? 4 + 8 * z64.length : 0;
  const extraLength = z64Length + (e.encrypted ? 11 : 0);
  const h = Buffer.allocUnsafe(46 + e.nameBytes.length + extraLength);
  h.writeUInt32LE(SIG_CENTRAL, 0);
  h.writeUInt16LE((3 << 8) | 63, 4); // made by: Unix, APPNOTE 6.3
  h.writeUInt16LE(versionNeeded({ ...e, zip64: e.zip64 || z64.length > 0 }), 6);
  h.writeUInt16LE(flags(e), 8);
  h.writeUInt16LE(e.method, 10);
  h.writeUInt16LE(e.dosTime, 12);
  h.writeUInt16LE(e.dosDate, 14);
  h.writeUInt32LE(e.encrypted ? 0 : e.crc >>> 0, 16);
  h.writeUInt32LE(bigSize ? U32_LIMIT : e.compressedSize, 20);
  h.writeUInt32LE(bigSize ? U32_LIMIT : e.uncompressedSize, 24);
  h.writeUInt16LE(e.nameBytes.length, 28);
  h.writeUInt16LE(extraLength, 30);
  h.writeUInt16LE(0, 32); // comment length
  h.writeUInt16LE(0, 34); // disk number start
  h.writeUInt16LE(0, 36); // internal attributes
  h.writeUInt32LE((0o100644 << 16) >>> 0, 38); // regular file, rw-r--r--
  h.writeUInt32LE(bigOffset ? U32_LIMIT : e.offset, 42);
  let at = 46 + e.nameBytes.copy(h, 46);
  if (z64.length > 0) {
    h.writeUInt16LE(EXTRA_ZIP64, at);
    h.writeUInt16LE(8 * z64.length, at + 2);
    z64.forEach((v, i) => h.writeBigUInt64LE(BigInt(v), at + 4 + 8 * i));
    at += z64Length;
  }
  if (e.encrypted) writeAesExtra(h, at, e.innerMethod);
  return h;
}

/**
 * The end of the archive: ZIP64 end record and locator when anything overflows (or when
 * forced), then the classic end record.
 */
export function endRecords(count: number, cdOffset: number, cdSize: number, forceZip64 = false): Buffer {
  const need64 = forceZip64 || count >= U16_LIMIT || cdOffset >= U32_LIMIT || cdSize >= U32_LIMIT;
  const parts: Buffer[] = [];
  if (need64) {
    const r = Buffer.alloc(56);
    r.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    r.writeBigUInt64LE(44n, 4); // size of the rest of this record
    r.writeUInt16LE((3 << 8) | 63, 12);
    r.writeUInt16LE(45, 14);
    r.writeUInt32LE(0, 16);
    r.writeUInt32LE(0, 20);
    r.writeBigUInt64LE(BigInt(count), 24);
    r.writeBigUInt64LE(BigInt(count), 32);
    r.writeBigUInt64LE(BigInt(cdSize), 40);
    r.writeBigUInt64LE(BigInt(cdOffset), 48);
    const l = Buffer.alloc(20);
    l.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
    l.writeUInt32LE(0, 4);
    l.writeBigUInt64LE(BigInt(cdOffset + cdSize), 8);
    l.writeUInt32LE(1, 16);
    parts.push(r, l);
  }
  const e = Buffer.alloc(22);
  e.writeUInt32LE(SIG_EOCD, 0);
  e.writeUInt16LE(0, 4);
  e.writeUInt16LE(0, 6);
  e.writeUInt16LE(need64 ? U16_LIMIT : count, 8);
  e.writeUInt16LE(need64 ? U16_LIMIT : count, 10);
  e.writeUInt32LE(need64 ? U32_LIMIT : cdSize, 12);
  e.writeUInt32LE(need64 ? U32_LIMIT : cdOffset, 16);
  e.writeUInt16LE(0, 20);
  parts.push(e);
  return Buffer.concat(parts);
}

/**
 * Entry names are paths inside the archive: relative, '/'-separated, no '..' or empty
 * segment, no backslash or control characters. Returns the reason when a name is unsafe.
 */
export function unsafeEntryName(name: string): string | undefined {
  if (name === '') return 'empty name';
  if (name.startsWith('/')) return 'absolute path';
  if (/[\\\x00-\x1f]/.test(name)) return 'backslash or control character';
  const parts = name.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return 'empty, . or .. segment';
  if (Buffer.byteLength(name) > 0xffff) return 'name too long';
  return undefined;
}
