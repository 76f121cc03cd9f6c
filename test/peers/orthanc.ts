/**
 * A real Orthanc on 127.0.0.1 for tests: free DICOM and HTTP ports, storage and index in a
 * private temp folder, no plugins, no authentication (loopback only), and the modalities
 * the test names (C-MOVE destinations, C-GET/C-FIND callers). Stopped by PID.
 *
 *   const pacs = await startOrthanc({ modalities: { FIONA: { aet: 'FIONA', port: 11112 } } });
 *   await pacs.upload(fileBytes);
 *   ... movescu/getscu/fiona-pull against pacs.dicomPort, AE title pacs.aet ...
 *   await pacs.stop();
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitForPort } from './ports.js';
import { requireProgram, startPeer, type Peer } from './process.js';

/** SIGTERM, then SIGKILL after a grace period (by PID: only the process we started). */
async function stopPeer(peer: Peer, graceMs = 5000): Promise<void> {
  const proc = peer.proc;
  if (proc.exitCode !== null && proc.exitCode !== undefined) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await proc;
  clearTimeout(timer);
}

export interface OrthancModality {
  aet: string;
  host?: string;
  port: number;
}

export interface OrthancOptions {
  /** Orthanc's own AE title (default ORTHANC). */
  aet?: string;
  /** Known peers by symbolic name: who may query/retrieve, and where C-MOVE may send. */
  modalities?: Record<string, OrthancModality>;
  /** Extra configuration keys (merged last). */
  config?: Record<string, unknown>;
}

export interface OrthancInstanceInfo {
  ID: string;
  MainDicomTags: Record<string, string>;
  ParentSeries: string;
}

export interface Orthanc {
  aet: string;
  dicomPort: number;
  httpPort: number;
  url: string;
  dir: string;
  /** POST /instances: store one DICOM file; returns Orthanc's instance id. */
  upload(bytes: Uint8Array | string): Promise<string>;
  /** Upload every file of a list (paths); returns their ids. */
  uploadAll(paths: string[]): Promise<string[]>;
  /** GET /instances/{id}/file: the stored bytes, as Orthanc keeps them. */
  fileOf(instanceId: string): Promise<Buffer>;
  /** The instance id of a SOP Instance UID (via /tools/lookup), undefined when absent. */
  lookup(uid: string): Promise<string | undefined>;
  /** Instance ids of a study (by Study Instance UID). */
  studyInstances(studyUid: string): Promise<string[]>;
  /** All instance ids. */
  instances(): Promise<string[]>;
  /** PUT /modalities/{name}: add or change a modality while running. */
  addModality(name: string, m: OrthancModality): Promise<void>;
  rest<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

function modalityEntry(m: OrthancModality): Record<string, unknown> {
  return {
    AET: m.aet,
    Host: m.host ?? '127.0.0.1',
    Port: m.port,
    AllowEcho: true,
    AllowFind: true,
    AllowMove: true,
    AllowGet: true,
    AllowStore: true,
  };
}

export async function startOrthanc(opts: OrthancOptions = {}): Promise<Orthanc> {
  const bin = requireProgram('Orthanc', 'orthanc');
  const tmp = await makeTempDir('fiona-orthanc-');
  const dicomPort = await freePort();
  let httpPort = await freePort();
  while (httpPort === dicomPort) httpPort = await freePort();
  const aet = opts.aet ?? 'ORTHANC';
  const storage = join(tmp.dir, 'db');
  await mkdir(storage);
  const modalities = Object.fromEntries(Object.entries(opts.modalities ?? {}).map(([k, m]) => [k, modalityEntry(m)]));
  const config = {
    Name: 'fiona-test',
    StorageDirectory: storage,
    IndexDirectory: storage,
    StorageCompression: false,
    DicomAet: aet,
    DicomPort: dicomPort,
    HttpPort: httpPort,
    HttpServerEnabled: true,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    SslEnabled: false,
    DicomServerEnabled: true,
    DicomCheckCalledAet: true,
    DicomCheckModalityHost: false,
    // Tests register the peers they use; unknown callers may still echo and store.
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomModalities: modalities,
    DicomModalitiesInDatabase: false,
    DicomScuTimeout: 20,
    DicomScpTimeout: 30,
    Plugins: [],
    ConcurrentJobs: 2,
    HttpTimeout: 60,
    StableAge: 1,
    OverwriteInstances: true,
    SaveJobs: false,
    LogExportedResources: false,
    KeepAlive: false,
    ...opts.config,
  };
  const configPath = join(tmp.dir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const peer: Peer = startPeer(bin, [configPath], { cwd: tmp.dir });
  try {
    await Promise.race([
      Promise.all([waitForPort(dicomPort, 30_000), waitForPort(httpPort, 30_000)]),
      peer.proc.then((r) => {
        throw new Error(`Orthanc exited at start (code ${r.exitCode}): ${String(r.stderr).slice(-2000)}`);
      }),
    ]);
  } catch (err) {
    await stopPeer(peer);
    await tmp.cleanup();
    throw err;
  }
  const url = `http://127.0.0.1:${httpPort}`;

  async function rest<T>(method: string, path: string, body?: unknown): Promise<T> {
    const isBytes = body instanceof Uint8Array;
    const res = await fetch(`${url}${path}`, {
      method,
      body: body === undefined ? undefined : isBytes ? new Blob([body as Uint8Array<ArrayBuffer>]) : JSON.stringify(body),
      headers: isBytes ? { 'content-type': 'application/dicom' } : undefined,
    });
    if (!res.ok) throw new Error(`Orthanc ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    const type = res.headers.get('content-type') ?? '';
    if (type.includes('json')) return (await res.json()) as T;
    return Buffer.from(await res.arrayBuffer()) as T;
  }

  const api: Orthanc = {
    aet,
    dicomPort,
    httpPort,
    url,
    dir: tmp.dir,
    rest,
    async upload(bytes) {
      const data = typeof bytes === 'string' ? await readFile(bytes) : bytes;
      const r = await rest<{ ID: string; Status: string }>('POST', '/instances', data);
      if (r.Status !== 'Success' && r.Status !== 'AlreadyStored') throw new Error(`Orthanc refused an upload: ${r.Status}`);
      return r.ID;
    },
    async uploadAll(paths) {
      const ids: string[] = [];
      for (const p of paths) ids.push(await api.upload(p));
      return ids;
    },
    async fileOf(id) {
      return rest<Buffer>('GET', `/instances/${id}/file`);
    },
    async lookup(uid) {
      const r = await rest<Array<{ ID: string; Type: string }>>('POST', '/tools/lookup', Buffer.from(uid) as Uint8Array);
      return r.find((x) => x.Type === 'Instance')?.ID;
    },
    async studyInstances(studyUid) {
      const r = await rest<Array<{ ID: string; Type: string }>>('POST', '/tools/lookup', Buffer.from(studyUid) as Uint8Array);
      const study = r.find((x) => x.Type === 'Study');
      if (!study) return [];
      const list = await rest<Array<{ ID: string }>>('GET', `/studies/${study.ID}/instances`);
      return list.map((x) => x.ID);
    },
    async instances() {
      return rest<string[]>('GET', '/instances');
    },
    async addModality(name, m) {
      await rest('PUT', `/modalities/${encodeURIComponent(name)}`, modalityEntry(m));
    },
    async stop() {
      await stopPeer(peer);
      await tmp.cleanup();
    },
  };
  return api;
}
