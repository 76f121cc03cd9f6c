import { dictEntry, implicitVr, lookupKeyword } from './dictionary.js';
import { encodeValueFor, type Value } from './encode.js';
import type { Header } from './header.js';
import { elementHeader, itemHeader, Plan, sequenceDelimiter } from './plan.js';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { DicomParseError } from './errors.js';
import { INDEX_OPTIONS, parseBytes, readAt, walkFile } from './read.js';
import { PIXEL_DATA, formatTag } from './tags.js';
import { UNDEFINED_LENGTH, type DicomElement } from './types.js';
import { parseCharsets } from './values.js';
import { LONG_VRS } from './vr.js';
import { acquireBlock, releaseBlock, writePlanNow, type Output } from './write.js';

const SPECIFIC_CHARACTER_SET = 0x00080005;

/**
 * Byte-preserving rewrite: decide edits on the element index, then write the output as the
 * input's untouched byte ranges plus the new bytes, recomputing only the lengths an edit
 * changes (defined lengths of enclosing items and sequences, group lengths). Undefined
 * lengths stay undefined. With no change the output is the input, byte for byte.
 */

export type EditDecision =
  | { op: 'keep' }
  | { op: 'remove' }
  | { op: 'empty' }
  | { op: 'replace'; value: Value; vr?: string };

export interface ElementContext {
  element: DicomElement;
  tag: number;
  vr: string;
  /** Tags of enclosing sequences, outermost first ([] at top level). */
  path: number[];
  depth: number;
  privateCreator?: string;
  /** Decoded values (SpecificCharacterSet honoured). */
  values(): string[];
  /** Raw value bytes (read from the file when they were not kept in memory; call only for small values). */
  bytes(): Promise<Uint8Array>;
}

export interface SetEntry {
  tag: number;
  vr?: string;
  value: Value;
  /** Enclosing sequence tags: the entry goes into the first item of each, outermost first. */
  path?: number[];
}

export interface RewriteOptions {
  visit?: (ctx: ElementContext) => EditDecision | undefined | Promise<EditDecision | undefined>;
  set?: SetEntry[];
  /** File Meta changes by keyword, e.g. { MediaStorageSOPInstanceUID: '2.25.1' }. */
  meta?: Record<string, string>;
  /** fsync the output file before renaming it into place (default true). */
  fsync?: boolean;
  /** The input already read whole (and maybe parsed): it is not read or parsed again. */
  source?: RewriteSource;
}

export interface RewriteResult {
  changed: number;
  bytesIn: number;
  bytesOut: number;
}

interface Ctx {
  explicit: boolean;
  le: boolean;
  /** SpecificCharacterSet in force here (an item may set its own); undefined: the file's. */
  charsets?: readonly string[];
}

interface Insert {
  tag: number;
  vr: string;
  value: Value;
}

/** The edits decided for one file, and which lists and sequences they touch. */
class Edits {
  readonly decisions = new Map<DicomElement, EditDecision>();
  readonly inserts = new Map<DicomElement[], Insert[]>();
  /** Sequences with a change somewhere inside. */
  readonly dirtySeqs = new Set<DicomElement>();
  /** Element lists (dataset, items) with a change among their elements or below. */
  readonly dirtyLists = new Set<DicomElement[]>();
  changed = 0;

  mark(ancestors: readonly (DicomElement | DicomElement[])[]): void {
    for (const a of ancestors) {
      if (Array.isArray(a)) this.dirtyLists.add(a);
      else this.dirtySeqs.add(a);
    }
  }
}

/**
 * An item's own SpecificCharacterSet (PS3.5 6.1.2.5.4: it holds for that item), parsed;
 * undefined when the item has none. Used alike when deciding and when encoding.
 */
function itemCharsets(header: Header, list: DicomElement[], implicitLE: boolean): string[] | undefined {
  const cs = findTag(list, SPECIFIC_CHARACTER_SET);
  return cs ? parseCharsets(header.valuesOf(cs, { implicitLE, charsets: [] }).join('\\')) : undefined;
}

/** The first element of `list` with this tag (a plain loop: no closure per call). */
function findTag(list: readonly DicomElement[], tag: number): DicomElement | undefined {
  for (let k = 0; k < list.length; k++) if (list[k]!.tag === tag) return list[k];
  return undefined;
}

