/**
 * Where a received instance ends up, and what the sender is told:
 * - whole and consistent: renamed into archive/<Study>/<Series>/<SOP>.dcm (atomic; with two
 *   associations sending the same SOP Instance UID at once, each wrote its own temp file and
 *   the last complete one to be renamed wins: the file is always one whole instance);
 * - incomplete, inconsistent or with UIDs unfit for a path: quarantine/ with a reason file,
 *   a failure status;
 * - cut short by the association ending: quarantine/ (nothing to answer);
 * - the disk failed: temp file removed, Out of Resources / Processing Failure.
 */
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makeEvent, type BaseEvent } from '../events/index.js';
import { UnsafeUidError, archivePath, fsyncDir, quarantineFile, tempNameFor, type SiteLayout } from '../site/index.js';
import { Status } from '../net/scp/command.js';
import type { AssociationInfo, StoreReply, StoreRequest } from '../net/scp/types.js';
import { TAG, isOutOfSpace, type ReceivedInstance } from './incoming.js';

export interface PlacementOptions {
  layout: SiteLayout;
  fsync: boolean;
  onEvent(event: BaseEvent): void;
}

interface Problem {
  status: number;
  reason: string;
}

function origin(a: AssociationInfo): Record<string, string> {
  return { calling: a.callingAet, called: a.calledAet, peer: a.peer, association: a.id };
}

/** The sender sees at most 64 characters of Error Comment. */
function comment(reason: string): string {
  return reason.length <= 64 ? reason : `${reason.slice(0, 61)}...`;
}

/** Is the instance whole, and does it say what its C-STORE request said? */
export function checkInstance(inst: ReceivedInstance): Problem | undefined {
  const { walk, request } = inst;
  const cmd = request.command;
  if (walk.problem) return { status: Status.CannotUnderstand, reason: `incomplete or malformed data set: ${walk.problem}` };
  const sop = walk.values.get(TAG.SOPInstanceUID);
  const sopClass = walk.values.get(TAG.SOPClassUID);
  if (!sop) return { status: Status.CannotUnderstand, reason: 'the data set has no SOPInstanceUID (0008,0018)' };
  if (cmd.affectedSopInstanceUid !== sop) {
    return {
      status: Status.DataSetMismatch,
      reason: `SOPInstanceUID ${JSON.stringify(sop)} differs from the request's AffectedSOPInstanceUID ${JSON.stringify(cmd.affectedSopInstanceUid ?? '')}`,
    };
  }
  if (sopClass !== undefined && cmd.affectedSopClassUid !== sopClass) {
    return {
      status: Status.DataSetMismatch,
      reason: `SOPClassUID ${JSON.stringify(sopClass)} differs from the request's AffectedSOPClassUID ${JSON.stringify(cmd.affectedSopClassUid ?? '')}`,
    };
  }
  if (cmd.affectedSopClassUid !== request.abstractSyntax) {
    return {
      status: Status.DataSetMismatch,
      reason: `AffectedSOPClassUID ${JSON.stringify(cmd.affectedSopClassUid ?? '')} was sent on a presentation context for ${request.abstractSyntax}`,
    };
  }
  return undefined;
}

export class InstancePlacement {
  constructor(private readonly opts: PlacementOptions) {}

  /**
   * The fast path, all on the main thread: a whole, consistent instance is renamed into the
   * archive and announced. Returns undefined when the instance needs the slow path (a check
   * failed, --fsync, or the rename did not work): then call place().
   */
  placeSync(inst: ReceivedInstance): StoreReply | undefined {
    if (this.opts.fsync || checkInstance(inst)) return undefined;
    let target: string;
    try {
      target = this.target(inst);
      moveIntoPlaceSync(inst.tempPath, target);
    } catch {
      return undefined;
    }
    this.announce(inst, target);
    return { status: Status.Success };
  }

  /** The bytes are on disk in tempPath: check, then archive or quarantine. */
  async place(inst: ReceivedInstance): Promise<StoreReply> {
    const problem = checkInstance(inst);
    if (problem) return this.quarantine(inst, problem);
    let target: string;
    try {
      target = this.target(inst);
    } catch (err) {
      if (!(err instanceof UnsafeUidError)) throw err;
      return this.quarantine(inst, { status: Status.CannotUnderstand, reason: err.message });
    }
    try {
      await moveIntoPlace(inst.tempPath, target, this.opts.fsync);
    } catch (err) {
      await rm(inst.tempPath, { force: true }).catch(() => undefined);
      return this.failed(inst.request, err, inst.datasetBytes);
    }
    this.announce(inst, target);
    return { status: Status.Success };
  }

  /** archive/<Study>/<Series>/<SOP>.dcm; throws UnsafeUidError for a UID unfit for a path. */
  private target(inst: ReceivedInstance): string {
    return archivePath(
      this.opts.layout,
      inst.walk.values.get(TAG.StudyInstanceUID),
      inst.walk.values.get(TAG.SeriesInstanceUID),
      inst.walk.values.get(TAG.SOPInstanceUID),
    );
  }

