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

/*
 * Little-endian stores as plain byte writes. Buffer's writeUInt16LE/32LE/BigUInt64LE carry
 * range checks that the optimiser inlines into every header builder (--trace-opt showed
 * tens of ms of background compile time for the two builders in a 1,000-entry archive, more
 * than building the headers takes). Callers pass values in range.
 */
function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** A non-negative integer below 2^53 as 8 bytes. */
function put64(b: Uint8Array, at: number, v: number): void {
  put32(b, at, v >>> 0);
  put32(b, at + 4, Math.floor(v / 0x100000000) >>> 0);
}

function versionNeeded(encrypted: boolean, zip64: boolean, innerMethod: number): number {
  if (encrypted) return 51;
  if (zip64) return 45;
  return innerMethod === METHOD_DEFLATE ? 20 : 10;
}

function flags(e: Pick<EntryRecord, 'encrypted' | 'nameBytes' | 'name'>): number {
  let f = 0;
  if (e.encrypted) f |= FLAG_ENCRYPTED;
  if (e.nameBytes.length !== e.name.length) f |= FLAG_UTF8;
  return f;
}

/** The WinZip AES extra field (11 bytes), written at `at`. */
function writeAesExtra(b: Uint8Array, at: number, innerMethod: number): void {
  put16(b, at, EXTRA_AES);
  put16(b, at + 2, 7);
  put16(b, at + 4, 2); // AE-2: the CRC field is 0, the HMAC authenticates the data
  b[at + 6] = 0x41; // 'A'
  b[at + 7] = 0x45; // 'E'
  b[at + 8] = 3; // AES-256
  put16(b, at + 9, innerMethod);
}

/**
 * The local header. An entry that may reach 4 GiB is marked ZIP64 up front (both sizes
 * in the extra field), because its header is written before its compressed size is known.
 */
export function localHeader(e: EntryRecord): Buffer {
  // One buffer of the exact length, filled in place (a header per entry: no concatenation).
  const h = Buffer.allocUnsafe(localHeaderLength(e));
  put32(h, 0, SIG_LOCAL);
  put16(h, 4, versionNeeded(e.encrypted, e.zip64, e.innerMethod));
  put16(h, 6, flags(e));
  put16(h, 8, e.method);
  put16(h, 10, e.dosTime);
  put16(h, 12, e.dosDate);
  put32(h, 14, e.encrypted ? 0 : e.crc);
  put32(h, 18, e.zip64 ? U32_LIMIT : e.compressedSize);
  put32(h, 22, e.zip64 ? U32_LIMIT : e.uncompressedSize);
  put16(h, 26, e.nameBytes.length);
  put16(h, 28, (e.zip64 ? 20 : 0) + (e.encrypted ? 11 : 0));
  h.set(e.nameBytes, 30);
  let at = 30 + e.nameBytes.length;
  if (e.zip64) {
    put16(h, at, EXTRA_ZIP64);
    put16(h, at + 2, 16);
    put64(h, at + 4, e.uncompressedSize);
    put64(h, at + 12, e.compressedSize);
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
  const bigSize = e.zip64 || e.uncompressedSize >= U32_LIMIT || e.compressedSize >= U32_LIMIT;
  const bigOffset = e.offset >= U32_LIMIT;
  const z64Count = (bigSize ? 2 : 0) + (bigOffset ? 1 : 0);
  const z64Length = z64Count > 0 ? 4 + 8 * z64Count : 0;
  const extraLength = z64Length + (e.encrypted ? 11 : 0);
  const h = Buffer.allocUnsafe(46 + e.nameBytes.length + extraLength);
  put32(h, 0, SIG_CENTRAL);
  put16(h, 4, (3 << 8) | 63); // made by: Unix, APPNOTE 6.3
  put16(h, 6, versionNeeded(e.encrypted, e.zip64 || z64Count > 0, e.innerMethod));
  put16(h, 8, flags(e));
  put16(h, 10, e.method);
  put16(h, 12, e.dosTime);
  put16(h, 14, e.dosDate);
  put32(h, 16, e.encrypted ? 0 : e.crc);
  put32(h, 20, bigSize ? U32_LIMIT : e.compressedSize);
  put32(h, 24, bigSize ? U32_LIMIT : e.uncompressedSize);
  put16(h, 28, e.nameBytes.length);
  put16(h, 30, extraLength);
  put16(h, 32, 0); // comment length
  put16(h, 34, 0); // disk number start
  put16(h, 36, 0); // internal attributes
  put32(h, 38, (0o100644 << 16) >>> 0); // regular file, rw-r--r--
  put32(h, 42, bigOffset ? U32_LIMIT : e.offset);
  h.set(e.nameBytes, 46);
  let at = 46 + e.nameBytes.length;
  if (z64Count > 0) {
    // APPNOTE 4.5.3: only the values that overflow, in this order.
    put16(h, at, EXTRA_ZIP64);
    put16(h, at + 2, 8 * z64Count);
    at += 4;
    if (bigSize) {
      put64(h, at, e.uncompressedSize);
      put64(h, at + 8, e.compressedSize);
      at += 16;
    }
    if (bigOffset) {
      put64(h, at, e.offset);
      at += 8;
    }
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
