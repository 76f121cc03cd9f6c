/**
 * The small pieces of fiona-send and fiona-heartbeat on their own: destination URLs,
 * known_hosts matching (plain, [host]:port, hashed by ssh-keygen -H, @revoked), backoff,
 * command splitting, DIMSE status classes, the response parser, the delivery loop, and
 * the C-STORE file-head scanner against the DICOM core's reader.
 */
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseSimpleResponse, statusClass, statusText } from '../../src/lib/net/scu/association.js';
import { splitCommand } from '../../src/lib/health/restart.js';
import { parseThreshold } from '../../src/lib/health/disk.js';
import { parseDestination } from '../../src/lib/transport/destination.js';
import { deliver } from '../../src/lib/transport/deliver.js';
import { checkHostKey, hostKeyAlgorithms, knownKeysFor } from '../../src/lib/transport/known-hosts.js';
import { backoffDelay } from '../../src/lib/transport/retry.js';
import { describeDicomFile, describeWithReader } from '../../src/lib/transport/dicom.js';
import { scanInstanceHead } from '../../src/lib/net/scu/instance-head.js';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import { filesUnder } from '../helpers/files.js';
import { expandPaths } from '../../src/lib/transport/files.js';
import { requireProgram } from '../peers/process.js';
import { runTool } from '../helpers/cli.js';
import type { AttemptResult, SendFile, Transport } from '../../src/lib/transport/types.js';
import { makeTempDir } from '../helpers/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('fiona-send-units-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe('destination URLs', () => {
  test('dicom:// with defaults and parameters', () => {
    expect(parseDestination('dicom://PACS@10.1.2.3:4242?calling=GATEWAY')).toMatchObject({
      kind: 'dicom',
      peer: { host: '10.1.2.3', port: 4242, calledAet: 'PACS', callingAet: 'GATEWAY' },
    });
    const d = parseDestination('dicom://MY%20PACS@pacs.example.org', { callingAet: 'FIONA' });
    expect(d).toMatchObject({ kind: 'dicom', peer: { host: 'pacs.example.org', port: 104, calledAet: 'MY PACS', callingAet: 'FIONA' } });
    expect(d.url).toBe('dicom://MY%20PACS@pacs.example.org:104?calling=FIONA');
  });
  test('sftp:// folders', () => {
    expect(parseDestination('sftp://fiona@dc.example.org/incoming/mri/')).toMatchObject({ kind: 'sftp', user: 'fiona', port: 22, dir: '/incoming/mri' });
    expect(parseDestination('sftp://u@h:2222/~/upload')).toMatchObject({ port: 2222, dir: 'upload' });
    expect(parseDestination('sftp://u@h')).toMatchObject({ dir: '/' });
  });
  test('bad ones name the problem', () => {
    expect(() => parseDestination('dicom://h:104')).toThrow(/called AE title is missing/);
    expect(() => parseDestination('dicom://A@h:104?foo=1')).toThrow(/unknown parameter foo/);
    expect(() => parseDestination('dicom://A@h:104?calling=A\\B')).toThrow(/calling AE title/);
    expect(() => parseDestination('sftp://u:secret@h/x')).toThrow(/passwords in URLs/);
    // '..' never survives: the URL parser resolves it (also percent-encoded) before we see the path.
    expect(parseDestination('sftp://u@h/a/%2e%2e/b')).toMatchObject({ dir: '/b' });
    expect(() => parseDestination('ftp://u@h/x')).toThrow(/unknown scheme/);
    expect(() => parseDestination('not a url')).toThrow(/not a URL/);
  });
});

