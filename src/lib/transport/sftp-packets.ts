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
 * never reused: it is freed by the garbage collector once no packet in it is referenced any
 * more, exactly like a packet of its own, so nothing can be overwritten while the socket
 * still holds it. The encryption stays ssh2's (in place, through the binding, which takes
 * the buffer's offset into account), and so does every protocol rule.
 *
 * Only the class whose layout this reproduces is patched (checked by name and by the shape
 * of a packet it allocates); any other cipher keeps ssh2's own code. FIONA_SSH_PACKETS=ssh2
 * turns this off.
 */
import { randomFillSync } from 'node:crypto';

const SLAB = 1024 * 1024;
const POOL = 64 * 1024;
const PATCHED = Symbol.for('fiona.sftp-packets');

let slab = Buffer.allocUnsafeSlow(0);
let slabAt = 0;
const pool = Buffer.allocUnsafeSlow(POOL);
let poolAt = POOL;

/** n bytes from a slab (8-byte aligned); a packet bigger than a quarter slab gets its own buffer. */
function take(n: number): Buffer {
  if (n > SLAB / 4) return Buffer.allocUnsafeSlow(n);
  if (slabAt + n > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    slabAt = 0;
  }
  const b = slab.subarray(slabAt, slabAt + n);
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

interface CipherProto {
  constructor: { name: string };
  allocPacket(payloadLen: number): Buffer;
  [PATCHED]?: boolean;
}

/**
 * Patch the outbound cipher class of an ssh2 connection (the ssh2 `Client`) once the
 * handshake is done. Returns whether the connection now uses the cheaper packets.
 */
export function tunePackets(ssh: unknown): boolean {
  if (process.env.FIONA_SSH_PACKETS === 'ssh2') return false;
  const cipher = (ssh as { _protocol?: { _cipher?: object } } | undefined)?._protocol?._cipher;
  if (!cipher) return false;
  const proto = Object.getPrototypeOf(cipher) as CipherProto;
  if (proto[PATCHED]) return true;
  if (proto.constructor?.name !== 'AESGCMCipherBinding' || typeof proto.allocPacket !== 'function') return false;
  // The layout check: ssh2's own packet for a payload of 1 byte must look like ours would.
  const probe = proto.allocPacket.call(cipher, 1);
  if (probe.length !== 36 || probe.readUInt32BE(0) !== 16 || probe[4] !== 14) return false;
  proto.allocPacket = allocPacket;
  proto[PATCHED] = true;
  return true;
}
