/**
 * A deliberately small DICOM Upper Layer client written from PS3.8, independent of fiona's
 * code, for what real senders will not do on request: stop in the middle of a data set, send
 * a data set that is cut short but marked last, send UIDs that are not UIDs, race two
 * associations on one SOP Instance UID. 127.0.0.1 only.
 */
import { connect, type Socket } from 'node:net';

const APP_CONTEXT = '1.2.840.10008.3.1.1.1';

function item(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt8(type, 0);
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}

function pad16(s: string): Buffer {
  return Buffer.from(s.padEnd(16, ' ').slice(0, 16), 'latin1');
}

export interface RawContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export function associateRq(called: string, calling: string, contexts: RawContext[]): Buffer {
  const fixed = Buffer.concat([Buffer.from([0, 1, 0, 0]), pad16(called), pad16(calling), Buffer.alloc(32)]);
  const pcs = contexts.map((c) =>
    item(
      0x20,
      Buffer.concat([
        Buffer.from([c.id, 0, 0, 0]),
        item(0x30, Buffer.from(c.abstractSyntax, 'latin1')),
        ...c.transferSyntaxes.map((t) => item(0x40, Buffer.from(t, 'latin1'))),
      ]),
    ),
  );
  const maxLen = Buffer.alloc(4);
  maxLen.writeUInt32BE(16384);
  const user = item(0x50, Buffer.concat([item(0x51, maxLen), item(0x52, Buffer.from('1.2.826.0.1.3680043.9.7433.99', 'latin1'))]));
  const body = Buffer.concat([fixed, item(0x10, Buffer.from(APP_CONTEXT, 'latin1')), ...pcs, user]);
  const h = Buffer.alloc(6);
  h.writeUInt8(0x01, 0);
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** One P-DATA-TF with one PDV. */
export function pdata(pcId: number, value: Buffer, command: boolean, last: boolean): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt8(0x04, 0);
  h.writeUInt32BE(6 + value.length, 2);
  h.writeUInt32BE(2 + value.length, 6);
  h.writeUInt8(pcId, 10);
  h.writeUInt8((command ? 1 : 0) | (last ? 2 : 0), 11);
  return Buffer.concat([h, value]);
}

function cmdEl(elem: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0, 0);
  h.writeUInt16LE(elem, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}

function uiValue(s: string): Buffer {
  return Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

/** A C-STORE-RQ command set (Implicit VR LE), written out by hand. */
export function cStoreRq(messageId: number, sopClass: string, sop: string): Buffer {
  const body = Buffer.concat([
    cmdEl(0x0002, uiValue(sopClass)),
    cmdEl(0x0100, u16(0x0001)),
    cmdEl(0x0110, u16(messageId)),
    cmdEl(0x0700, u16(0)),
    cmdEl(0x0800, u16(0x0000)),
    cmdEl(0x1000, uiValue(sop)),
  ]);
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(body.length);
  return Buffer.concat([cmdEl(0x0000, gl), body]);
}

export interface AcResult {
  ok: boolean;
  /** A-ASSOCIATE-RJ: result, source, reason. */
  reject?: { result: number; source: number; reason: number };
  /** pcId -> result (0 accepted) and transfer syntax. */
  contexts: Map<number, { result: number; ts: string }>;
}

export interface Response {
  status: number;
  comment?: string;
}

/** Reads PDUs from a socket in order. */
class PduStream {
  private buf = Buffer.alloc(0);
  private waiting?: () => void;
  closed = false;
  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiting?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    sock.on('error', () => undefined);
  }

  async next(timeoutMs = 20_000): Promise<{ type: number; body: Buffer } | undefined> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 6) {
        const len = this.buf.readUInt32BE(2);
        if (this.buf.length >= 6 + len) {
          const type = this.buf[0] as number;
          const body = this.buf.subarray(6, 6 + len);
          this.buf = this.buf.subarray(6 + len);
          return { type, body };
        }
      }
      if (this.closed) return undefined;
      if (Date.now() > until) throw new Error('timed out waiting for a PDU');
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 100);
      });
    }
  }
}

export class RawAssociation {
  private readonly pdus: PduStream;
  private constructor(readonly sock: Socket) {
    this.pdus = new PduStream(sock);
  }

  static async connect(port: number): Promise<RawAssociation> {
    const sock = connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return new RawAssociation(sock);
  }

  async associate(called: string, calling: string, contexts: RawContext[]): Promise<AcResult> {
    this.sock.write(associateRq(called, calling, contexts));
    const pdu = await this.pdus.next();
    if (!pdu) throw new Error('connection closed instead of A-ASSOCIATE-AC/RJ');
    if (pdu.type === 0x03) {
      return { ok: false, reject: { result: pdu.body[1] as number, source: pdu.body[2] as number, reason: pdu.body[3] as number }, contexts: new Map() };
    }
    if (pdu.type !== 0x02) throw new Error(`expected A-ASSOCIATE-AC, got PDU type ${pdu.type}`);
    const contextsOut = new Map<number, { result: number; ts: string }>();
    let off = 68;
    while (off + 4 <= pdu.body.length) {
      const type = pdu.body[off] as number;
      const len = pdu.body.readUInt16BE(off + 2);
      const b = pdu.body.subarray(off + 4, off + 4 + len);
      if (type === 0x21) {
        const tsLen = b.readUInt16BE(6);
        contextsOut.set(b[0] as number, { result: b[2] as number, ts: b.toString('latin1', 8, 8 + tsLen) });
      }
      off += 4 + len;
    }
    return { ok: true, contexts: contextsOut };
  }

  send(bytes: Buffer): void {
    this.sock.write(bytes);
  }

  /** Command, then the data set in PDVs of at most `chunk` bytes; the last one marked last. */
  store(pcId: number, command: Buffer, dataset: Buffer, chunk = 16_000): void {
    this.sock.write(pdata(pcId, command, true, true));
    for (let off = 0; off < dataset.length; off += chunk) {
      const end = Math.min(off + chunk, dataset.length);
      this.sock.write(pdata(pcId, dataset.subarray(off, end), false, end === dataset.length));
    }
  }

  async response(timeoutMs = 20_000): Promise<Response> {
    const pdu = await this.pdus.next(timeoutMs);
    if (!pdu) throw new Error('connection closed instead of a response');
    if (pdu.type !== 0x04) throw new Error(`expected P-DATA-TF, got PDU type ${pdu.type}`);
    const cmd = pdu.body.subarray(6);
    let status = -1;
    let comment: string | undefined;
    for (let off = 0; off + 8 <= cmd.length; ) {
      const elem = cmd.readUInt16LE(off + 2);
      const len = cmd.readUInt32LE(off + 4);
      if (elem === 0x0900) status = cmd.readUInt16LE(off + 8);
      if (elem === 0x0902) comment = cmd.toString('latin1', off + 8, off + 8 + len).trim();
      off += 8 + len;
    }
    return { status, comment };
  }

  /** What came next: a PDU type, or undefined when the connection closed. */
  async nextPduType(timeoutMs = 20_000): Promise<number | undefined> {
    return (await this.pdus.next(timeoutMs))?.type;
  }

  async release(): Promise<void> {
    this.sock.write(Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    await this.pdus.next(5_000).catch(() => undefined);
    this.sock.end();
  }

  abort(): void {
    this.sock.write(Buffer.from([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }
}
