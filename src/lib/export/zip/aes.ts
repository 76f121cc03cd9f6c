import { createCipheriv, createHmac, pbkdf2, randomBytes, timingSafeEqual, type Cipher, type Hmac } from 'node:crypto';
import { promisify } from 'node:util';
import { AES_MAC_LENGTH, AES_PWV_LENGTH, AES_SALT_LENGTH } from './format.js';

/**
 * WinZip AES-256 (AE-2), as 7-Zip, WinZip and zip.js read it:
 * PBKDF2-HMAC-SHA1 (1000 rounds) over a fresh 16-byte salt per entry gives the AES key,
 * the HMAC key and a 2-byte password verifier; data are encrypted in CTR mode with a
 * little-endian counter starting at 1 and authenticated with HMAC-SHA1 (first 10 bytes)
 * over the ciphertext.
 *
 * OpenSSL's CTR mode counts big-endian, so the keystream is made here from AES-ECB over a
 * block of counters (native speed) and XORed in 32-bit words. A fresh salt per entry is
 * what keeps two entries from sharing a keystream; never reuse one.
 */

const pbkdf2Async = promisify(pbkdf2);
const KEY_LENGTH = 32;
const ROUNDS = 1000;
/** Keystream is made this many bytes at a time (a multiple of 16). */
const KS_CHUNK = 256 * 1024;

export interface AesKeys {
  salt: Buffer;
  aesKey: Buffer;
  hmacKey: Buffer;
  verifier: Buffer;
}

/**
 * Keys already derived, by salt (hex). PBKDF2 costs about a millisecond per entry, paid once
 * when writing and once more when the archive is read back; a cache filled by the writer
 * and used by the verifier halves that. It is pure memoisation of PBKDF2(password, salt):
 * the verifier still takes the salt from the file, so a damaged salt still fails.
 */
export type KeyCache = Map<string, AesKeys>;

export async function deriveKeys(password: Buffer, salt: Buffer = randomBytes(AES_SALT_LENGTH), cache?: KeyCache): Promise<AesKeys> {
  const hit = cache?.get(salt.toString('hex'));
  if (hit) return hit;
  const dk = await pbkdf2Async(password, salt, ROUNDS, 2 * KEY_LENGTH + AES_PWV_LENGTH, 'sha1');
  const keys = {
    salt,
    aesKey: dk.subarray(0, KEY_LENGTH),
    hmacKey: dk.subarray(KEY_LENGTH, 2 * KEY_LENGTH),
    verifier: dk.subarray(2 * KEY_LENGTH),
  };
  cache?.set(salt.toString('hex'), keys);
  return keys;
}

/**
 * Keys for the next entries, derived ahead on the libuv pool: PBKDF2 is the largest cost of
 * an AES archive (about 0.9 ms of CPU per entry here), and started only when an entry is
 * read it runs at most as many at a time as entries are read ahead. Each key has its own
 * fresh salt (never reused: a salt and key used twice would repeat the CTR keystream); the
 * few derived past the last entry are dropped.
 */
export class KeySupply {
  private readonly queue: Array<Promise<AesKeys>> = [];
  constructor(
    private readonly password: Buffer,
    private readonly cache?: KeyCache,
    private readonly ahead = 8,
  ) {}

  /** Keys for the next entry (each call: another salt). */
  next(): Promise<AesKeys> {
    while (this.queue.length <= this.ahead) {
      const p = deriveKeys(this.password, undefined, this.cache);
      p.catch(() => undefined); // taken in order by next(); a failure is thrown there
      this.queue.push(p);
    }
    return this.queue.shift()!;
  }
}

/** The WinZip CTR keystream: AES-ECB of little-endian 128-bit counters 1, 2, 3, ... */
class Keystream {
  private readonly ecb: Cipher;
  private counter = 1;
  private readonly counters = Buffer.alloc(KS_CHUNK);
  private readonly counterWords = new Uint32Array(this.counters.buffer, this.counters.byteOffset, KS_CHUNK / 4);
  private pending: Buffer = Buffer.alloc(0);

  constructor(key: Buffer) {
    this.ecb = createCipheriv('aes-256-ecb', key, null);
    this.ecb.setAutoPadding(false);
  }