describe('known_hosts', () => {
  let key: Buffer;
  let keyLine: string;
  let other: Buffer;
  beforeAll(async () => {
    for (const name of ['k1', 'k2']) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(tmp.dir, name)]);
    keyLine = (await readFile(join(tmp.dir, 'k1.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
    key = Buffer.from(keyLine.split(' ')[1]!, 'base64');
    other = Buffer.from((await readFile(join(tmp.dir, 'k2.pub'), 'utf8')).split(' ')[1]!, 'base64');
  });

  test('plain, [host]:port, wildcard and negation', () => {
    const text = `# comment\nfoo.example.org,10.0.0.1 ${keyLine}\n[10.0.0.2]:2222 ${keyLine}\n*.lab.example.org,!bad.lab.example.org ${keyLine}\n`;
    expect(knownKeysFor(text, '10.0.0.1', 22)).toHaveLength(1);
    expect(knownKeysFor(text, '10.0.0.1', 2222)).toHaveLength(0);
    expect(knownKeysFor(text, '10.0.0.2', 2222)).toHaveLength(1);
    expect(knownKeysFor(text, 'a.lab.example.org', 22)).toHaveLength(1);
    expect(knownKeysFor(text, 'bad.lab.example.org', 22)).toHaveLength(0);
    const known = knownKeysFor(text, '10.0.0.1', 22);
    expect(checkHostKey(known, key, '10.0.0.1', 22, 'kh').ok).toBe(true);
    expect(checkHostKey(known, other, '10.0.0.1', 22, 'kh').reason).toMatch(/does not match kh \(line 2\)/);
    expect(checkHostKey([], key, 'x', 22, 'kh').reason).toMatch(/unknown host x/);
    expect(hostKeyAlgorithms(known)).toEqual(['ssh-ed25519']);
  });

  test('hashed entries written by ssh-keygen -H', async () => {
    const file = join(tmp.dir, 'known_hashed');
    await writeFile(file, `[127.0.0.1]:2200 ${keyLine}\nhost.example.org ${keyLine}\n`);
    await execa('ssh-keygen', ['-H', '-f', file]);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^\|1\|/);
    expect(knownKeysFor(text, '127.0.0.1', 2200)).toHaveLength(1);
    expect(knownKeysFor(text, 'host.example.org', 22)).toHaveLength(1);
    expect(knownKeysFor(text, '127.0.0.1', 22)).toHaveLength(0);
  });

  test('@revoked refuses the key; @cert-authority lines are skipped', () => {
    const text = `@revoked * ${keyLine}\nhost ${keyLine}\n@cert-authority * ${keyLine}\n`;
    const known = knownKeysFor(text, 'host', 22);
    expect(checkHostKey(known, key, 'host', 22, 'kh').reason).toMatch(/@revoked/);
  });
});

describe('retries', () => {
  test('backoff doubles up to the cap, with +-10% jitter', () => {
    const p = { retries: 5, initialDelayMs: 1000, maxDelayMs: 5000 };
    expect(backoffDelay(p, 1, () => 0.5)).toBe(1000);
    expect(backoffDelay(p, 2, () => 0.5)).toBe(2000);
    expect(backoffDelay(p, 3, () => 0.5)).toBe(4000);
    expect(backoffDelay(p, 4, () => 0.5)).toBe(5000);
    expect(backoffDelay(p, 1, () => 0)).toBe(900);
    expect(backoffDelay(p, 1, () => 1)).toBe(1100);
  });

  test('deliver: each file ends in one final result; permanent failures are not retried', async () => {
    const files: SendFile[] = ['ok', 'flaky', 'broken', 'never'].map((n) => ({ path: `/x/${n}`, name: n }));
    const calls: string[][] = [];
    let flaky = 0;
    const transport: Transport = {
      url: 'test://',
      async attempt(batch, onResult) {
        calls.push(batch.map((f) => f.name));
        for (const file of batch) {
          const r: AttemptResult =
            file.name === 'ok' ? { file, ok: true, retryable: false, details: {} }
            : file.name === 'flaky' ? (++flaky >= 2 ? { file, ok: true, retryable: false, details: {} } : { file, ok: false, reason: 'hiccup', retryable: true, details: {} })
            : file.name === 'broken' ? { file, ok: false, reason: 'not DICOM', retryable: false, details: {} }
            : { file, ok: false, reason: 'down', retryable: true, details: {} };
          onResult(r);
        }
      },
      async close() {},
    };
    const retries: number[] = [];
    const results = await deliver(transport, files, { retries: 2, initialDelayMs: 1, maxDelayMs: 2 }, { onRetry: (i) => retries.push(i.retry) });
    expect(calls).toEqual([['ok', 'flaky', 'broken', 'never'], ['flaky', 'never'], ['never']]);
    expect(retries).toEqual([1, 2]);
    const by = Object.fromEntries(results.map((r) => [r.file.name, r]));
    expect(by.ok).toMatchObject({ ok: true, attempts: 1 });
    expect(by.flaky).toMatchObject({ ok: true, attempts: 2 });
    expect(by.broken).toMatchObject({ ok: false, attempts: 1, reason: 'not DICOM' });
    expect(by.never).toMatchObject({ ok: false, attempts: 3, reason: 'down' });
  });
});

