import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { waitForPort } from '../peers/ports.js';
import { basename, join } from 'node:path';
import { binPath, parseEvents, runTool } from '../helpers/cli.js';
import { dcmcjpeg, dcmcjpls, dcmconv, dcmcrle, dcmodify, p10Parts } from '../peers/dcmtk.js';
import { startSshd, type Sshd } from '../peers/sshd.js';
import { filesUnder } from '../helpers/files.js';
import { makeTempDir } from '../helpers/tmp.js';
import { afterAll, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import type { SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';

// The shared walk; re-exported because the send tests import it from here.
export { filesUnder };

/** A small synthetic study (private tags, nested sequences) from fiona-synth. */
export async function synthStudy(out: string, opts: { series?: number; instances?: number; rows?: number; seed?: string } = {}): Promise<string[]> {
  const r = await runTool('fiona-synth', [
    '--out', out,
    '--patients', '1',
    '--series', String(opts.series ?? 2),
    '--instances', String(opts.instances ?? 3),
    '--rows', String(opts.rows ?? 64),
    '--seed', opts.seed ?? 'send',
  ]);
  if (r.exitCode !== 0) throw new Error(`fiona-synth failed: ${String(r.stderr)}`);
  return (await filesUnder(out)).filter((f) => f.endsWith('.dcm'));
}

/**
 * The same instance in every transfer syntax DCMTK makes: implicit, big endian, deflated,
 * RLE, JPEG lossless, JPEG-LS. Each copy gets its own SOP Instance UID so a PACS keeps all.
 */
export async function encodings(src: string, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const made: string[] = [];
  const variants: Array<[string, (i: string, o: string) => Promise<void>]> = [
    ['implicit', (i, o) => dcmconv(i, o, ['+ti'])],
    ['big', (i, o) => dcmconv(i, o, ['+tb'])],
    ['deflated', (i, o) => dcmconv(i, o, ['+td'])],
    ['rle', (i, o) => dcmcrle(i, o)],
    ['jpeg', (i, o) => dcmcjpeg(i, o)],
    ['jpegls', (i, o) => dcmcjpls(i, o)],
  ];
  let n = 1;
  for (const [name, make] of variants) {
    const tmp = join(dir, `${name}.tmp.dcm`);
    await copyFile(src, tmp);
    await dcmodify(tmp, ['-m', `(0008,0018)=2.25.${Date.now()}${n++}`]);
    const out = join(dir, `${name}.dcm`);
    await make(tmp, out);
    await execa('rm', ['-f', tmp]);
    made.push(out);
  }
  return made;
}

/** The data set bytes (after the File Meta) of a Part 10 file. */
export async function datasetOf(file: string): Promise<Buffer> {
  return (await p10Parts(file)).dataset;
}

export async function sopOf(file: string): Promise<string> {
  const r = await execa('dcmdump', ['+P', '0008,0018', '-s', file], { env: { TCP_NODELAY: '1' } });
  const m = /\[([0-9.]+)\]/.exec(r.stdout);
  if (!m) throw new Error(`no SOP Instance UID in ${file}`);
  return m[1]!;
}

/**
 * A small real SCP (dcmjs-dimse in its own process) for peer behaviours DCMTK and Orthanc do
 * not offer: answer a chosen status for one SOP Instance UID, or never answer a C-STORE.
 */
export async function startScriptScp(dir: string, port: number, behaviour: { rejectSop?: string; status?: number; silent?: boolean }): Promise<{ stop(): Promise<void> }> {
  const script = join(dir, `scp-${port}.cjs`);
  await writeFile(
    script,
    `const { Server, Scp, constants, responses } = require(${JSON.stringify(createRequire(import.meta.url).resolve('dcmjs-dimse'))});
     const behaviour = ${JSON.stringify(behaviour)};
     class TestScp extends Scp {
       associationRequested(a) {
         a.getPresentationContexts().forEach(({ context }) => context.setResult(constants.PresentationContextResult.Accept, context.getTransferSyntaxUids()[0]));
         this.sendAssociationAccept();
       }
       associationReleaseRequested() { this.sendAssociationReleaseResponse(); }
       createStoreWritableStream() { const { Writable } = require('stream'); return new Writable({ write(c, e, cb) { cb(); } }); }
       createDatasetFromStoreWritableStream(w, pc, cb) { cb(undefined); }
       cStoreRequest(request, callback) {
         if (behaviour.silent) return;
         const rsp = responses.CStoreResponse.fromRequest(request);
         const sop = request.getAffectedSopInstanceUid();
         rsp.setStatus(sop === behaviour.rejectSop ? behaviour.status : constants.Status.Success);
         callback(rsp);
       }
     }
     const s = new Server(TestScp); s.listen(${port}); process.on('SIGTERM', () => process.exit(0));`,
  );
  const proc = execa(process.execPath, [script], { reject: false, stdin: 'ignore' });
  await waitForPort(port);
  return {
    async stop() {
      proc.kill('SIGTERM');
      await proc;
    },
  };
}

/** Stop a peer process started with execa (SIGTERM, SIGKILL after 3 s): the peers' own stopProcess. */
export { stopProcess as stopProc } from '../peers/process.js';

export function send(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  return runTool('fiona-send', args, {
    timeout: 110_000,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
    ...(opts.env ? { env: { NO_COLOR: '1', ...opts.env } } : {}),
  });
}

export type TempDir = Awaited<ReturnType<typeof makeTempDir>>;

/**
 * The set-up of a test file against a loopback sshd: a temp folder and the sshd, made in
 * beforeAll (handed to `ready`), stopped and removed in afterAll.
 */
export function withSshd(prefix: string, ready: (tmp: TempDir, sshd: Sshd) => void): void {
  let tmp: TempDir | undefined;
  let sshd: Sshd | undefined;
  beforeAll(async () => {
    tmp = await makeTempDir(prefix);
    sshd = await startSshd();
    ready(tmp, sshd);
  });
  afterAll(async () => {
    await sshd?.stop();
    await tmp?.cleanup();
  });
}

/**
 * An ssh2-sftp-client session to the sshd (given late: it starts in beforeAll), opened in
 * beforeAll (handed to `ready` with its SFTP channel) and ended in afterAll.
 */
export function withSftpSession(sshd: () => Sshd, ready: (client: SftpClient, sftp: SFTPWrapper) => void): void {
  let client: SftpClient | undefined;
  beforeAll(async () => {
    const s = sshd();
    client = new SftpClient('test');
    await client.connect({ host: '127.0.0.1', port: s.port, username: s.user, privateKey: readFileSync(s.identity) });
    ready(client, (client as unknown as { sftp: SFTPWrapper }).sftp);
  });
  afterAll(async () => {
    await client?.end();
  });
}

/** fiona-send's arguments for an sftp:// destination on `s`. */
export function sftpArgs(s: Sshd, remote: string, extra: string[] = []): string[] {
  return ['--to', s.url(remote), '--identity', s.identity, '--known-hosts', s.knownHosts, ...extra];
}

/** MD5 of a local file, hex. */
export async function md5(f: string): Promise<string> {
  return createHash('md5').update(await readFile(f)).digest('hex');
}

export { binPath, parseEvents, basename };
