/**
 * dicom:// destination: C-STORE of each file's original bytes (src/lib/net/scu/store.ts).
 * A file that is not DICOM, or lacks its SOP UIDs, fails at once (no retry helps); every
 * peer-side failure (refused association, rejected instance, no response) is retryable.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { isValidUid } from '../dicom/uid.js';
import {
  MEDIA_SOP_CLASS_UID,
  MEDIA_SOP_INSTANCE_UID,
  SOP_CLASS_UID,
  SOP_INSTANCE_UID,
  STUDY_INSTANCE_UID,
  scanInstanceHead,
  type InstanceHead,
} from '../net/scu/instance-head.js';
import { storeInstances, type InstanceSource, type StoreInstance, type StoreOutcome } from '../net/scu/store.js';
import type { AssociationTimeouts } from '../net/scu-common.js';
import type { DicomDestination } from './destination.js';
import type { AttemptResult, SendFile, Transport } from './types.js';

export interface DicomTransportOptions extends AssociationTimeouts {
  /** Associations in parallel. */
  associations?: number;
  /** Instances per association. */
  maxPerAssociation?: number;
}

type Described = { ok: true; instance: StoreInstance; study?: string } | { ok: false; reason: string };

/**
 * The full reader's first read of a file's head, for the files the scanner leaves to it.
 * The header up to the pixel data is a few KiB in most files (MR/CT with vendor private
 * groups: up to ~20 KiB), so 16 KiB covers nearly all of them in one read and a longer one
 * grows the read. Measured (CPU profiles of 1,000 x 130 KB): the head reads took 180-276 ms
 * with readHeaderFull's 64 KiB first read, 29-31 ms with 16 KiB.
 */
const HEAD_READ = 16 * 1024;

/**
 * What C-STORE needs to know of a file. The plain cases (File Meta, the encoding it names,
 * well-formed elements, clean UIDs: nearly every file) are answered by scanInstanceHead,
 * which reads only element headers and three UIDs; the rest by the DICOM core's reader,
 * loaded only then (see src/lib/net/scu/instance-head.ts for why).
 */
export async function describeDicomFile(path: string): Promise<Described> {
  try {
    const fd = openSync(path, 'r');
    let head: InstanceHead | undefined;
    try {
      head = scanInstanceHead(fd, fstatSync(fd).size);
    } finally {
      closeSync(fd);
    }
    if (head) return described(path, head);
    return await describeWithReader(path);
  } catch (err) {
    return { ok: false, reason: `not readable as DICOM: ${(err as Error).message}` };
  }
}

/** The full reader's answer (its checks and wording are the reference for every case). */
export async function describeWithReader(path: string): Promise<Described> {
  const { walkFile, withFile } = await import('../dicom/read.js');
  const header = await withFile(path, (fd) =>
    walkFile(fd, undefined, path, { stopBeforePixels: true, keepLimit: 1024 * 1024, firstRead: HEAD_READ, readSize: 64 * 1024, growRead: true }),
  );
  // Tags by number: a keyword would load the whole dictionary (half a second) for nothing.
  const sopClassUid = header.string(SOP_CLASS_UID) ?? header.string(MEDIA_SOP_CLASS_UID);
  const sopInstanceUid = header.string(SOP_INSTANCE_UID) ?? header.string(MEDIA_SOP_INSTANCE_UID);
  return described(path, {
    sopClassUid,
    sopInstanceUid,
    studyInstanceUid: header.string(STUDY_INSTANCE_UID),
    transferSyntaxUid: header.transferSyntaxUid,
    datasetOffset: header.datasetOffset,
    fileSize: header.fileSize ?? fstatSizeOf(path),
  });
}

function fstatSizeOf(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

/** The head's UIDs checked (a file without valid SOP UIDs cannot be stored), as the instance to send. */
function described(path: string, h: Omit<InstanceHead, 'sopClassUid' | 'sopInstanceUid'> & { sopClassUid?: string; sopInstanceUid?: string }): Described {
  const { sopClassUid, sopInstanceUid } = h;
  if (!sopClassUid || !isValidUid(sopClassUid)) return { ok: false, reason: `no valid SOP Class UID (0008,0016): ${JSON.stringify(sopClassUid ?? '')}` };
  if (!sopInstanceUid || sopInstanceUid.length > 64 || !/^[0-9.]+$/.test(sopInstanceUid)) {
    return { ok: false, reason: `no valid SOP Instance UID (0008,0018): ${JSON.stringify(sopInstanceUid ?? '')}` };
  }
  return {
    ok: true,
    study: h.studyInstanceUid,
    instance: { path, sopClassUid, sopInstanceUid, transferSyntaxUid: h.transferSyntaxUid, datasetOffset: h.datasetOffset, datasetLength: h.fileSize - h.datasetOffset },
  };
}

/**
 * How many files are described ahead of the one being sent. Describing reads synchronously
 * (page-cache reads take microseconds; the thread pool's round trip cost more), so a deeper
 * window overlaps nothing: it only delayed the first association request by 15 cold header
 * parses. The next file is described while the previous request waits for its response.
 */
const LOOKAHEAD = 2;

export class DicomTransport implements Transport {
  readonly url: string;
  private readonly described = new Map<string, Described>();

  constructor(
    private readonly dest: DicomDestination,
    private readonly opts: DicomTransportOptions = {},
  ) {
    this.url = dest.url;
  }

  private describe(path: string): Promise<Described> {
    const known = this.described.get(path);
    if (known) return Promise.resolve(known);
    return describeDicomFile(path).then((d) => {
      this.described.set(path, d);
      return d;
    });
  }

  async attempt(files: SendFile[], onResult: (r: AttemptResult) => void, signal?: AbortSignal): Promise<void> {
    const byPath = new Map<string, SendFile>();
    const studies = new Map<string, string | undefined>();
    // Headers are read one step ahead of the sending.
    const window: Array<{ file: SendFile; d: Promise<Described> }> = [];
    let next = 0;
    const fill = (): void => {
      while (window.length < LOOKAHEAD && next < files.length) {
        const file = files[next++]!;
        window.push({ file, d: this.describe(file.path) });
      }
    };
    const source: InstanceSource = {
      next: async () => {
        for (;;) {
          fill();
          const head = window.shift();
          if (!head) return undefined;
          const d = await head.d;
          if (!d.ok) {
            onResult({ file: head.file, ok: false, reason: d.reason, retryable: false, details: {} });
            continue;
          }
          byPath.set(head.file.path, head.file);
          studies.set(head.file.path, d.study);
          return d.instance;
        }
      },
    };
    await storeInstances(this.dest.peer, source, {
      ...this.opts,
      signal,
      onOutcome: (o) => onResult(toAttempt(byPath.get(o.instance.path)!, o, studies.get(o.instance.path))),
    });
  }

  async close(): Promise<void> {
    // Associations are opened and released as the sending goes.
  }
}

function toAttempt(file: SendFile, o: StoreOutcome, study: string | undefined): AttemptResult {
  const details: Record<string, unknown> = {
    study,
    sop: o.instance.sopInstanceUid,
    sopClass: o.instance.sopClassUid,
    transferSyntax: o.instance.transferSyntaxUid,
  };
  if (o.status !== undefined) details.dimseStatus = o.status;
  if (o.errorComment) details.errorComment = o.errorComment;
  const bytes = o.instance.datasetLength;
  if (o.state === 'ok') return { file, ok: true, retryable: false, details, bytes };
  if (o.state === 'warning') return { file, ok: true, warning: o.reason, retryable: false, details, bytes };
  return { file, ok: false, reason: o.reason, retryable: true, details };
}
