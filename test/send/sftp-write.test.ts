/**
 * WRITE requests built in place (sftp-write.ts) against a real OpenSSH sshd: the channel gets
 * the same bytes ssh2's own write would send, a session whose ssh2 behaves differently keeps
 * ssh2's write, and the blocks (slots with room for the header) hash their data only and stay
 * held until the server has answered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { describe, expect, test } from 'vitest';
import { BlockHasher } from '../../src/lib/transport/sftp-hash.js';
import { hasherFor, uploadFile } from '../../src/lib/transport/sftp-upload.js';
import { WRITE_HEAD, writerFor, writesInPlace } from '../../src/lib/transport/sftp-write.js';
import type { Sshd } from '../peers/sshd.js';
import { withSftpSession, withSshd, type TempDir } from './helpers.js';

let tmp: TempDir;
let sshd: Sshd;
withSshd('fiona-send-sftp-write-', (t, s) => {
  tmp = t;
  sshd = s;
});

interface Internals {
  outgoing: { id: number };
  _protocol: { channelData(id: number, data: Buffer): void };
}

/** The SFTP packets a session sends while `run` runs (its channel's data, cut at packet lengths). */
async function packetsDuring(sftp: SFTPWrapper, run: () => Promise<void>): Promise<Buffer[]> {
  const s = sftp as unknown as Internals;
  const proto = s._protocol;
  const own = proto.channelData;
  const chunks: Buffer[] = [];
  proto.channelData = function (this: unknown, id: number, data: Buffer) {
    if (id === s.outgoing.id) chunks.push(Buffer.from(data)); // a copy: the slot is reused later
    return own.call(this, id, data);
  };
  try {
    await run();
  } finally {
    proto.channelData = own;
  }
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let p = 0; p < all.length; ) {
    const n = 4 + all.readUInt32BE(p);
    out.push(all.subarray(p, p + n));
    p += n;
  }
  return out;
}

/** A WRITE request with its request id and handle blanked (they differ from upload to upload). */
function masked(req: Buffer): string {
  const b = Buffer.from(req);
  b.fill(0, 5, 9); // id
  const handleLen = b.readUInt32BE(9);
  b.fill(0, 13, 13 + handleLen);
  return createHash('sha256').update(b).digest('hex');
}

describe('WRITE requests built in place', () => {
  let sftp: SFTPWrapper;
  withSftpSession(() => sshd, (_client, s) => {
    sftp = s;
  });

  test('the channel carries the same WRITE requests as with ssh2\'s own write; the files arrive whole', async () => {
    expect(writesInPlace(sftp)).toBe(true);
    const local = join(tmp.dir, 'w1.bin');
    const data = randomBytes(3 * 1024 * 1024 + 4321);
    await writeFile(local, data);
    const size = (await stat(local)).size;
    const writes = async (env: string | undefined, remote: string): Promise<string[]> => {
      const old = process.env.FIONA_SFTP_WRITES;
      if (env === undefined) delete process.env.FIONA_SFTP_WRITES;
      else process.env.FIONA_SFTP_WRITES = env;
      const hasher = hasherFor(sftp);
      try {
        const packets = await packetsDuring(sftp, async () => {
          // A small window: requests wait in the channel's queue too.
          await (await uploadFile(sftp, hasher, local, remote, { size, algs: ['sha256'], window: 1024 * 1024 })).digests;
        });
        return packets.filter((p) => p[4] === 6).map(masked);
      } finally {
        await hasher.close();
        if (old === undefined) delete process.env.FIONA_SFTP_WRITES;
        else process.env.FIONA_SFTP_WRITES = old;
      }
    };
    const inPlace = await writes(undefined, join(tmp.dir, 'w1.a'));
    const theirs = await writes('ssh2', join(tmp.dir, 'w1.b'));
    expect(inPlace.length).toBe(Math.ceil(size / hasherFor(sftp).piece));
    expect(inPlace).toEqual(theirs);
    expect((await readFile(join(tmp.dir, 'w1.a'))).equals(data)).toBe(true);
    expect((await readFile(join(tmp.dir, 'w1.b'))).equals(data)).toBe(true);
  });

  test('FIONA_SFTP_WRITES=ssh2, or an ssh2 whose write builds other bytes, keeps ssh2\'s write', () => {
    process.env.FIONA_SFTP_WRITES = 'ssh2';
    try {
      expect(writesInPlace(sftp)).toBe(false);
    } finally {
      delete process.env.FIONA_SFTP_WRITES;
    }
    // A session class whose write differs from what sftp-write.ts reproduces (one more byte).
    const real = Object.getPrototypeOf(sftp) as { write(...a: unknown[]): void };
    const odd = Object.create(real) as { write(...a: unknown[]): void };
    odd.write = function (this: unknown, handle: Buffer, buf: Buffer, off: number, len: number, pos: number, cb: unknown) {
      return real.write.call(this, handle, buf, off, len + (len > 1 ? -1 : 0), pos, cb);
    };
    const session = Object.create(odd) as SFTPWrapper;
    Object.assign(session, sftp);
    expect(writesInPlace(session)).toBe(false);
    // Fields missing: not in place either, and the writer is ssh2's.
    const bare = Object.create(real) as SFTPWrapper;
    expect(writesInPlace(bare)).toBe(false);
    const calls: unknown[][] = [];
    (bare as unknown as { write: (...a: unknown[]) => void }).write = (...a: unknown[]) => void calls.push(a);
    const slot = Buffer.alloc(WRITE_HEAD + 10);
    writerFor(bare)(Buffer.from([1]), slot, WRITE_HEAD, 10, 0, () => undefined);
    expect(calls.length).toBe(1);
  });
});

describe('blocks in slots', () => {
  test('the digests cover the data of each slot only, in order; a retained block is not handed out again', async () => {
    const data = randomBytes(2500 + 77);
    const want = createHash('sha256').update(data).digest('hex');
    for (const broken of [false, true]) {
      const h = new BlockHasher(1000, 2, { head: 24, piece: 250 });
      if (broken) await h.close(); // in-process
      const id = h.begin(['sha256']);
      for (let off = 0; off < data.length; off += 1000) {
        const b = await h.acquire();
        b.buf.fill(0xaa); // the heads hold junk (request headers): not hashed
        const n = Math.min(1000, data.length - off);
        let at = off;
        for (const piece of h.dataOf(b, n)) at += data.copy(piece, 0, at, at + piece.length);
        expect(at).toBe(off + n);
        expect(h.slotOf(b, 1).subarray(24).equals(b.pieces[1]!)).toBe(true);
        h.update(id, b, n, off + n === data.length);
      }
      expect(await h.digest(id)).toEqual({ sha256: want });
      // Held twice (hashing and the server's answers): free only after both let go.
      const b = await h.acquire();
      h.retain(b);
      const other = await h.acquire();
      let got = false;
      const next = h.acquire().then((x) => {
        got = true;
        return x;
      });
      h.release(b);
      await new Promise((r) => setTimeout(r, 20));
      expect(got).toBe(false);
      h.release(b);
      const again = await next;
      expect(again.index).toBe(b.index);
      h.release(other);
      h.release(again);
      expect(() => h.release(again)).toThrow(/more often/);
      await h.close();
    }
  });
});