/** The context handed to `visit`: methods on a prototype, not two closures per element. */
class VisitContext implements ElementContext {
  readonly tag: number;
  readonly vr: string;
  readonly depth: number;
  readonly privateCreator?: string;
  constructor(
    private readonly header: Header,
    readonly element: DicomElement,
    readonly path: number[],
    private readonly implicitLE: boolean,
    private readonly charsets: readonly string[],
    private readonly readBytes: (el: DicomElement) => Promise<Uint8Array>,
  ) {
    this.tag = element.tag;
    this.vr = element.vr;
    this.depth = path.length;
    this.privateCreator = element.privateCreator;
  }

  values(): string[] {
    return this.header.valuesOf(this.element, { implicitLE: this.implicitLE, charsets: this.charsets });
  }

  bytes(): Promise<Uint8Array> {
    return this.readBytes(this.element);
  }
}

/**
 * Walk every element at every depth, asking `visit` what to do with it. Synchronous while
 * the visitor answers synchronously (most do): a promise is made only where a decision is
 * one, and the walk goes on from there once it settles. Indexed loops, not for...of: a
 * batch of 1,000 files runs most of its walks in V8's interpreter, where each step of an
 * iterator allocates its result.
 */
function decide(header: Header, opts: RewriteOptions, edits: Edits, readBytes: (el: DicomElement) => Promise<Uint8Array>): Promise<void> | undefined {
  const visit = opts.visit;
  if (!visit) return undefined;
  /** Walk `list` from element `k`; a promise when a decision (here or below) is asynchronous. */
  const walk = (list: DicomElement[], k: number, path: number[], ancestors: (DicomElement | DicomElement[])[], implicitLE: boolean, charsets: readonly string[]): Promise<void> | undefined => {
    for (; k < list.length; k++) {
      const el = list[k]!;
      const r = visit(new VisitContext(header, el, path, implicitLE, charsets, readBytes));
      if (r instanceof Promise) {
        const next = k + 1;
        return r.then((d) => {
          const inner = apply(el, d, list, path, ancestors, implicitLE, charsets);
          return inner ? inner.then(() => walk(list, next, path, ancestors, implicitLE, charsets)) : walk(list, next, path, ancestors, implicitLE, charsets);
        });
      }
      const inner = apply(el, r, list, path, ancestors, implicitLE, charsets);
      if (inner) {
        const next = k + 1;
        return inner.then(() => walk(list, next, path, ancestors, implicitLE, charsets));
      }
    }
    return undefined;
  };
  /** Record a decision, or walk into a sequence that is kept; a promise when that walk is asynchronous. */
  const apply = (el: DicomElement, d: EditDecision | undefined, list: DicomElement[], path: number[], ancestors: (DicomElement | DicomElement[])[], implicitLE: boolean, charsets: readonly string[]): Promise<void> | undefined => {
    if (d && d.op !== 'keep') {
      if (d.op === 'replace' && el.items) throw new Error(`${formatTag(el.tag)}: a sequence cannot be replaced by a value (remove or empty it)`);
      edits.decisions.set(el, d);
      edits.changed++;
      edits.mark(ancestors);
      edits.mark([list]);
      return undefined; // a removed or emptied sequence is not walked into
    }
    if (!el.items) return undefined;
    const inner = implicitLE || Boolean(el.itemsImplicit);
    const innerPath = [...path, el.tag];
    const innerAncestors = [...ancestors, list, el];
    return items(el.items, 0, innerPath, innerAncestors, inner, charsets);
  };
  /** The items of a sequence from item `j`, each with its own SpecificCharacterSet if it has one (PS3.5 6.1.2.5.4). */
  const items = (all: DicomElement[][], j: number, path: number[], ancestors: (DicomElement | DicomElement[])[], implicitLE: boolean, outer: readonly string[]): Promise<void> | undefined => {
    for (; j < all.length; j++) {
      const item = all[j]!;
      const p = walk(item, 0, path, ancestors, implicitLE, itemCharsets(header, item, implicitLE) ?? outer);
      if (p) {
        const next = j + 1;
        return p.then(() => items(all, next, path, ancestors, implicitLE, outer));
      }
    }
    return undefined;
  };
  return walk(header.elements, 0, [], [], false, header.charsets);
}

