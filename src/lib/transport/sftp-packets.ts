/**
 * Cheaper SSH packets in ssh2's sender, for the AES-GCM cipher ssh2 negotiates with OpenSSH
 * (aes128-gcm@openssh.com, through its native binding).
 *
 * Measured with `node --cpu-prof` on 1 GB in one file (--verify size, so no hashing): the
 * client thread is the bottleneck, and per 32 KiB SSH packet ssh2 pays
 *   - `randomFillSync` for the packet's 4-19 padding bytes: 0.28 s per GB (one call into
 *     OpenSSL's RNG per packet);
 *   - one `Buffer.allocUnsafe` of ~32 KiB, i.e. one ArrayBuffer with its own malloc'd
 *     backing store, per packet: 32,768 per GB, and with them ~0.9 s of garbage collection.
 *
 * allocPacket() is replaced by one that does the same (same layout, same length and padding
 * rules, padding from the CSPRNG) but takes the padding from a pool filled 64 KiB at a time
 * (every random byte used once, as before), and carves packets from 1 MiB slabs. A slab is
 * used again only once every packet carved from it has been written to the kernel: the
 * connections tuned here write each packet with a callback (the same `sock.write` ssh2
 * makes, under the same condition) that counts it off its slab. A packet that leaves any
 * other way (a connection not tuned here) is never counted off, so its slab is never used
 * again and the garbage collector frees it like a packet of its own. Reusing slabs keeps
 * 1 GB of sent data from being 1 GB of new ArrayBuffers, whose external memory is what
 * drives V8's mark-compact collections here. The encryption stays ssh2's (in place, through
 * the binding, which takes the buffer's offset into account), and so does every protocol
 * rule.
 *
 * Only the class whose layout this reproduces is patched (checked by name and by the shape
 * of a packet it allocates); any other cipher keeps ssh2's own code. FIONA_SSH_PACKETS=ssh2
 * turns this off.
 */
import { randomFillSync } from 'node:crypto';

/**
 * Packet memory whose `set` copies out of shared memory at memcpy speed. ssh2 copies each
 * CHANNEL_DATA payload into its packet with `packet.set(data)`, and the payloads of uploads
 * are views into the hashing thread's SharedArrayBuffer (sftp-hash.ts): for a shared source
 * V8 copies with relaxed atomic loads and stores, word by word. Measured on this machine:
 * 350-440 ms per GB against 25-40 ms for the same copy through Buffer.prototype.fill, one
 * native memcpy for any Uint8Array value (`perf` on 1 GB in one file: V8's relaxed_memmove
 * was 22% of the client thread). The bytes copied are the same, and so are the errors for an
 * integer offset out of range (RangeError, nothing copied); any other source or offset (fill
 * would refuse an offset that set converts, such as 1.5 or '3') goes to Uint8Array's own set.
 */
const fill = Buffer.prototype.fill as unknown as (this: Uint8Array, value: Uint8Array, start: number, end: number) => void;

class PacketBytes extends Uint8Array {
  override set(src: ArrayLike<number>, offset = 0): void {
    if (src instanceof Uint8Array && src.length > 0 && Number.isInteger(offset) && src.buffer instanceof SharedArrayBuffer) {
      fill.call(this, src, offset, offset + src.length);
    } else super.set(src, offset);
  }
}
// Packets are Buffers to ssh2 (Buffer.isBuffer, readUInt32BE, ...), with the fast set first.
Object.setPrototypeOf(PacketBytes.prototype, Buffer.prototype);

const SLAB = 1024 * 1024;
const POOL = 64 * 1024;
const PATCHED = Symbol.for('fiona.sftp-packets');

interface Slab {
  buf: Buffer;
  /** Packets carved from it that have not been counted off as written. */
  outstanding: number;
}

/** Slabs by their memory, to find a written packet's slab. */
const slabOf = new WeakMap<ArrayBufferLike, Slab>();
/** Full slabs (not `slab`) whose every packet has been written: ready to be used again. */
const spare: Slab[] = [];
/** Slabs kept for reuse at most (the rest go to the garbage collector). */
const MAX_SPARE = 32;
let slab: Slab | undefined;
let slabAt = 0;
const pool = Buffer.allocUnsafeSlow(POOL);
let poolAt = POOL;

/** Keep `s` for reuse once it is full (no longer the slab carved from) and every packet of it is written. */
function spareIfIdle(s: Slab): void {
  if (s !== slab && s.outstanding === 0 && spare.length < MAX_SPARE) spare.push(s);
}

/** A packet of `s` has been written to the kernel. */
function written(s: Slab): void {
  s.outstanding--;
  spareIfIdle(s);
}

