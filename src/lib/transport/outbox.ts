/**
 * Outbox mode for cron: every entry of the outbox (a file, or a folder of files) is one
 * item. An item moves to sent/ once every file of it was delivered and verified, to
 * failed/ (beside <name>.reason.json) once it has used up its attempts or cannot succeed.
 *
 * State on disk (<outbox>/.fiona-send/), so that a killed run loses and duplicates nothing:
 *   lock                   the pid lock: runs never overlap
 *   <key>.acked            one line per file of the item already delivered (appended as
 *                          each delivery is confirmed); a re-run sends only the others
 *   <key>.json             attempts so far and the last reason
 * Crash windows: killed after a file was confirmed but before its line was appended:
 * that file is sent again (C-STORE of the same SOP instance and SFTP's rename over the
 * same name are idempotent; SFTP first compares the remote checksum and skips the upload).
 * Killed after all lines but before the move: the re-run finds nothing left to send and
 * moves the item. Killed after the move: the state files are orphans and are removed.
 */
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, sanitizePathPart, tryLock, writeJsonAtomic } from '../site/index.js';
import { deliver, type DeliverHooks } from './deliver.js';
import { isUnfinishedName, walk, type ExpandResult } from './files.js';
import type { RetryPolicy } from './retry.js';
import type { FileResult, SendFile, Transport } from './types.js';

export interface OutboxOptions {
  outbox: string;
  sent: string;
  failed: string;
  policy: RetryPolicy;
  /** Attempts over all runs before an item goes to failed/ (default: one run's 1 + retries). */
  maxAttempts?: number;
  /** Items whose newest file is younger than this are left for the next run (a writer may be busy). */
  minAgeMs?: number;
  /** Deliver at most this many items per run. */
  maxItems?: number;
}

export interface ItemOutcome {
  item: string;
  state: 'delivered' | 'failed' | 'pending';
  /** Where the item is now. */
  path: string;
  files: number;
  bytes: number;
  attempts: number;
  reason?: string;
}

export interface OutboxHooks extends DeliverHooks {
  onItem?: (o: ItemOutcome) => void;
}

export interface OutboxReport {
  locked: boolean;
  items: ItemOutcome[];
  results: FileResult[];
}

interface ItemState {
  attempts: number;
  lastReason?: string;
  updated?: string;
}

interface Item {
  name: string;
  path: string;
  key: string;
  mtimeMs: number;
  /** <name>.md5 beside a file item: sent after it, moved with it. */
  companion?: string;
  files: SendFile[];
  companionFile?: SendFile;
  acked: Set<string>;
  state: ItemState;
  errors: ExpandResult['errors'];
}

export function stateDir(outbox: string): string {
  return join(outbox, '.fiona-send');
}