describe('DIMSE', () => {
  test('status classes (PS3.7 C)', () => {
    expect(statusClass(0)).toBe('success');
    for (const w of [0x0001, 0x0107, 0x0116, 0xb000, 0xb007, 0xb006]) expect(statusClass(w)).toBe('warning');
    for (const f of [0xa700, 0xa900, 0xc000, 0x0122, 0x0124, 0x0110, 0x0211]) expect(statusClass(f)).toBe('failure');
    expect(statusClass(0xff00)).toBe('pending');
    expect(statusText(0xa702)).toMatch(/out of resources \(0xA702\)/);
  });

  test('response parser reads a C-STORE-RSP and leaves anything unusual to dcmjs-dimse', () => {
    const el = (group: number, elem: number, value: Buffer): Buffer => {
      const h = Buffer.alloc(8);
      h.writeUInt16LE(group, 0);
      h.writeUInt16LE(elem, 2);
      h.writeUInt32LE(value.length, 4);
      return Buffer.concat([h, value]);
    };
    const us = (n: number): Buffer => {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(n);
      return b;
    };
    const body = Buffer.concat([
      el(0, 0x0002, Buffer.from('1.2.840.10008.5.1.4.1.1.4\0')),
      el(0, 0x0100, us(0x8001)),
      el(0, 0x0120, us(7)),
      el(0, 0x0800, us(0x0101)),
      el(0, 0x0900, us(0xb000)),
      el(0, 0x1000, Buffer.from('1.2.3.4 ')),
    ]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.length);
    const command = Buffer.concat([el(0, 0x0000, len), body]);
    expect(parseSimpleResponse(command)).toEqual({
      AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
      CommandField: 0x8001,
      MessageIDBeingRespondedTo: 7,
      CommandDataSetType: 0x0101,
      Status: 0xb000,
      AffectedSOPInstanceUID: '1.2.3.4',
    });
    // An Offending Element (0000,0901), a truncated buffer, a C-FIND-RSP: not ours.
    expect(parseSimpleResponse(Buffer.concat([command, el(0, 0x0901, Buffer.alloc(4))]))).toBeUndefined();
    expect(parseSimpleResponse(command.subarray(0, command.length - 3))).toBeUndefined();
    expect(parseSimpleResponse(Buffer.concat([el(0, 0x0100, us(0x8020)), el(0, 0x0120, us(1)), el(0, 0x0800, us(0x0101)), el(0, 0x0900, us(0))]))).toBeUndefined();
  });
});

describe('heartbeat pieces', () => {
  test('--restart commands are split like a shell would, without running one', () => {
    expect(splitCommand('systemctl restart fiona-receive')).toEqual(['systemctl', 'restart', 'fiona-receive']);
    expect(splitCommand(`/opt/x "a b" 'c d' e\\ f "q\\"q" $HOME`)).toEqual(['/opt/x', 'a b', 'c d', 'e f', 'q"q', '$HOME']);
    expect(splitCommand(`a '' b`)).toEqual(['a', '', 'b']);
    expect(() => splitCommand(`a 'b`)).toThrow(/unbalanced/);
  });
  test('free-space thresholds', () => {
    expect(parseThreshold('20%')).toEqual({ percent: 20 });
    expect(parseThreshold('50G')).toEqual({ bytes: 50 * 1024 ** 3 });
    expect(parseThreshold('1.5TiB')).toEqual({ bytes: 1.5 * 1024 ** 4 });
    expect(() => parseThreshold('120%')).toThrow();
    expect(() => parseThreshold('lots')).toThrow();
  });
});