/** n bytes from a slab (8-byte aligned); a packet bigger than a quarter slab gets its own buffer. */
function take(n: number): Buffer {
  if (n > SLAB / 4) return Buffer.allocUnsafeSlow(n);
  if (!slab || slabAt + n > SLAB) {
    const full = slab;
    slab = undefined;
    if (full) spareIfIdle(full);
    slab = spare.pop();
    if (!slab) {
      slab = { buf: new PacketBytes(SLAB) as unknown as Buffer, outstanding: 0 };
      slabOf.set(slab.buf.buffer, slab);
    }
    slabAt = 0;
  }
  // Made directly, not by subarray (Buffer's own subarray makes a plain Buffer).
  const b = new PacketBytes(slab.buf.buffer as ArrayBuffer, slab.buf.byteOffset + slabAt, n) as unknown as Buffer;
  slab.outstanding++;
  slabAt = (slabAt + n + 7) & ~7;
  return b;
}

/** Fill buf[off, off+n) with bytes from the CSPRNG, from the pool. */
function randomPad(buf: Buffer, off: number, n: number): void {
  if (poolAt + n > POOL) {
    randomFillSync(pool);
    poolAt = 0;
  }
  for (let i = 0; i < n; i++) buf[off + i] = pool[poolAt + i]!;
  poolAt += n;
}

/** ssh2's AESGCMCipherBinding.allocPacket, with the padding from the pool and the packet from a slab. */
function allocPacket(payloadLen: number): Buffer {
  let pktLen = 4 + 1 + payloadLen;
  let padLen = 16 - ((pktLen - 4) & (16 - 1));
  if (padLen < 4) padLen += 16;
  pktLen += padLen;
  const packet = take(pktLen + 16 /* authTag */);
  packet.writeUInt32BE(pktLen - 4, 0);
  packet[4] = padLen;
  randomPad(packet, 5 + payloadLen, padLen);
  return packet;
}

interface Writable {
  writable: boolean;
  _readableState?: { ended: boolean };
  write(data: Buffer, cb?: (err?: Error | null) => void): boolean;
}

/** ssh2's own condition for writing a packet (utils.js isWritable). */
function isWritable(sock: Writable): boolean {
  return !!sock && sock.writable && !!sock._readableState && sock._readableState.ended === false;
}

/**
 * The write ssh2 makes for every outgoing packet (`if (isWritable(sock)) sock.write(data)`),
 * with a callback that counts a slab packet off once the kernel has it.
 */
function trackedWrite(sock: Writable): (data: Buffer) => void {
  return (data: Buffer): void => {
    if (!isWritable(sock)) return;
    const s = slabOf.get(data.buffer);
    if (s) sock.write(data, () => written(s));
    else sock.write(data);
  };
}

interface CipherProto {
  constructor: { name: string };
  allocPacket(payloadLen: number): Buffer;
  [PATCHED]?: boolean;
}

interface Ssh2Client {
  _sock?: Writable;
  _protocol?: { _cipher?: { _onWrite?: unknown }; _onWrite?: unknown };
}

/**
 * Patch the outbound cipher class of an ssh2 connection (the ssh2 `Client`) once the
 * handshake is done, and write this connection's packets with the slab-counting write.
 * Returns whether the connection now uses the cheaper packets.
 */
export function tunePackets(ssh: unknown): boolean {
  if (process.env.FIONA_SSH_PACKETS === 'ssh2') return false;
  const client = ssh as Ssh2Client | undefined;
  const protocol = client?._protocol;
  const cipher = protocol?._cipher;
  const sock = client?._sock;
  if (!protocol || !cipher || !sock || typeof cipher._onWrite !== 'function' || typeof protocol._onWrite !== 'function') return false;
  const proto = Object.getPrototypeOf(cipher) as CipherProto;
  if (!proto[PATCHED]) {
    if (proto.constructor?.name !== 'AESGCMCipherBinding' || typeof proto.allocPacket !== 'function') return false;
    // The layout check: ssh2's own packet for a payload of 1 byte must look like ours would.
    const probe = proto.allocPacket.call(cipher, 1);
    if (probe.length !== 36 || probe.readUInt32BE(0) !== 16 || probe[4] !== 14) return false;
    proto.allocPacket = allocPacket;
    proto[PATCHED] = true;
  }
  // The current cipher writes through its own copy of the write function; a cipher made at a
  // rekey takes the protocol's.
  const write = trackedWrite(sock);
  cipher._onWrite = write;
  protocol._onWrite = write;
  return true;
}
