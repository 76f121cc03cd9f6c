/**
 * The receiver's store handler: each C-STORE becomes an IncomingInstance writing into the
 * site's `.arrived/`, placed by InstancePlacement. Also the start-up sweep of `.arrived/`:
 * files left there by a receiver that died mid-instance (kill -9, power cut) are moved to
 * quarantine with a reason, so nothing half-received is ever mistaken for an instance and
 * nothing received is silently deleted.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeEvent, type BaseEvent } from '../events/index.js';
import { processAlive, quarantineFile, type SiteLayout } from '../site/index.js';
import { FIONA_IMPLEMENTATION_CLASS_UID, fionaImplementationVersion } from '../net/dcmjs-dimse.js';
import type { StoreHandler, StoreRequest, StoreSink } from '../net/scp/types.js';
import { IncomingInstance } from './incoming.js';
import { InstancePlacement } from './placement.js';
import { TempFiles } from './temp-files.js';

export interface SiteStoreOptions {
  layout: SiteLayout;
  /** fsync each file and its folder before answering (slower; survives a power cut). */
  fsync: boolean;
  implementationClassUid: string;
  implementationVersionName: string;
  onEvent(event: BaseEvent): void;
  /** Keep a data set in memory up to this many bytes before writing it (default 4 MiB). */
  spillBytes?: number;
  /** Hold the sender when this many bytes wait for the disk (default 8 MiB). */
  highWaterBytes?: number;
}

export const DEFAULT_SPILL_BYTES = 4 * 1024 * 1024;
export const DEFAULT_HIGH_WATER_BYTES = 8 * 1024 * 1024;

/** A SiteStore whose files' File Meta name fiona's implementation (class UID and version). */
export function createSiteStore(opts: Omit<SiteStoreOptions, 'implementationClassUid' | 'implementationVersionName'>): SiteStore {
  return new SiteStore({ ...opts, implementationClassUid: FIONA_IMPLEMENTATION_CLASS_UID, implementationVersionName: fionaImplementationVersion() });
}

export class SiteStore implements StoreHandler {
  private readonly placement: InstancePlacement;
  private readonly temps: TempFiles;

  constructor(private readonly opts: SiteStoreOptions) {
    this.placement = new InstancePlacement({ layout: opts.layout, fsync: opts.fsync, onEvent: opts.onEvent });
    this.temps = new TempFiles(opts.layout.arrived);
    this.temps.refill();
  }

  begin(request: StoreRequest): StoreSink {
    return new IncomingInstance(
      request,
      {
        temp: this.temps.take(),
        fsync: this.opts.fsync,
        spillBytes: this.opts.spillBytes ?? DEFAULT_SPILL_BYTES,
        highWaterBytes: this.opts.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
        implementationClassUid: this.opts.implementationClassUid,
        implementationVersionName: this.opts.implementationVersionName,
      },
      this.placement,
    );
  }

  /** Remove the temp files made ahead and not used. */
  close(): void {
    this.temps.close();
  }
}

/**
 * Move what dead receivers left in .arrived/ to quarantine. Files of a live receiver (another
 * fiona-receive on the same site) are left alone. Returns the events to report.
 */
export async function sweepArrived(layout: SiteLayout): Promise<BaseEvent[]> {
  const events: BaseEvent[] = [];
  let names: string[];
  try {
    names = await readdir(layout.arrived);
  } catch {
    return events;
  }
  for (const name of names) {
    const pid = /^(\d+)-/.exec(name)?.[1];
    if (pid !== undefined && Number(pid) !== process.pid && processAlive(Number(pid))) continue;
    // Empty: a temp file made ahead and never used; nothing was received into it.
    const size = await stat(join(layout.arrived, name)).then((st) => st.size, () => -1);
    if (size === 0) {
      await rm(join(layout.arrived, name), { force: true });
      continue;
    }
    const reason = pid
      ? `left in .arrived/ by receiver pid ${pid}, which stopped before the instance was complete`
      : 'unknown file in .arrived/';
    try {
      const q = await quarantineFile(layout.quarantine, join(layout.arrived, name), reason);
      events.push(makeEvent('quarantined', { path: q.path, reason }));
    } catch (err) {
      events.push(makeEvent('error', { message: `cannot quarantine ${join(layout.arrived, name)}: ${(err as Error).message}` }));
    }
  }
  return events;
}