describe('C-STORE file heads (scanInstanceHead)', () => {
  const scan = (path: string): ReturnType<typeof scanInstanceHead> => {
    const fd = openSync(path, 'r');
    try {
      return scanInstanceHead(fd, fstatSync(fd).size);
    } finally {
      closeSync(fd);
    }
  };
  const dicomUnder = async (dir: string): Promise<string[]> => (await filesUnder(dir)).filter((f) => f.endsWith('.dcm'));

  test('plain files of every encoding, sequences of defined and undefined length: the scanner answers, as the full reader does', async () => {
    requireProgram('dcmconv', 'dcmtk');
    const base = join(tmp.dir, 'heads');
    for (const ts of ['explicit', 'implicit', 'big']) {
      const r = await runTool('fiona-synth', ['--out', join(base, ts), '--patients', '1', '--series', '6', '--instances', '1', '--rows', '16', '--transfer-syntax', ts, '--charset', 'utf8', '--no-fsync']);
      expect(r.exitCode, String(r.stderr)).toBe(0);
    }
    const synth = await dicomUnder(base);
    expect(synth.length).toBe(18);
    // DCMTK's writer with undefined-length sequences and items, in each encoding.
    const undef: string[] = [];
    for (const [i, f] of synth.slice(0, 6).entries()) {
      for (const [flag, tag] of [['+ti', 'i'], ['+te', 'e'], ['+tb', 'b']] as const) {
        const out = join(tmp.dir, `undef-${tag}${i}.dcm`);
        await execa('dcmconv', [flag, '-e', f, out]);
        undef.push(out);
      }
    }
    expect((await execa('dcmdump', [undef[0]!])).stdout).toMatch(/Sequence with undefined length/);
    for (const f of [...synth, ...undef]) {
      const head = scan(f);
      expect(head, f).toBeDefined();
      const fast = await describeDicomFile(f);
      expect(fast.ok, f).toBe(true);
      expect(fast).toEqual(await describeWithReader(f));
    }
  });

  test('anything not plain is left to the full reader, which answers as before', async () => {
    requireProgram('dcmconv', 'dcmtk');
    const src = (await dicomUnder(join(tmp.dir, 'heads', 'explicit')))[0]!;
    const deflated = join(tmp.dir, 'deflated.dcm');
    await execa('dcmconv', ['+td', src, deflated]);
    const noMeta = join(tmp.dir, 'no-meta.dcm');
    await execa('dcmconv', ['-F', '+te', src, noMeta]);
    // Explicit VR data under an Implicit VR transfer syntax UID (same length, NUL padded).
    const bytes = await readFile(src);
    const at = bytes.indexOf(Buffer.from('1.2.840.10008.1.2.1\0', 'latin1'));
    expect(at).toBeGreaterThan(132);
    const mislabelled = join(tmp.dir, 'mislabelled.dcm');
    await writeFile(mislabelled, Buffer.concat([bytes.subarray(0, at), Buffer.from('1.2.840.10008.1.2\0\0\0', 'latin1'), bytes.subarray(at + 20)]));
    // Cut inside the header (in the middle of the SOP Instance UID's value); and not DICOM at all.
    const sop = (await describeWithReader(src)) as { ok: true; instance: { sopInstanceUid: string } };
    const uid = Buffer.from(sop.instance.sopInstanceUid, 'latin1');
    // The second occurrence: the data set's (0008,0018), after the File Meta's (0002,0003).
    const inSop = bytes.indexOf(uid, bytes.indexOf(uid) + 1);
    expect(inSop).toBeGreaterThan(132);
    const cut = join(tmp.dir, 'cut.dcm');
    await writeFile(cut, bytes.subarray(0, inSop + 10));
    const text = join(tmp.dir, 'text.dcm');
    await writeFile(text, 'not a DICOM file\n'.repeat(20));
    // A File Meta group length that disagrees with where the meta elements end.
    const badLength = join(tmp.dir, 'bad-group-length.dcm');
    const copy = Buffer.from(bytes);
    expect(copy.readUInt16LE(132)).toBe(0x0002);
    expect(copy.readUInt16LE(134)).toBe(0x0000);
    copy.writeUInt32LE(copy.readUInt32LE(140) + 8, 140);
    await writeFile(badLength, copy);
    for (const f of [deflated, noMeta, mislabelled, cut, text, badLength]) {
      expect(scan(f), f).toBeUndefined();
      expect(await describeDicomFile(f)).toEqual(await describeWithReader(f).catch((err: Error) => ({ ok: false, reason: `not readable as DICOM: ${err.message}` })));
    }
    const d = await describeDicomFile(deflated);
    expect(d.ok && d.instance.transferSyntaxUid).toBe('1.2.840.10008.1.2.1.99');
    const m = await describeDicomFile(mislabelled);
    expect(m.ok).toBe(true);
    expect(await describeDicomFile(cut)).toMatchObject({ ok: false, reason: expect.stringMatching(/not readable as DICOM/) });
    expect(await describeDicomFile(text)).toMatchObject({ ok: false, reason: expect.stringMatching(/not readable as DICOM/) });
    expect(await describeDicomFile(join(tmp.dir, 'missing.dcm'))).toMatchObject({ ok: false, reason: expect.stringMatching(/not readable as DICOM: ENOENT/) });
  });
});

describe('expandPaths', () => {
  test('folders sorted and named relative, unfinished and hidden names skipped, links followed, each folder once, errors named', async () => {
    const root = join(tmp.dir, 'tree');
    await mkdir(join(root, 'b', 'c'), { recursive: true });
    await mkdir(join(root, 'a'), { recursive: true });
    for (const f of ['a/2.dcm', 'a/1.dcm', 'b/c/3.dcm', 'b/.hidden', 'b/x.part', 'b/y.tmp', 'top.dcm']) await writeFile(join(root, f), f);
    await symlink(join(root, 'a'), join(root, 'b', 'link-to-a'));
    await symlink(join(root, 'top.dcm'), join(root, 'b', 'link.dcm'));
    const r = await expandPaths([root, join(root, 'a', '1.dcm'), join(tmp.dir, 'nope')]);
    expect(r.files.map((f) => f.name)).toEqual(['tree/a/1.dcm', 'tree/a/2.dcm', 'tree/b/c/3.dcm', 'tree/b/link.dcm', 'tree/top.dcm', '1.dcm']);
    expect(r.files[0]!.path).toBe(join(root, 'a', '1.dcm'));
    expect(r.files[3]!.path).toBe(join(root, 'b', 'link.dcm'));
    expect(r.errors).toEqual([{ path: join(tmp.dir, 'nope'), reason: expect.stringMatching(/ENOENT/) }]);
  });
});