  /** The next n bytes of keystream. */
  take(n: number): Buffer {
    if (this.pending.length >= n) {
      const out = this.pending.subarray(0, n);
      this.pending = this.pending.subarray(n);
      return out;
    }
    const parts: Buffer[] = [];
    let have = 0;
    if (this.pending.length > 0) {
      parts.push(this.pending);
      have = this.pending.length;
      this.pending = Buffer.alloc(0);
    }
    while (have < n) {
      const blocks = Math.min(KS_CHUNK / 16, Math.ceil((n - have) / 16));
      const w = this.counterWords;
      for (let i = 0, j = 0; i < blocks; i++, j += 4) {
        const c = this.counter++;
        w[j] = c >>> 0;
        w[j + 1] = Math.floor(c / 0x100000000) >>> 0;
        w[j + 2] = 0;
        w[j + 3] = 0;
      }
      const ks = this.ecb.update(this.counters.subarray(0, blocks * 16));
      const use = Math.min(ks.length, n - have);
      parts.push(ks.subarray(0, use));
      have += use;
      if (use < ks.length) this.pending = ks.subarray(use);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }
}

/**
 * out = a XOR b (same length); in 64-bit words when all three are 8-byte aligned (V8 compiles
 * a BigUint64Array XOR loop to plain 64-bit operations: measured twice as fast as 32-bit words),
 * else 32-bit words when 4-byte aligned.
 */
function xorInto(out: Buffer, a: Uint8Array, b: Uint8Array): void {
  const n = out.length;
  // A copy is cheaper than a byte loop for anything but tiny inputs.
  if (n >= 64 && a.byteOffset % 8 !== 0) a = alignedCopy(a);
  if (n >= 64 && b.byteOffset % 8 !== 0) b = alignedCopy(b);
  let i = 0;
  if (out.byteOffset % 8 === 0 && a.byteOffset % 8 === 0 && b.byteOffset % 8 === 0) {
    const words = n >>> 3;
    const o64 = new BigUint64Array(out.buffer, out.byteOffset, words);
    const a64 = new BigUint64Array(a.buffer, a.byteOffset, words);
    const b64 = new BigUint64Array(b.buffer, b.byteOffset, words);
    for (let k = 0; k < words; k++) o64[k] = a64[k]! ^ b64[k]!;
    i = words * 8;
  } else if (out.byteOffset % 4 === 0 && a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const words = n >>> 2;
    const o32 = new Uint32Array(out.buffer, out.byteOffset, words);
    const a32 = new Uint32Array(a.buffer, a.byteOffset, words);
    const b32 = new Uint32Array(b.buffer, b.byteOffset, words);
    for (let k = 0; k < words; k++) o32[k] = a32[k]! ^ b32[k]!;
    i = words * 4;
  }
  for (; i < n; i++) out[i] = a[i]! ^ b[i]!;
}

function alignedCopy(src: Uint8Array): Uint8Array {
  const copy = new Uint8Array(src.length);
  copy.set(src);
  return copy;
}

function transform(ks: Keystream, input: Uint8Array, into?: Buffer): Buffer {
  const out = into ?? Buffer.allocUnsafeSlow(input.length);
  if (out.length !== input.length) throw new Error('AES: output buffer of the wrong size');
  if (input.length === 0) return out;
  xorInto(out, input, ks.take(input.length));
  return out;
}

/** Encrypts one entry's (compressed) data in order; the header goes first, the MAC last. */
export class AesEncryptor {
  private readonly ks: Keystream;
  private readonly hmac: Hmac;
  constructor(private readonly keys: AesKeys) {
    this.ks = new Keystream(keys.aesKey);
    this.hmac = createHmac('sha1', keys.hmacKey);
  }

  /** Salt and password verifier, written before the ciphertext. */
  header(): Buffer {
    return Buffer.concat([this.keys.salt, this.keys.verifier]);
  }

  /** Encrypt the next bytes (into `into` when given: same length as `plain`). */
  update(plain: Uint8Array, into?: Buffer): Buffer {
    const c = transform(this.ks, plain, into);
    this.hmac.update(c);
    return c;
  }

  /** The 10-byte authentication code, written after the ciphertext. */
  final(): Buffer {
    return this.hmac.digest().subarray(0, AES_MAC_LENGTH);
  }
}

/** Decrypts one entry for verification; final() says whether the MAC matched. */
export class AesDecryptor {
  private readonly ks: Keystream;
  private readonly hmac: Hmac;
  constructor(keys: AesKeys) {
    this.ks = new Keystream(keys.aesKey);
    this.hmac = createHmac('sha1', keys.hmacKey);
  }

  /** Decrypt the next bytes (into `into` when given: same length as `cipher`). */
  update(cipher: Uint8Array, into?: Buffer): Buffer {
    this.hmac.update(cipher);
    return transform(this.ks, cipher, into);
  }

  authenticates(mac: Uint8Array): boolean {
    const expect = this.hmac.digest().subarray(0, AES_MAC_LENGTH);
    return mac.length === AES_MAC_LENGTH && timingSafeEqual(expect, mac);
  }
}
