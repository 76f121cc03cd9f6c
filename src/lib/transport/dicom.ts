/**
 * dicom:// destination: C-STORE of each file's original bytes (src/lib/net/scu/store.ts).
 * A file that is not DICOM, or lacks its SOP UIDs, fails at once (no retry helps); every
 * peer-side failure (refused association, rejected instance, no response) is retryable.
 */
import { stat } from 'node:fs/promises';
import { isValidUid, readHeader } from '../dicom/index.js';
import { storeInstances, type StoreInstance, type StoreOutcome } from '../net/scu/store.js';
import type { AssociationTimeouts } from '../net/scu/association.js';
import type { DicomDestination } from './destination.js';
import type { AttemptResult, SendFile, Transport } from './types.js';

export interface DicomTransportOptions extends AssociationTimeouts {
  /** Associations in parallel. */
  associations?: number;
  /** Instances per association. */
  maxPerAssociation?: number;
}

type Described = { ok: true; instance: StoreInstance; study?: string } | { ok: false; reason: string };

/** What C-STORE needs to know of a file, from its header. */
export async function describeDicomFile(path: string): Promise<Described> {
  try {
    const header = await readHeader(path);
    const sopClassUid = header.string('SOPClassUID') ?? header.string('MediaStorageSOPClassUID');
    const sopInstanceUid = header.string('SOPInstanceUID') ?? header.string('MediaStorageSOPInstanceUID');
    if (!sopClassUid || !isValidUid(sopClassUid)) return { ok: false, reason: `no valid SOP Class UID (0008,0016): ${JSON.stringify(sopClassUid ?? '')}` };
    if (!sopInstanceUid || sopInstanceUid.length > 64 || !/^[0-9.]+$/.test(sopInstanceUid)) {
      return { ok: false, reason: `no valid SOP Instance UID (0008,0018): ${JSON.stringify(sopInstanceUid ?? '')}` };
    }
    const { size } = await stat(path);
    return {
      ok: true,
      study: header.string('StudyInstanceUID'),
      instance: {
        path,
        sopClassUid,
        sopInstanceUid,
        transferSyntaxUid: header.transferSyntaxUid,
        datasetOffset: header.datasetOffset,
        datasetLength: size - header.datasetOffset,
      },
    };
  } catch (err) {
    return { ok: false, reason: `not readable as DICOM: ${(err as Error).message}` };
  }
}

/** Run fn over items with at most `limit` at a time, keeping order of results. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}

export class DicomTransport implements Transport {
  readonly url: string;
  private readonly described = new Map<string, Described>();

  constructor(
    private readonly dest: DicomDestination,
    private readonly opts: DicomTransportOptions = {},
  ) {
    this.url = dest.url;
  }

  async attempt(files: SendFile[], onResult: (r: AttemptResult) => void, signal?: AbortSignal): Promise<void> {
    const byPath = new Map<string, SendFile>();
    const instances: StoreInstance[] = [];
    const studies = new Map<string, string | undefined>();
    const described = await mapLimit(files, 8, async (f) => {
      let d = this.described.get(f.path);
      if (!d) {
        d = await describeDicomFile(f.path);
        this.described.set(f.path, d);
      }
      return d;
    });
    files.forEach((file, i) => {
      const d = described[i]!;
      if (!d.ok) {
        onResult({ file, ok: false, reason: d.reason, retryable: false, details: {} });
        return;
      }
      byPath.set(file.path, file);
      studies.set(file.path, d.study);
      instances.push(d.instance);
    });
    if (instances.length === 0) return;
    await storeInstances(this.dest.peer, instances, {
      ...this.opts,
      signal,
      onOutcome: (o) => onResult(toAttempt(byPath.get(o.instance.path)!, o, studies.get(o.instance.path))),
    });
  }

  async close(): Promise<void> {
    // Associations are opened and released per batch.
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