/** Apply `set`: replace where the element exists, else insert in tag order. */
function applySet(header: Header, entries: SetEntry[], edits: Edits): void {
  for (const entry of entries) {
    let list = header.elements;
    const ancestors: (DicomElement | DicomElement[])[] = [];
    for (const seqTag of entry.path ?? []) {
      const seq = findTag(list, seqTag);
      if (!seq?.items?.[0]) throw new Error(`set ${formatTag(entry.tag)}: no item in sequence ${formatTag(seqTag)} to set it in`);
      ancestors.push(list, seq);
      list = seq.items[0];
    }
    ancestors.push(list);
    const existing = findTag(list, entry.tag);
    if (existing) {
      if (existing.items) throw new Error(`set ${formatTag(entry.tag)}: it is a sequence; a value cannot replace it`);
      const prior = edits.decisions.get(existing);
      if (!prior) edits.changed++;
      edits.decisions.set(existing, { op: 'replace', value: entry.value, vr: entry.vr });
    } else {
      const vr = entry.vr ?? dictEntry(entry.tag)?.vr;
      if (!vr || vr === 'NONE') throw new Error(`set ${formatTag(entry.tag)}: give a VR (the tag is not in the dictionary)`);
      const ins = edits.inserts.get(list) ?? [];
      const at = ins.findIndex((x) => x.tag === entry.tag);
      if (at >= 0) ins[at] = { tag: entry.tag, vr, value: entry.value };
      else {
        ins.push({ tag: entry.tag, vr, value: entry.value });
        edits.changed++;
      }
      ins.sort((a, b) => a.tag - b.tag);
      edits.inserts.set(list, ins);
    }
    edits.mark(ancestors);
  }
}

/** The VR a value is encoded with: UN elements take the dictionary's VR for their value. */
function valueVr(el: { tag: number; vr: string }, given?: string): string {
  if (given) return given;
  if (el.vr === 'UN') {
    const v = implicitVr(el.tag);
    return v === 'UN' ? 'UN' : v;
  }
  return el.vr;
}

class Planner {
  constructor(
    private readonly header: Header,
    private readonly edits: Edits,
  ) {}

  private encode(vr: string, value: Value, ctx: Ctx): Uint8Array {
    return encodeValueFor(vr, value, { charsets: ctx.charsets ?? this.header.charsets, littleEndian: ctx.le });
  }

  private newElement(tag: number, headerVr: string, value: Uint8Array, ctx: Ctx): Plan {
    return new Plan().bytes(elementHeader(tag, headerVr, value.length, ctx.explicit, ctx.le, LONG_VRS.has(headerVr))).bytes(value);
  }

