/**
 * The receiver's pure parts, on real bytes: the streaming structure walker (on fiona-synth and
 * DCMTK files, checked against the DICOM core's verifyDicomFile), the PDU reader (every split
 * of a PDU stream, blocking), command sets (against a hand-written C-STORE-RQ) and the
 * association policy.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDicomFile } from '../../src/lib/dicom/index.js';
import { CommandField, Status, encodePDataTf, encodeResponse, parseCommand } from '../../src/lib/net/scp/command.js';
import { PduReader, ProtocolError, type PduReaderHandler } from '../../src/lib/net/scp/pdu-reader.js';
import { ContextResult, decideAssociation } from '../../src/lib/net/scp/policy.js';
import { chooseTransferSyntax, isStorageSopClass } from '../../src/lib/net/scp/sop-classes.js';
import { DatasetWalker } from '../../src/lib/receive/dataset-walker.js';
import { TAG } from '../../src/lib/receive/incoming.js';
import { p10Parts } from '../peers/dcmtk.js';
import { makeTempDir } from '../helpers/tmp.js';
import { cStoreRq, pdata } from './raw-client.js';
import { synth, transferSyntaxFixtures, type TsFixture } from './fixtures.js';

let dir: string;
let cleanup: () => Promise<void>;
let synthFiles: string[];
let tsFixtures: TsFixture[];

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('fiona-receive-units-'));
  synthFiles = await synth(join(dir, 'synth'), ['--series', '2', '--instances', '1', '--rows', '32', '--types', 't1,dwi']);
  tsFixtures = await transferSyntaxFixtures(dir, synthFiles[0] as string);
}, 120_000);

afterAll(async () => cleanup());

const CAPTURE = [TAG.SOPClassUID, TAG.SOPInstanceUID, TAG.StudyInstanceUID, TAG.SeriesInstanceUID];

function walk(dataset: Buffer, enc = { explicitVr: true, littleEndian: true }, chunk = dataset.length) {
  const w = new DatasetWalker(enc, CAPTURE);
  for (let off = 0; off < dataset.length; off += chunk) w.feed(dataset.subarray(off, off + chunk));
  return w.finish();
}

function encodingOf(ts: string) {
  if (ts === '1.2.840.10008.1.2') return { explicitVr: false, littleEndian: true };
  if (ts === '1.2.840.10008.1.2.2') return { explicitVr: true, littleEndian: false };
  return { explicitVr: true, littleEndian: true };
}

describe('DatasetWalker', () => {
  it('walks fiona-synth files (undefined-length sequences, private blocks) whole, in any chunking', async () => {
    for (const file of synthFiles) {
      const { dataset } = await p10Parts(file);
      const header = await verifyDicomFile(file);
      for (const chunk of [dataset.length, 4096, 7, 1]) {
        const r = walk(dataset, undefined, chunk);
        expect(r.problem).toBeUndefined();
        expect(r.bytes).toBe(dataset.length);
        expect(r.values.get(TAG.SOPInstanceUID)).toBe(header.string('SOPInstanceUID'));
        expect(r.values.get(TAG.StudyInstanceUID)).toBe(header.string('StudyInstanceUID'));
        expect(r.values.get(TAG.SeriesInstanceUID)).toBe(header.string('SeriesInstanceUID'));
        expect(r.values.get(TAG.SOPClassUID)).toBe(header.string('SOPClassUID'));
      }
    }
  });

  it('walks every transfer syntax DCMTK writes (implicit, big endian, RLE, JPEG, JPEG-LS)', async () => {
    for (const fx of tsFixtures.filter((f) => f.name !== 'deflated')) {
      const { dataset, transferSyntax } = await p10Parts(fx.file);
      expect(transferSyntax).toBe(fx.ts);
      const r = walk(dataset, encodingOf(fx.ts), 333);
      expect(r.problem, fx.name).toBeUndefined();
      expect(r.values.get(TAG.SOPInstanceUID), fx.name).toMatch(/^[0-9.]+$/);
    }
  });

  it('finds every cut inside an element, an item or a sequence, and agrees with verifyDicomFile', async () => {
    const file = synthFiles[0] as string;
    const { dataset } = await p10Parts(file);
    // Cut points: inside the pixel data, one byte short, inside the first undefined-length sequence.
    const seqAt = dataset.indexOf(Buffer.from([0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff])); // "SQ" + undefined length
    expect(seqAt).toBeGreaterThan(0);
    const { meta } = await p10Parts(file);
    const head = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), meta]);
    const cuts = [dataset.length - 1, dataset.length - 1000, seqAt + 8, seqAt + 10, seqAt + 40, 7, 3];
    for (const cut of cuts) {
      const r = walk(dataset.subarray(0, cut), undefined, 500);
      expect(r.problem, `cut at ${cut}`).toBeDefined();
      // The DICOM core, reading the same bytes as a file, refuses them too.
      const cutFile = join(dir, `cut-${cut}.dcm`);
      await writeFile(cutFile, Buffer.concat([head, dataset.subarray(0, cut)]));
      await expect(verifyDicomFile(cutFile), `verifyDicomFile, cut at ${cut}`).rejects.toThrow();
    }
    const r = walk(dataset.subarray(0, dataset.length - 1));
    expect(r.problem).toMatch(/ends inside element \(7FE0,0010\) .*1 of \d+ value bytes missing/);
    expect(walk(dataset.subarray(0, seqAt + 8)).problem).toMatch(/ends inside sequence \(/);
    expect(walk(dataset.subarray(0, seqAt + 10)).problem).toMatch(/ends inside an element header/);
  });

  it('follows an explicit VR UN element of undefined length as Implicit VR Little Endian (PS3.5 6.2.2)', () => {
    const implicitItem = Buffer.concat([
      Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]), // item, undefined length
      Buffer.from([0x08, 0x00, 0x50, 0x00, 4, 0, 0, 0]), // (0008,0050) implicit, length 4
      Buffer.from('ACC1', 'latin1'),
      Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]), // item delimiter
      Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]), // sequence delimiter
    ]);
    const un = Buffer.concat([Buffer.from([0x09, 0x00, 0x10, 0x10, 0x55, 0x4e, 0, 0, 0xff, 0xff, 0xff, 0xff]), implicitItem]);
    const sop = Buffer.concat([Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49, 4, 0]), Buffer.from('1.23', 'latin1')]);
    const ds = Buffer.concat([sop, un]);
    const whole = walk(ds, undefined, 3);
    expect(whole.problem).toBeUndefined();
    expect(whole.values.get(TAG.SOPInstanceUID)).toBe('1.23');
    expect(walk(ds.subarray(0, ds.length - 8)).problem).toMatch(/inside sequence \(0009,1010\)/);
  });

  it('reports garbage as a bad VR, naming the offset', () => {
    const ds = Buffer.from([0x08, 0x00, 0x18, 0x00, 0x01, 0x02, 4, 0, 0x31, 0x2e, 0x32, 0x33]);
    expect(walk(ds).problem).toMatch(/bad VR bytes 0x0102 in element \(0008,0018\) at byte 0/);
  });
});

describe('PduReader', () => {
  class Recorder implements PduReaderHandler {
    log: string[] = [];
    blockAfterData = false;
    onControlPdu(type: number, pdu: Buffer): boolean {
      this.log.push(`control ${type} ${pdu.length}`);
      return true;
    }
    onPdvStart(pcId: number, isCommand: boolean, isLast: boolean): void {
      this.log.push(`start ${pcId} ${isCommand ? 'cmd' : 'data'} ${isLast ? 'last' : 'more'}`);
    }
    onPdvData(data: Buffer): boolean {
      this.log.push(`data ${data.toString('latin1')}`);
      return !this.blockAfterData;
    }
    onPdvEnd(): boolean {
      this.log.push('end');
      return true;
    }
  }

  const stream = Buffer.concat([
    Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]), // A-RELEASE-RQ
    pdata(1, Buffer.from('COMMAND', 'latin1'), true, true),
    pdata(1, Buffer.from('abc', 'latin1'), false, false),
    // two PDVs in one P-DATA-TF
    (() => {
      const a = pdata(3, Buffer.from('de', 'latin1'), false, false).subarray(6);
      const b = pdata(3, Buffer.from('fgh', 'latin1'), false, true).subarray(6);
      const h = Buffer.from([0x04, 0, 0, 0, 0, 0]);
      h.writeUInt32BE(a.length + b.length, 2);
      return Buffer.concat([h, a, b]);
    })(),
  ]);

  function dataOf(log: string[]): string {
    return log.filter((l) => l.startsWith('data ')).map((l) => l.slice(5)).join('');
  }

  it('gives the same PDUs and PDV bytes however the stream is split', () => {
    const whole = new Recorder();
    new PduReader(whole, () => undefined, () => undefined).push(stream);
    expect(whole.log.filter((l) => !l.startsWith('data'))).toEqual([
      'control 5 10',
      'start 1 cmd last',
      'end',
      'start 1 data more',
      'end',
      'start 3 data more',
      'end',
      'start 3 data last',
      'end',
    ]);
    expect(dataOf(whole.log)).toBe('COMMANDabcdefgh');
    for (let size = 1; size <= 13; size++) {
      const r = new Recorder();
      const reader = new PduReader(r, () => undefined, () => undefined);
      for (let off = 0; off < stream.length; off += size) reader.push(stream.subarray(off, off + size));
      expect(r.log.filter((l) => !l.startsWith('data'))).toEqual(whole.log.filter((l) => !l.startsWith('data')));
      expect(dataOf(r.log)).toBe('COMMANDabcdefgh');
    }
  });

  it('stops where a handler blocks, pauses, and goes on after unblock()', () => {
    const r = new Recorder();
    let paused = 0;
    let resumed = 0;
    const reader = new PduReader(r, () => paused++, () => resumed++);
    r.blockAfterData = true;
    reader.push(stream);
    expect(paused).toBe(1);
    expect(dataOf(r.log)).toBe('COMMAND');
    r.blockAfterData = false;
    reader.unblock();
    expect(resumed).toBe(1);
    expect(dataOf(r.log)).toBe('COMMANDabcdefgh');
  });

  it('throws ProtocolError on a PDV longer than its PDU and on unknown PDU types', () => {
    const bad = pdata(1, Buffer.from('xyz', 'latin1'), true, true);
    bad.writeUInt32BE(200, 6);
    expect(() => new PduReader(new Recorder(), () => undefined, () => undefined).push(bad)).toThrow(ProtocolError);
    expect(() => new PduReader(new Recorder(), () => undefined, () => undefined).push(Buffer.from([0x09, 0, 0, 0, 0, 0]))).toThrow(/unknown PDU type 0x09/);
  });
});

describe('command sets', () => {
  it('reads a hand-written C-STORE-RQ and answers it with a response a peer can read', () => {
    const rq = parseCommand(cStoreRq(77, '1.2.840.10008.5.1.4.1.1.4', '1.2.3.4.5'));
    expect(rq).toMatchObject({
      commandField: CommandField.CStoreRq,
      messageId: 77,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      affectedSopInstanceUid: '1.2.3.4.5',
      hasDataset: true,
    });
    const rsp = encodeResponse(rq, Status.CannotUnderstand, 'incomplete data set: something long enough to be cut at sixty-four characters');
    const back = parseCommand(rsp);
    expect(back.commandField).toBe(0x8001);
    expect(back.hasDataset).toBe(false);
    // (0000,0120) and (0000,0900) read by hand
    const at = (elem: number): number => {
      for (let off = 12; off < rsp.length; ) {
        const e = rsp.readUInt16LE(off + 2);
        const len = rsp.readUInt32LE(off + 4);
        if (e === elem) return rsp.readUInt16LE(off + 8);
        off += 8 + len;
      }
      return -1;
    };
    expect(at(0x0120)).toBe(77);
    expect(at(0x0900)).toBe(Status.CannotUnderstand);
    expect(rsp.readUInt32LE(8)).toBe(rsp.length - 12); // group length
    const pdu = encodePDataTf(5, rsp, true);
    expect(pdu.readUInt32BE(2)).toBe(rsp.length + 6);
    expect(pdu[11]).toBe(3);
  });
});

describe('association policy', () => {
  const contexts = [
    { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
    { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.4', transferSyntaxes: ['1.2.840.10008.1.2.2', '1.2.840.10008.1.2'] },
    { id: 5, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxes: ['1.2.840.10008.1.2'] }, // Q/R FIND
    { id: 7, abstractSyntax: '1.3.12.2.1107.5.9.1', transferSyntaxes: ['1.2.840.10008.1.2.4.90'] }, // Siemens CSA, J2K
    { id: 9, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.113619.5.2'] }, // GE private TS
  ];

  it('accepts storage and verification with a proposed transfer syntax, refuses the rest', () => {
    const d = decideAssociation({ callingAet: 'SCANNER', calledAet: 'FIONA', contexts }, { aet: 'FIONA' }, { slotFree: true, draining: false });
    expect(d.accept).toBe(true);
    if (!d.accept) return;
    expect(d.contexts).toEqual([
      { id: 1, result: ContextResult.Acceptance, transferSyntax: '1.2.840.10008.1.2' },
      { id: 3, result: ContextResult.Acceptance, transferSyntax: '1.2.840.10008.1.2' },
      { id: 5, result: ContextResult.AbstractSyntaxNotSupported },
      { id: 7, result: ContextResult.Acceptance, transferSyntax: '1.2.840.10008.1.2.4.90' },
      { id: 9, result: ContextResult.TransferSyntaxesNotSupported },
    ]);
  });

  it('rejects a wrong called AE title, a calling AE title not allowed, and over the limit', () => {
    const base = { callingAet: 'SCANNER', calledAet: 'FIONA', contexts };
    const wrongCalled = decideAssociation({ ...base, calledAet: 'OTHER' }, { aet: 'FIONA' }, { slotFree: true, draining: false });
    expect(wrongCalled).toMatchObject({ accept: false, rejection: { result: 1, source: 1, reason: 7 } });
    const notAllowed = decideAssociation(base, { aet: 'FIONA', allow: ['PACS'] }, { slotFree: true, draining: false });
    expect(notAllowed).toMatchObject({ accept: false, rejection: { result: 1, source: 1, reason: 3 } });
    const otherProject = decideAssociation({ ...base, calledAet: 'PROJECT2' }, { aet: 'FIONA', alsoCalled: ['PROJECT1', 'PROJECT2'] }, { slotFree: true, draining: false });
    expect(otherProject.accept).toBe(true);
    const stillWrong = decideAssociation({ ...base, calledAet: 'OTHER' }, { aet: 'FIONA', alsoCalled: ['PROJECT1'] }, { slotFree: true, draining: false });
    expect(stillWrong).toMatchObject({ accept: false, rejection: { reason: 7 } });
    const full = decideAssociation(base, { aet: 'FIONA' }, { slotFree: false, draining: false });
    expect(full).toMatchObject({ accept: false, rejection: { result: 2, source: 3, reason: 2 } });
  });

  it('knows storage SOP classes and prefers the sender\'s first choice except big endian', () => {
    expect(isStorageSopClass('1.2.840.10008.5.1.4.1.1.128')).toBe(true);
    expect(isStorageSopClass('1.2.840.10008.5.1.4.1.2.2.2')).toBe(false);
    expect(isStorageSopClass('1.2.840.10008.5.1.4.1.1.')).toBe(false);
    expect(chooseTransferSyntax(['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.1'])).toBe('1.2.840.10008.1.2.4.70');
    expect(chooseTransferSyntax(['1.2.840.10008.1.2.2'])).toBe('1.2.840.10008.1.2.2');
    expect(chooseTransferSyntax(['1.2.840.113619.5.2'])).toBeUndefined();
  });
});

describe('fixtures', () => {
  it('are what they claim (guards the other tests)', async () => {
    const names = tsFixtures.map((f) => f.name);
    expect(names).toHaveLength(10);
    for (const f of tsFixtures) expect((await p10Parts(f.file)).transferSyntax).toBe(f.ts);
    expect((await readFile(synthFiles[0] as string)).length).toBeGreaterThan(2000);
  });
});
