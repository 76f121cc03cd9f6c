/**
 * fiona's own Upper Layer association (src/lib/net/ul-association.ts) against a scripted
 * acceptor on 127.0.0.1: the cases a real PACS will not produce on demand. The acceptor
 * speaks the wire format with the receiver's PduReader and command coding, so what it
 * records is exactly what went over the socket.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { CommandField, encodeCommand, encodePDataTf, encodeResponse, parseCommand } from '../../src/lib/net/scp/command.js';
import { parseResponse } from '../../src/lib/net/dimse-response.js';
import { PduReader, PduType } from '../../src/lib/net/scp/pdu-reader.js';
import { storeInstances, type StoreInstance } from '../../src/lib/net/scu/store.js';
import { encodeAssociateRq, parseAssociateAc, responseHead } from '../../src/lib/net/ul-association.js';
import { DicomTransport } from '../../src/lib/transport/dicom.js';
import { parseDestination } from '../../src/lib/transport/destination.js';
import type { AttemptResult } from '../../src/lib/transport/types.js';
import { makeTempDir } from '../helpers/tmp.js';
import { datasetOf, sopOf, synthStudy } from './helpers.js';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

interface Received {
  association: number;
  messageId: number;
  sop: string;
  data: Buffer;
  /** The command set as it came over the wire. */
  command: Buffer;
}

/**
 * How the acceptor puts a response on the wire: one write; the 12 bytes of PDU and PDV header
 * first and the command set a moment later (as DCMTK's storescp does); cut inside the command
 * set (the reader must keep the first part across socket reads); or the command set in two
 * PDV fragments, each in its own PDU and write.
 */
type ResponseShape = 'whole' | 'split-header' | 'split-value' | 'two-fragments';

function sendResponse(socket: Socket, pcId: number, rsp: Buffer, shape: ResponseShape): void {
  if (shape === 'whole') {
    socket.write(encodePDataTf(pcId, rsp, true));
  } else if (shape === 'split-header' || shape === 'split-value') {
    const pdu = encodePDataTf(pcId, rsp, true);
    const cut = shape === 'split-header' ? 12 : 12 + 30;
    socket.write(pdu.subarray(0, cut));
    setTimeout(() => socket.write(pdu.subarray(cut)), 5);
  } else {
    const cut = 10; // inside the first element: the reader must join the fragments
    socket.write(encodePDataTf(pcId, rsp.subarray(0, cut), true, false));
    setTimeout(() => socket.write(encodePDataTf(pcId, rsp.subarray(cut), true, true)), 5);
  }
}