  /** One element of a list: copied, dropped, emptied, replaced, or rebuilt around changed items. */
  element(el: DicomElement, ctx: Ctx): Plan {
    const d = this.edits.decisions.get(el);
    if (!d || d.op === 'keep') {
      if (!this.edits.dirtySeqs.has(el)) return new Plan().copy(el.headerOffset, el.end);
      return this.sequence(el, ctx);
    }
    try {
      switch (d.op) {
        case 'remove':
          return new Plan();
        case 'empty':
          if (el.items && el.length === UNDEFINED_LENGTH) {
            // Keep the undefined-length form: header as it was, then the delimiter.
            return new Plan().copy(el.headerOffset, el.valueOffset).bytes(sequenceDelimiter(el.itemsImplicit ? true : ctx.le));
          }
          return this.newElement(el.tag, el.vr, new Uint8Array(0), ctx);
        case 'replace': {
          const headerVr = d.vr && ctx.explicit ? d.vr : el.vr;
          return this.newElement(el.tag, headerVr, this.encode(valueVr(el, d.vr), d.value, ctx), ctx);
        }
      }
    } catch (err) {
      throw new Error(`${formatTag(el.tag)}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The context inside an item: its own SpecificCharacterSet, if it has one. */
  private itemContext(list: DicomElement[], seqCtx: Ctx): Ctx {
    const charsets = itemCharsets(this.header, list, !seqCtx.explicit);
    return charsets ? { ...seqCtx, charsets } : seqCtx;
  }

  /** A sequence with changes inside: items rebuilt, defined lengths recomputed. */
  private sequence(el: DicomElement, ctx: Ctx): Plan {
    const seqCtx: Ctx = el.itemsImplicit ? { explicit: false, le: true, charsets: ctx.charsets } : ctx;
    const body = new Plan();
    let cursor = el.valueOffset;
    el.items!.forEach((list, k) => {
      const r = el.itemRanges![k]!;
      body.copy(cursor, r.offset);
      if (!this.edits.dirtyLists.has(list)) {
        body.copy(r.offset, r.end);
      } else {
        const itemCtx = this.itemContext(list, seqCtx);
        const inner = this.list(list, r.offset + 8, r.end, itemCtx);
        if (r.length === UNDEFINED_LENGTH) body.copy(r.offset, r.offset + 8);
        else body.bytes(itemHeader(inner.length, itemCtx.le));
        body.append(inner);
      }
      cursor = r.end;
    });
    body.copy(cursor, el.end);
    const out = new Plan();
    if (el.length === UNDEFINED_LENGTH) out.copy(el.headerOffset, el.valueOffset);
    else out.bytes(elementHeader(el.tag, el.vr, body.length, ctx.explicit, ctx.le, true));
    return out.append(body);
  }

  /**
   * A list of elements between start and end: gaps and trailing bytes (item delimiters,
   * stray bytes) copied as they are, inserts placed in tag order, group lengths recomputed.
   */
  list(list: DicomElement[], start: number, end: number, ctx: Ctx): Plan {
    const inserts = this.edits.inserts.get(list) ?? [];
    // Group lengths need each element's new size; without them, build the plan directly.
    let hasGroupLength = false;
    for (let j = 0; j < list.length && !hasGroupLength; j++) hasGroupLength = (list[j]!.tag & 0xffff) === 0;
    const parts: { tag: number; plan: Plan; el?: DicomElement }[] = [];
    const out = new Plan();
    const add = (tag: number, plan: Plan, el?: DicomElement): void => {
      if (hasGroupLength) parts.push({ tag, plan, el });
      else out.append(plan);
    };
    let cursor = start;
    let k = 0;
    const insertUpTo = (limit: number): void => {
      while (k < inserts.length && inserts[k]!.tag < limit) {
        const ins = inserts[k++]!;
        let value: Uint8Array;
        try {
          value = this.encode(ins.vr, ins.value, ctx);
        } catch (err) {
          throw new Error(`${formatTag(ins.tag)}: ${(err as Error).message}`, { cause: err });
        }
        add(ins.tag, this.newElement(ins.tag, ins.vr, value, ctx));
      }
    };
    for (let j = 0; j < list.length; j++) {
      const el = list[j]!;
      if (k < inserts.length) insertUpTo(el.tag);
      if (!hasGroupLength && !this.edits.decisions.has(el) && !this.edits.dirtySeqs.has(el)) {
        out.copy(cursor, el.end); // the gap before it and the element, as they are
        cursor = el.end;
        continue;
      }
      if (el.headerOffset > cursor) add(-1, new Plan().copy(cursor, el.headerOffset));
      add(el.tag, this.element(el, ctx), el);
      cursor = el.end;
    }
    insertUpTo(Infinity);
    if (end > cursor) add(-1, new Plan().copy(cursor, end));
    if (hasGroupLength) {
      this.fixGroupLengths(parts, ctx);
      for (const p of parts) out.append(p.plan);
    }
    return out;
  }

  /** Old files carry group length elements (gggg,0000); keep them true when a group's size changes. */
  private fixGroupLengths(parts: { tag: number; plan: Plan; el?: DicomElement }[], ctx: Ctx): void {
    for (const gl of parts) {
      if (!gl.el || (gl.tag & 0xffff) !== 0 || gl.tag < 0) continue;
      const group = gl.tag >>> 16;
      let size = 0;
      let original = 0;
      for (const p of parts) {
        if (p.tag < 0 || p === gl || p.tag >>> 16 !== group) continue;
        size += p.plan.length;
        original += p.el ? p.el.end - p.el.headerOffset : 0;
      }
      const changed = parts.some((p) => p.tag >>> 16 === group && p !== gl && (!p.el || this.edits.decisions.has(p.el) || this.edits.dirtySeqs.has(p.el)));
      if (!changed || size === original) continue;
      const value = new Uint8Array(4);
      new DataView(value.buffer).setUint32(0, size, ctx.le);
      gl.plan = this.newElement(gl.tag, 'UL', value, ctx);
    }
  }
}

/** File Meta keywords without the dictionary (loading it costs ~70 ms, per worker thread). */
const META_KEYWORDS: Record<string, { tag: number; vr: string } | undefined> = {
  MediaStorageSOPClassUID: { tag: 0x00020002, vr: 'UI' },
  MediaStorageSOPInstanceUID: { tag: 0x00020003, vr: 'UI' },
  TransferSyntaxUID: { tag: 0x00020010, vr: 'UI' },
  ImplementationClassUID: { tag: 0x00020012, vr: 'UI' },
  ImplementationVersionName: { tag: 0x00020013, vr: 'SH' },
  SourceApplicationEntityTitle: { tag: 0x00020016, vr: 'AE' },
  SendingApplicationEntityTitle: { tag: 0x00020017, vr: 'AE' },
  ReceivingApplicationEntityTitle: { tag: 0x00020018, vr: 'AE' },
  PrivateInformationCreatorUID: { tag: 0x00020100, vr: 'UI' },
  PrivateInformation: { tag: 0x00020102, vr: 'OB' },
};

/** File Meta rebuilt with changes by keyword; its group length recomputed. */
function planMeta(header: Header, changes: Record<string, string>): Plan {
  const meta = header.meta;
  if (meta.length === 0) throw new Error('the file has no File Meta to change');
  const ctx: Ctx = { explicit: true, le: true };
  const replaced = new Map<number, Uint8Array>();
  for (const [keyword, value] of Object.entries(changes)) {
    const entry = META_KEYWORDS[keyword] ?? lookupKeyword(keyword);
    if (!entry || entry.tag >>> 16 !== 0x0002) throw new Error(`not a File Meta keyword: ${keyword}`);
    replaced.set(entry.tag, elementBytes(entry.tag, entry.vr, encodeValueFor(entry.vr, value, { charsets: [], littleEndian: true }), ctx));
  }
  const body = new Plan();
  const tags = new Set<number>();
  let groupLength: DicomElement | undefined;
  const pending = [...replaced.entries()].filter(([t]) => !meta.some((e) => e.tag === t)).sort((a, b) => a[0] - b[0]);
  let k = 0;
  for (const el of meta) {
    tags.add(el.tag);
    while (k < pending.length && pending[k]![0] < el.tag) body.bytes(pending[k++]![1]);
    if (el.tag === 0x00020000) {
      groupLength = el;
      continue;
    }
    const r = replaced.get(el.tag);
    if (r) body.bytes(r);
    else body.copy(el.headerOffset, el.end);
  }
  while (k < pending.length) body.bytes(pending[k++]![1]);
  const out = new Plan().copy(0, meta[0]!.headerOffset);
  if (groupLength) {
    const v = new Uint8Array(4);
    new DataView(v.buffer).setUint32(0, body.length, true);
    out.bytes(elementBytes(0x00020000, 'UL', v, ctx));
  }
  return out.append(body);
}

function elementBytes(tag: number, vr: string, value: Uint8Array, ctx: Ctx): Uint8Array {
  const h = elementHeader(tag, vr, value.length, ctx.explicit, ctx.le, LONG_VRS.has(vr));
  const out = new Uint8Array(h.length + value.length);
  out.set(h);
  out.set(value, h.length);
  return out;
}

/**
 * A file already read whole, so the rewrite neither reads nor parses it again: `bytes` is
 * the whole file; `header` (optional) its full index from parseBytes(bytes) without
 * stopBeforePixels. The caller keeps the bytes unchanged until the rewrite returns.
 */
export interface RewriteSource {
  bytes: Uint8Array;
  header?: Header;
}

/**
 * Rewrite a file with edits. `output` is a path (written to a temp name beside it, fsynced,
 * renamed; it may be the input itself) or a writable stream. With `opts.source` the input
 * is those bytes (`input` only names it in errors).
 */
export async function rewriteDicom(input: string, output: Output, opts: RewriteOptions): Promise<RewriteResult> {
  // A synchronous throw from rewriteSourceNow is this async function's rejection.
  if (opts.source) return rewriteSourceNow(input, output, opts.source, opts);
  const fd = openSync(input, 'r');
  // The head (the whole file, up to 1 MiB) is read into a borrowed block, once; a larger
  // file is walked in windows after it.
  const block = acquireBlock();
  try {
    let header: Header;
    try {
      header = walkFile(fd, undefined, input, { ...INDEX_OPTIONS, headBlock: block, firstRead: block.length });
    } catch (err) {
      throw err instanceof DicomParseError ? err.withFile(input) : err;
    }
    const size = header.inflated ? fstatSync(fd).size : header.fileSize!;
    return await rewriteIndexedNow(header, size, fd, undefined, output, opts);
  } finally {
    closeSync(fd);
    releaseBlock(block);
  }
}

/**
 * The same rewrite from a file held in memory (the caller read it whole, and may have parsed
 * it): rewriteDicom(input, output, { ...opts, source }) without a promise when none is needed:
 * the result is returned synchronously when the visitor answered synchronously and the
 * output was written synchronously (a small output to a path or a ByteSink), else a
 * promise of it. Errors are thrown, or rejected once a promise was returned.
 * For callers that rewrite many files held in memory (rewriteFiles).
 */
export function rewriteSourceNow(input: string, output: Output, source: RewriteSource, opts: RewriteOptions): RewriteResult | Promise<RewriteResult> {
  let header = source.header;
  if (header?.stoppedAtPixels) throw new Error('rewrite source: the header must index the whole file (parse without stopBeforePixels)');
  if (!header) {
    try {
      header = parseBytes(source.bytes, { file: input });
    } catch (err) {
      throw err instanceof DicomParseError ? err.withFile(input) : err;
    }
  }
  return rewriteIndexedNow(header, source.bytes.length, undefined, source.bytes, output, opts);
}

/**
 * Decide and write: the input's bytes come from the header's windows, else from `fd`; a
 * verbatim copy of a deflated file (whose windows hold the inflated stream) from `whole`.
 * Synchronous where the visitor and the writer are.
 */
function rewriteIndexedNow(header: Header, size: number, fd: number | undefined, whole: Uint8Array | undefined, output: Output, opts: RewriteOptions): RewriteResult | Promise<RewriteResult> {
  const readValue = async (el: DicomElement): Promise<Uint8Array> => {
    if (el.length === UNDEFINED_LENGTH) return new Uint8Array(0);
    // A copy: the window may be a borrowed block that is reused after this rewrite.
    const inMemory = header.bytesOf(el);
    if (inMemory) return new Uint8Array(inMemory);
    if (fd === undefined) throw new Error(`${formatTag(el.tag)}: value at offset ${el.valueOffset} is not in memory`);
    return readAt(fd, el.valueOffset, el.length);
  };
  const edits = new Edits();
  const deciding = decide(header, opts, edits, readValue);
  if (deciding) return deciding.then(() => planAndWrite(header, size, fd, whole, output, opts, edits));
  return planAndWrite(header, size, fd, whole, output, opts, edits);
}

/** The edits decided: apply `set`, plan, write. */
function planAndWrite(header: Header, size: number, fd: number | undefined, whole: Uint8Array | undefined, output: Output, opts: RewriteOptions, edits: Edits): RewriteResult | Promise<RewriteResult> {
  if (opts.set?.length) applySet(header, opts.set, edits);
  const metaChanges = opts.meta && Object.keys(opts.meta).length > 0 ? opts.meta : undefined;
  const changed = edits.changed + (metaChanges ? Object.keys(metaChanges).length : 0);
  const fsync = opts.fsync ?? true;
  let written: number | Promise<number>;
  if (changed === 0) {
    const plan = whole ? new Plan().bytes(whole) : new Plan().copy(0, size);
    written = writePlanNow(fd, header, plan, undefined, output, { fsync, verbatim: true });
  } else {
    const ctx: Ctx = { explicit: header.explicit, le: header.littleEndian };
    const planner = new Planner(header, edits);
    const head = metaChanges ? planMeta(header, metaChanges) : new Plan().copy(0, header.datasetOffset);
    const datasetEnd = header.inflated ? header.store.windows[0]!.bytes.length : size;
    const body = edits.dirtyLists.has(header.elements) ? planner.list(header.elements, header.datasetOffset, datasetEnd, ctx) : new Plan().copy(header.datasetOffset, datasetEnd);
    // The caller's source outlives the rewrite: a sink that can keep a reference takes the
    // pixel data value (most of the file) that way instead of copying it.
    const px = whole && !header.inflated ? header.element(PIXEL_DATA) : undefined;
    const keep = px && px.length !== UNDEFINED_LENGTH ? { start: px.valueOffset, end: px.end } : undefined;
    written = writePlanNow(fd, header, head, body, output, { fsync, verbatim: false, keep });
  }
  if (typeof written === 'number') return { changed, bytesIn: size, bytesOut: written };
  return written.then((bytesOut) => ({ changed, bytesIn: size, bytesOut }));
}