  private announce(inst: ReceivedInstance, target: string): void {
    const a = inst.request.association;
    this.opts.onEvent(
      makeEvent('stored', {
        path: target,
        study: inst.walk.values.get(TAG.StudyInstanceUID) as string,
        series: inst.walk.values.get(TAG.SeriesInstanceUID) as string,
        sop: inst.walk.values.get(TAG.SOPInstanceUID) as string,
        sopClass: inst.request.command.affectedSopClassUid ?? '',
        transferSyntax: inst.request.transferSyntax,
        calling: a.callingAet,
        called: a.calledAet,
        peer: a.peer,
        bytes: inst.fileBytes,
        association: a.id,
      }),
    );
  }

  /** The association ended mid-instance: keep what came, with the reason. */
  async partial(request: StoreRequest, tempPath: string, reason: string, datasetBytes: number): Promise<void> {
    try {
      const q = await quarantineFile(this.opts.layout.quarantine, tempPath, reason, this.details(request, datasetBytes));
      this.opts.onEvent(makeEvent('quarantined', { path: q.path, reason, sop: request.command.affectedSopInstanceUid ?? '', ...origin(request.association) }));
    } catch (err) {
      await rm(tempPath, { force: true }).catch(() => undefined);
      this.opts.onEvent(makeEvent('error', { message: `could not quarantine a partial instance: ${(err as Error).message}`, ...origin(request.association) }));
    }
  }

  /** Writing failed: say so, and choose the status the sender gets. */
  failed(request: StoreRequest, err: unknown, datasetBytes: number): StoreReply {
    const full = isOutOfSpace(err);
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const message = `cannot write ${request.command.affectedSopInstanceUid ?? 'an instance'} (${datasetBytes} bytes) under ${this.opts.layout.root}: ${(err as Error)?.message ?? String(err)}`;
    this.opts.onEvent(makeEvent('error', { message, code: code ?? '', sop: request.command.affectedSopInstanceUid ?? '', ...origin(request.association) }));
    return {
      status: full ? Status.OutOfResources : Status.ProcessingFailure,
      comment: comment(full ? 'out of disk space on the receiver' : `receiver cannot write: ${code ?? 'I/O error'}`),
    };
  }

  private async quarantine(inst: ReceivedInstance, problem: Problem): Promise<StoreReply> {
    try {
      const q = await quarantineFile(this.opts.layout.quarantine, inst.tempPath, problem.reason, {
        ...this.details(inst.request, inst.datasetBytes),
        status: `0x${problem.status.toString(16).padStart(4, '0')}`,
      });
      this.opts.onEvent(
        makeEvent('quarantined', {
          path: q.path,
          reason: problem.reason,
          sop: inst.request.command.affectedSopInstanceUid ?? '',
          ...origin(inst.request.association),
        }),
      );
    } catch (err) {
      await rm(inst.tempPath, { force: true }).catch(() => undefined);
      return this.failed(inst.request, err, inst.datasetBytes);
    }
    return { status: problem.status, comment: comment(problem.reason) };
  }

  private details(request: StoreRequest, datasetBytes: number): Record<string, unknown> {
    return {
      ...origin(request.association),
      sopClass: request.command.affectedSopClassUid ?? '',
      sopInstance: request.command.affectedSopInstanceUid ?? '',
      transferSyntax: request.transferSyntax,
      datasetBytes,
    };
  }
}

/** moveIntoPlace without fsync, on the main thread. */
export function moveIntoPlaceSync(tmp: string, target: string): void {
  try {
    renameSync(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EXDEV') throw err;
    if (code === 'ENOENT') {
      mkdirSync(dirname(target), { recursive: true });
      renameSync(tmp, target);
    } else {
      const near = tempNameFor(target);
      copyFileSync(tmp, near);
      renameSync(near, target);
      rmSync(tmp, { force: true });
    }
  }
}

/**
 * rename() into the archive, creating the folders on first use (ENOENT), copying when the
 * archive is on another filesystem (EXDEV). With fsync, the folder entries are synced too.
 */
export async function moveIntoPlace(tmp: string, target: string, fsync: boolean): Promise<void> {
  let created = false;
  try {
    await rename(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await mkdir(dirname(target), { recursive: true });
      created = true;
      await rename(tmp, target);
    } else if (code === 'EXDEV') {
      const near = tempNameFor(target);
      await copyFile(tmp, near);
      await rename(near, target);
      await rm(tmp, { force: true });
    } else {
      throw err;
    }
  }
  if (fsync) {
    await fsyncDir(dirname(target));
    if (created) {
      await fsyncDir(dirname(dirname(target)));
      await fsyncDir(dirname(dirname(dirname(target))));
    }
  }
}