/** A file name for an item's state: readable, and unique even when sanitising merged two names. */
function keyOf(name: string): string {
  return `${sanitizePathPart(name, 'item', 80)}-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

async function newestMtime(path: string): Promise<number> {
  const st = await stat(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, e)).catch(() => 0));
  return newest;
}

async function readLines(path: string): Promise<Set<string>> {
  try {
    return new Set((await readFile(path, 'utf8')).split('\n').filter(Boolean));
  } catch {
    return new Set();
  }
}

async function readState(path: string): Promise<ItemState> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as ItemState;
    return { attempts: Number(v.attempts) || 0, lastReason: v.lastReason };
  } catch {
    return { attempts: 0 };
  }
}

/** The items of the outbox, oldest first. */
async function listItems(opts: OutboxOptions, state: string): Promise<Item[]> {
  const names = (await readdir(opts.outbox)).filter((n) => !isUnfinishedName(n));
  const nameSet = new Set(names);
  const now = Date.now();
  const items: Item[] = [];
  for (const name of names) {
    // x.zip.md5 travels with x.zip (fiona-zip-export writes both).
    if (name.endsWith('.md5') && nameSet.has(name.slice(0, -4))) continue;
    const path = join(opts.outbox, name);
    let mtimeMs: number;
    try {
      mtimeMs = await newestMtime(path);
    } catch {
      continue; // gone meanwhile
    }
    if (opts.minAgeMs && now - mtimeMs < opts.minAgeMs) continue;
    const key = keyOf(name);
    const expanded: ExpandResult = { files: [], errors: [] };
    const st = await stat(path);
    if (st.isDirectory()) await walk(path, name, expanded);
    else if (st.isFile()) expanded.files.push({ path, name });
    else expanded.errors.push({ path, reason: 'not a regular file or folder' });
    const companion = nameSet.has(`${name}.md5`) && st.isFile() ? `${name}.md5` : undefined;
    items.push({
      name,
      path,
      key,
      mtimeMs,
      companion,
      files: expanded.files,
      companionFile: companion ? { path: join(opts.outbox, companion), name: companion } : undefined,
      acked: await readLines(join(state, `${key}.acked`)),
      state: await readState(join(state, `${key}.json`)),
      errors: expanded.errors,
    });
  }
  items.sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
  return opts.maxItems ? items.slice(0, opts.maxItems) : items;
}

/** Move into dir under the same name, or name.<time> when taken; across filesystems by copy. */
async function moveInto(src: string, dir: string, name: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  let target = join(dir, name);
  try {
    await stat(target);
    target = join(dir, `${name}.${new Date().toISOString().replace(/[:.]/g, '-')}`);
  } catch {
    // free
  }
  try {
    await rename(src, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await cp(src, target, { recursive: true, errorOnExist: true, force: false, preserveTimestamps: true });
    await rm(src, { recursive: true, force: true });
  }
  await fsyncDir(dir);
  return target;
}

async function removeOrphans(state: string, live: Set<string>): Promise<void> {
  for (const f of await readdir(state)) {
    const m = /^(.*)\.(acked|json)$/.exec(f);
    if (m && !live.has(m[1]!)) await rm(join(state, f), { force: true });
  }
}

export async function runOutbox(transport: Transport, opts: OutboxOptions, hooks: OutboxHooks = {}, signal?: AbortSignal): Promise<OutboxReport> {
  const state = stateDir(opts.outbox);
  await mkdir(state, { recursive: true });
  const lock = await tryLock(join(state, 'lock'));
  if (!lock) return { locked: true, items: [], results: [] };
  try {
    const all = await listItems(opts, state);
    // Orphans: state of items that are no longer in the outbox (moved before the state was removed).
    const allNames = (await readdir(opts.outbox)).filter((n) => !isUnfinishedName(n)).map(keyOf);
    await removeOrphans(state, new Set(allNames));

    const owner = new Map<SendFile, Item>();
    const failures = new Map<Item, FileResult>();
    const attemptsUsed = new Map<Item, number>();
    const bytesSent = new Map<Item, number>();
    const results: FileResult[] = [];
    const onResult = (r: FileResult): void => {
      results.push(r);
      const item = owner.get(r.file)!;
      attemptsUsed.set(item, Math.max(attemptsUsed.get(item) ?? 0, r.attempts));
      if (r.ok) {
        bytesSent.set(item, (bytesSent.get(item) ?? 0) + (r.bytes ?? 0));
        appendFileSync(join(state, `${item.key}.acked`), `${r.file.name}\n`);
        item.acked.add(r.file.name);
      } else if (!failures.has(item) || !r.retryable) {
        failures.set(item, r);
      }
      hooks.onResult?.(r);
    };
    const deliverHooks: DeliverHooks = { onResult, onRetry: hooks.onRetry };

    // Phase 1: the items' files. Phase 2: the .md5 companions of items whose files all arrived,
    // so a watcher on the far side never sees a checksum file before its data file.
    const phase1: SendFile[] = [];
    for (const item of all) {
      for (const f of item.files) {
        if (item.acked.has(f.name)) continue;
        owner.set(f, item);
        phase1.push(f);
      }
    }
    await deliver(transport, phase1, opts.policy, deliverHooks, signal);
    const phase2: SendFile[] = [];
    for (const item of all) {
      if (item.companionFile && !failures.has(item) && item.errors.length === 0 && !item.acked.has(item.companionFile.name)) {
        owner.set(item.companionFile, item);
        phase2.push(item.companionFile);
      }
    }
    if (phase2.length > 0) await deliver(transport, phase2, opts.policy, deliverHooks, signal);

    const maxAttempts = opts.maxAttempts ?? opts.policy.retries + 1;
    const items: ItemOutcome[] = [];
    for (const item of all) {
      const allFiles = item.companionFile ? [...item.files, item.companionFile] : item.files;
      const bytes = bytesSent.get(item) ?? 0;
      const fail = failures.get(item);
      const complete = item.errors.length === 0 && allFiles.every((f) => item.acked.has(f.name));
      let outcome: ItemOutcome;
      if (complete) {
        const path = await moveInto(item.path, opts.sent, item.name);
        if (item.companion) await moveInto(join(opts.outbox, item.companion), opts.sent, item.companion);
        await rm(join(state, `${item.key}.acked`), { force: true });
        await rm(join(state, `${item.key}.json`), { force: true });
        outcome = { item: item.name, state: 'delivered', path, files: allFiles.length, bytes, attempts: item.state.attempts + (attemptsUsed.get(item) ?? 0) };
      } else {
        const attempts = item.state.attempts + (attemptsUsed.get(item) ?? 1);
        const reason = item.errors.length > 0
          ? `cannot read ${item.errors[0]!.path}: ${item.errors[0]!.reason}`
          : fail?.reason ?? (signal?.aborted ? 'stopped before it was delivered' : 'not delivered');
        const permanent = item.errors.length > 0 || (fail !== undefined && !fail.retryable);
        if (permanent || attempts >= maxAttempts) {
          const path = await moveInto(item.path, opts.failed, item.name);
          if (item.companion) await moveInto(join(opts.outbox, item.companion), opts.failed, item.companion);
          await writeJsonAtomic(`${path}.reason.json`, {
            reason,
            item: item.name,
            to: transport.url,
            attempts,
            delivered: [...item.acked],
            time: new Date().toISOString(),
          });
          await rm(join(state, `${item.key}.acked`), { force: true });
          await rm(join(state, `${item.key}.json`), { force: true });
          outcome = { item: item.name, state: 'failed', path, files: allFiles.length, bytes, attempts, reason };
        } else {
          await writeJsonAtomic(join(state, `${item.key}.json`), { attempts, lastReason: reason, updated: new Date().toISOString() });
          outcome = { item: item.name, state: 'pending', path: item.path, files: allFiles.length, bytes, attempts, reason };
        }
      }
      items.push(outcome);
      hooks.onItem?.(outcome);
    }
    return { locked: false, items, results };
  } finally {
    await lock.release();
  }
}
