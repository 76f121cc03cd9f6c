/**
 * Pipeline mode: paths and events arrive on stdin (from fiona-anonymize, fiona-zip-export,
 * fiona-receive ...) and are delivered in small batches: a batch closes after `maxBatch`
 * items or `idleMs` without a new line, so a long-running pipe delivers as it goes and a
 * finite input is delivered at its end. Batches run one after another.
 */
import type { Readable } from 'node:stream';
import { readInput, type BaseEvent } from '../events/index.js';
import { expandPaths } from './files.js';
import type { SendFile } from './types.js';

export interface StreamItem {
  files: SendFile[];
  /** The event the path came from, if any (its sourceStudy feeds delivery records). */
  event?: BaseEvent;
}

export interface StreamHooks {
  /** Deliver a batch; resolves when done (the next batch waits for it). */
  deliverBatch(files: SendFile[], sources: Map<SendFile, BaseEvent | undefined>): Promise<void>;
  /** A line that is no path: passed on or reported by the caller. */
  onOther(item: { event?: BaseEvent; text?: string; reason?: string }): void;
  /** A path that could not be read. */
  onUnreadable(path: string, reason: string): void;
}

export async function deliverStream(
  input: Readable,
  hooks: StreamHooks,
  opts: { maxBatch?: number; idleMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const maxBatch = opts.maxBatch ?? 200;
  const idleMs = opts.idleMs ?? 500;
  let pending: Array<{ path: string; event?: BaseEvent }> = [];
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    chain = chain.then(async () => {
      const files: SendFile[] = [];
      const sources = new Map<SendFile, BaseEvent | undefined>();
      for (const { path, event } of batch) {
        const { files: found, errors } = await expandPaths([path]);
        for (const e of errors) hooks.onUnreadable(e.path, e.reason);
        for (const f of found) {
          files.push(f);
          sources.set(f, event);
        }
      }
      if (files.length > 0) await hooks.deliverBatch(files, sources);
    });
  };

  for await (const item of readInput(input)) {
    if (opts.signal?.aborted) break;
    let path: string | undefined;
    let event: BaseEvent | undefined;
    if (item.kind === 'path' || item.kind === 'fiona') path = item.path;
    else if (item.kind === 'event') {
      event = item.event;
      if (typeof event.path === 'string' && event.path.startsWith('/')) path = event.path;
      else hooks.onOther({ event });
    } else hooks.onOther({ text: item.text, reason: item.reason });
    if (path === undefined) continue;
    pending.push({ path, event });
    if (pending.length >= maxBatch) flush();
    else {
      if (timer) clearTimeout(timer);
      timer = setTimeout(flush, idleMs);
    }
  }
  flush();
  await chain;
}