/** The A-ASSOCIATE-AC for an RQ: every context accepted in its first transfer syntax. */
function acceptFor(rq: Buffer, maxPdu: number): Buffer {
  const items: Buffer[] = [Buffer.from([0x10, 0, 0, 21]), Buffer.from('1.2.840.10008.3.1.1.1')];
  for (let at = 74; at + 4 <= rq.length; ) {
    const type = rq[at]!;
    const len = rq.readUInt16BE(at + 2);
    if (type === 0x20) {
      const id = rq[at + 4]!;
      let ts = '';
      for (let s = at + 8; s < at + 4 + len; s += 4 + rq.readUInt16BE(s + 2)) {
        if (rq[s] === 0x40 && ts === '') ts = rq.toString('latin1', s + 4, s + 4 + rq.readUInt16BE(s + 2));
      }
      const sub = Buffer.concat([Buffer.from([0x40, 0, 0, ts.length]), Buffer.from(ts, 'latin1')]);
      const head = Buffer.from([0x21, 0, 0, 0, id, 0, 0, 0]);
      head.writeUInt16BE(4 + sub.length, 2);
      items.push(head, sub);
    }
    at += 4 + len;
  }
  const user = Buffer.from([0x50, 0, 0, 8, 0x51, 0, 0, 4, 0, 0, 0, 0]);
  user.writeUInt32BE(maxPdu, 8);
  items.push(user);
  const body = Buffer.concat([rq.subarray(6, 74), ...items]);
  const head = Buffer.from([PduType.AssociateAc, 0, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/**
 * A scripted acceptor: records every C-STORE (association number, message ID, data set
 * bytes); `onStore` decides per request: answer a status, or abort the association.
 */
async function startAcceptor(
  onStore: (r: Received) => number | 'abort',
  maxPdu = 16384,
  shape: ResponseShape = 'whole',
): Promise<{ server: Server; port: number; received: Received[] }> {
  const received: Received[] = [];
  let associations = 0;
  const server = createServer((socket: Socket) => {
    const association = ++associations;
    let cmd: Buffer[] = [];
    let data: Buffer[] = [];
    let isCommand = false;
    let last = false;
    let pcId = 1;
    let command: ReturnType<typeof parseCommand> | undefined;
    let commandBytes = Buffer.alloc(0);
    const reader = new PduReader(
      {
        onControlPdu: (type, pdu) => {
          if (type === PduType.AssociateRq) socket.write(acceptFor(pdu, maxPdu));
          if (type === PduType.ReleaseRq) socket.end(Buffer.from([PduType.ReleaseRp, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
          return true;
        },
        onPdvStart: (id, c, l) => {
          pcId = id;
          isCommand = c;
          last = l;
        },
        onPdvData: (d) => {
          (isCommand ? cmd : data).push(Buffer.from(d));
          return true;
        },
        onPdvEnd: () => {
          if (isCommand && last) {
            commandBytes = Buffer.concat(cmd);
            command = parseCommand(commandBytes);
            cmd = [];
          } else if (!isCommand && last && command) {
            const r: Received = { association, messageId: command.messageId, sop: command.affectedSopInstanceUid ?? '', data: Buffer.concat(data), command: commandBytes };
            data = [];
            received.push(r);
            const what = onStore(r);
            if (what === 'abort') {
              socket.end(Buffer.from([PduType.Abort, 0, 0, 0, 0, 4, 0, 0, 2, 0]));
            } else {
              sendResponse(socket, pcId, encodeResponse(command, what), shape);
            }
            command = undefined;
          }
          return true;
        },
      },
      () => socket.pause(),
      () => socket.resume(),
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, received };
}

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function instances(sizes: number[]): Promise<{ list: StoreInstance[]; bytes: Buffer[] }> {
  const { dir, cleanup } = await makeTempDir('fiona-ul-');
  cleanups.push(cleanup);
  const list: StoreInstance[] = [];
  const bytes: Buffer[] = [];
  for (const [i, size] of sizes.entries()) {
    // 100 bytes of "File Meta" before the data set: only the range after it may go out.
    const file = Buffer.concat([Buffer.alloc(100, 0xee), randomBytes(size)]);
    const path = join(dir, `${i}.dcm`);
    await writeFile(path, file);
    list.push({ path, sopClassUid: MR, sopInstanceUid: `1.2.3.${i + 1}`, transferSyntaxUid: EXPLICIT_LE, datasetOffset: 100, datasetLength: size });
    bytes.push(file.subarray(100));
  }
  return { list, bytes };
}

describe('UL association (scripted acceptor)', () => {
  test('A-ASSOCIATE-RQ holds exactly the proposed contexts; the AC is read back', () => {
    const rq = encodeAssociateRq({ host: '127.0.0.1', port: 1, calledAet: 'PACS', callingAet: 'FIONA' }, [
      { abstractSyntax: MR, transferSyntaxes: [EXPLICIT_LE] },
      { abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2', EXPLICIT_LE] },
    ]);
    expect(rq[0]).toBe(0x01);
    expect(rq.readUInt32BE(2)).toBe(rq.length - 6);
    expect(rq.toString('latin1', 10, 26)).toBe('PACS            ');
    expect(rq.toString('latin1', 26, 42)).toBe('FIONA           ');
    const ac = parseAssociateAc(acceptFor(rq, 32768));
    expect(ac.maxPduLength).toBe(32768);
    expect([...ac.contexts.entries()]).toEqual([
      [1, { result: 0, transferSyntax: EXPLICIT_LE }],
      [3, { result: 0, transferSyntax: '1.2.840.10008.1.2' }],
    ]);
  });

  test('data sets arrive byte for byte in PDVs within the peer maximum, small and streamed (> 1 MiB)', async () => {
    const peer = await startAcceptor(() => 0x0000, 4096);
    cleanups.push(async () => void peer.server.close());
    const { list, bytes } = await instances([130_000, 2, 1_500_000, 4094, 4096]);
    const outcomes = await storeInstances({ host: '127.0.0.1', port: peer.port, calledAet: 'PACS', callingAet: 'FIONA' }, list);
    expect(outcomes.map((o) => o.state)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(peer.received.map((r) => r.sop)).toEqual(list.map((i) => i.sopInstanceUid));
    peer.received.forEach((r, i) => expect(r.data.equals(bytes[i]!)).toBe(true));
    // Message IDs increase within the association.
    expect(peer.received.map((r) => r.messageId)).toEqual([1, 2, 3, 4, 5]);
  });

  test('a request queued behind one whose association is aborted goes out on the next association, once', async () => {
    const peer = await startAcceptor((r) => (r.association === 1 ? 'abort' : 0x0000));
    cleanups.push(async () => void peer.server.close());
    const { list, bytes } = await instances([20_000, 30_000, 40_000]);
    const outcomes = await storeInstances({ host: '127.0.0.1', port: peer.port, calledAet: 'PACS', callingAet: 'FIONA' }, list);
    const bySop = new Map(outcomes.map((o) => [o.instance.sopInstanceUid, o]));
    expect(bySop.get('1.2.3.1')).toMatchObject({ state: 'failed', attempted: true });
    expect(String(bySop.get('1.2.3.1')!.reason)).toMatch(/no response: .*aborted by the peer/);
    expect(bySop.get('1.2.3.2')!.state).toBe('ok');
    expect(bySop.get('1.2.3.3')!.state).toBe('ok');
    // On the wire: the first in association 1 only; the other two once each, in association 2.
    expect(peer.received.map((r) => [r.association, r.sop])).toEqual([
      [1, '1.2.3.1'],
      [2, '1.2.3.2'],
      [2, '1.2.3.3'],
    ]);
    expect(peer.received[1]!.data.equals(bytes[1]!)).toBe(true);
    expect(peer.received[2]!.data.equals(bytes[2]!)).toBe(true);
  });

  test('a failure status for one instance leaves the association up for the next', async () => {
    const peer = await startAcceptor((r) => (r.sop === '1.2.3.2' ? 0xa700 : 0x0000));
    cleanups.push(async () => void peer.server.close());
    const { list } = await instances([1000, 1000, 1000]);
    const outcomes = await storeInstances({ host: '127.0.0.1', port: peer.port, calledAet: 'PACS', callingAet: 'FIONA' }, list);
    expect(outcomes.map((o) => [o.instance.sopInstanceUid, o.state, o.status])).toEqual([
      ['1.2.3.1', 'ok', 0],
      ['1.2.3.2', 'failed', 0xa700],
      ['1.2.3.3', 'ok', 0],
    ]);
    expect(new Set(peer.received.map((r) => r.association))).toEqual(new Set([1]));
  });

  test('the C-STORE-RQ command set is byte for byte what the command encoder makes (odd and even UIDs)', async () => {
    const peer = await startAcceptor(() => 0x0000);
    cleanups.push(async () => void peer.server.close());
    const { list } = await instances([1000, 1000]);
    list[1]!.sopInstanceUid = '1.2.3.45'; // even length: no padding
    const outcomes = await storeInstances({ host: '127.0.0.1', port: peer.port, calledAet: 'PACS', callingAet: 'FIONA' }, list);
    expect(outcomes.map((o) => o.state)).toEqual(['ok', 'ok']);
    peer.received.forEach((r, i) => {
      const expected = encodeCommand([
        { tag: 0x0002, kind: 'UI', value: MR },
        { tag: 0x0100, kind: 'US', value: CommandField.CStoreRq },
        { tag: 0x0110, kind: 'US', value: i + 1 },
        { tag: 0x0700, kind: 'US', value: 0 },
        { tag: 0x0800, kind: 'US', value: 0x0000 },
        { tag: 0x1000, kind: 'UI', value: list[i]!.sopInstanceUid },
      ]);
      expect(r.command.toString('hex')).toBe(expected.toString('hex'));
    });
  });

  test.each<ResponseShape>(['split-header', 'split-value', 'two-fragments'])('responses that arrive in pieces (%s) are joined; statuses are read right', async (shape) => {
    const peer = await startAcceptor((r) => (r.sop === '1.2.3.2' ? 0xb000 : r.sop === '1.2.3.3' ? 0xa700 : 0x0000), 16384, shape);
    cleanups.push(async () => void peer.server.close());
    const { list, bytes } = await instances([70_000, 3000, 3000, 50_000]);
    const outcomes = await storeInstances({ host: '127.0.0.1', port: peer.port, calledAet: 'PACS', callingAet: 'FIONA' }, list);
    expect(outcomes.map((o) => [o.instance.sopInstanceUid, o.state, o.status])).toEqual([
      ['1.2.3.1', 'ok', 0],
      ['1.2.3.2', 'warning', 0xb000],
      ['1.2.3.3', 'failed', 0xa700],
      ['1.2.3.4', 'ok', 0],
    ]);
    peer.received.forEach((r, i) => expect(r.data.equals(bytes[i]!)).toBe(true));
  });

  test('responseHead reads what parseResponse reads, and refuses what it refuses', () => {
    const request = { commandField: CommandField.CStoreRq, messageId: 77, affectedSopClassUid: MR, affectedSopInstanceUid: '1.2.3.4', hasDataset: true };
    for (const status of [0x0000, 0xb000, 0xa700, 0xff00]) {
      const rsp = encodeResponse(request, status, 'disk full');
      const full = parseResponse(rsp)!;
      expect(responseHead(rsp)).toEqual({ commandField: full.commandField, messageId: full.messageIdBeingRespondedTo, status: full.status, hasDataset: full.hasDataset });
    }
    const good = encodeResponse(request, 0);
    // Cut inside an element, a length that overruns, an element outside group 0000, a request (not a response), no status.
    const overrun = Buffer.from(good);
    overrun.writeUInt32LE(0xfff0, 16);
    const group = Buffer.from(good);
    group.writeUInt16LE(0x0008, 12);
    const notResponse = encodeCommand([
      { tag: 0x0100, kind: 'US', value: CommandField.CStoreRq },
      { tag: 0x0120, kind: 'US', value: 1 },
      { tag: 0x0900, kind: 'US', value: 0 },
    ]);
    const noStatus = encodeCommand([
      { tag: 0x0100, kind: 'US', value: 0x8001 },
      { tag: 0x0120, kind: 'US', value: 1 },
    ]);
    for (const bad of [good.subarray(0, good.length - 3), overrun, group, notResponse, noStatus]) {
      expect(responseHead(bad)).toBeUndefined();
      expect(parseResponse(bad)).toBeUndefined();
    }
  });

  test('two associations, one aborted: the requests queued behind its lost one go out again on another association, each with its own bytes', async () => {
    // A request framed but never sent (its association was aborted) is framed again from its
    // file on a later association, while the other association keeps reading and sending.
    const { dir, cleanup } = await makeTempDir('fiona-ul-files-');
    cleanups.push(cleanup);
    const files = await synthStudy(join(dir, 'study'), { series: 1, instances: 12, rows: 64, seed: 'pool' });
    const peer = await startAcceptor((r) => (r.association === 1 ? 'abort' : 0x0000));
    cleanups.push(async () => void peer.server.close());
    const dest = parseDestination(`dicom://PACS@127.0.0.1:${peer.port}?calling=FIONA`);
    if (dest.kind !== 'dicom') throw new Error('not a dicom destination');
    const transport = new DicomTransport(dest, { associations: 2 });
    const results: AttemptResult[] = [];
    await transport.attempt(files.map((path) => ({ path, name: path })), (r) => results.push(r));
    expect(results).toHaveLength(files.length);
    const failed = results.filter((r) => !r.ok);
    expect(failed).toHaveLength(1); // the one the association was aborted on
    expect(String(failed[0]!.reason)).toMatch(/no response/);
    const bySop = new Map(peer.received.filter((r) => r.association > 1).map((r) => [r.sop, r.data]));
    expect(bySop.size).toBe(files.length - 1);
    for (const f of files) {
      if (f === failed[0]!.file.path) continue;
      const got = bySop.get(await sopOf(f));
      expect(got, `${f} was not received`).toBeDefined();
      expect(got!.equals(await datasetOf(f)), `data set of ${f}`).toBe(true);
    }
  });
});
