import { type EditDecision, type ElementContext, formatTag, lookupTag } from '../dicom/index.js';
import { PIXEL_DATA } from '../dicom/tags.js';
import { decodeStrings } from '../dicom/values.js';
import { type Operation, isBinaryVr, operationFor, resolveActionCode, unlistedRule } from './actions.js';
import type { Scrubber } from './clean.js';
import { shiftValues } from './dates.js';
import { dummyFor } from './dummy.js';
import type { ProjectRules, RewriteRule } from './project.js';
import { type ActionCode, type ProfileTable, type TableRule, ruleForTag } from './table.js';
import type { UidMapper } from './uids.js';

/** What the visitor needs that is the same for every file of a run: compiled once. */
export interface CompiledRules {
  rules: ProjectRules;
  table: ProfileTable;
  keep: ReadonlySet<number>;
  remove: ReadonlySet<number>;
  rewrites: ReadonlyMap<number, RewriteRule[]>;
  safePrivate: ProjectRules['keepPrivate'];
  overlayRule: TableRule | undefined;
  /** Table rows by tag (null: not listed), and the action code of each row under the options. */
  ruleCache: Map<number, TableRule | null>;
  codeCache: Map<TableRule, ActionCode>;
}

export function compileRules(rules: ProjectRules, table: ProfileTable): CompiledRules {
  const rewrites = new Map<number, RewriteRule[]>();
  for (const r of rules.rewrite) rewrites.set(r.tag, [...(rewrites.get(r.tag) ?? []), r]);
  return {
    rules,
    table,
    keep: new Set(rules.keep),
    remove: new Set(rules.remove),
    rewrites,
    safePrivate: rules.options.has('retainSafePrivate') ? rules.keepPrivate : [],
    overlayRule: table.byTag.get(OVERLAY_DATA_RULE_TAG) ?? table.ranges.find((r) => r.keyword === 'OverlayData'),
    ruleCache: new Map(),
    codeCache: new Map(),
  };
}

/** What changes from file to file. */
export interface VisitorInput {
  uids: UidMapper | undefined;
  /** Days to shift DA/DT by (modified-dates option), undefined otherwise. */
  dateOffset: number | undefined;
  scrubber: Scrubber;
  /** Top-level tags the rewrite's `set` writes: the visitor leaves them to it. */
  setTags: ReadonlySet<number>;
  /** Replacement pixel data (masked), written at top level. */
  maskedPixels?: Uint8Array;
  charsets: readonly string[];
  littleEndian: boolean;
}

export interface VisitNotes {
  /** Top-level decisions by tag (for the leak check: which values were not kept). */
  topLevel: Map<number, Operation | 'set' | 'private'>;
  /** Original UIDs that were replaced, at any depth. */
  replacedUids: Set<string>;
  warnings: string[];
}

type SequenceMode = 'none' | 'dummy' | 'clean';

/** Free-text VRs: what a D or C sequence's unlisted elements are dummied or cleaned in. */
const FREE_TEXT_VRS = new Set(['LO', 'LT', 'SH', 'ST', 'UT', 'UC']);

/** Code attributes (0008,0100)-(0008,012F): coded entries do not identify (PS3.15 E.1.1 note 10). */
function isCodeAttribute(tag: number): boolean {
  return tag >= 0x00080100 && tag <= 0x0008012f;
}

/** The rule cleaning falls back on for unlisted text inside a C sequence (its basic action: dummy). */
const CLEAN_TEXT_RULE: TableRule = { keyword: '(text in a cleaned sequence)', name: 'free text in a sequence kept with C', vr: 'LT', basic: 'D', inStandardIOD: false, options: {} };
const OVERLAY_DATA_RULE_TAG = 0x60003000;

const KEEP: EditDecision = { op: 'keep' };
const REMOVE: EditDecision = { op: 'remove' };
const EMPTY: EditDecision = { op: 'empty' };

/**
 * The per-element decision of the profile: called by rewriteDicom for every element at
 * every depth (items' elements too), in file order. Records in `notes` what it did at top
 * level and which UIDs it replaced (for the leak check).
 */
export function createVisitor(c: CompiledRules, input: VisitorInput, notes: VisitNotes): (ctx: ElementContext) => EditDecision | Promise<EditDecision> {
  const { rules, table, keep, remove, rewrites, safePrivate, overlayRule } = c;

  /** The table row of a tag (memoised: the same few hundred tags come in every file). */
  const ruleOf = (tag: number, vr: string): TableRule | undefined => {
    let r = c.ruleCache.get(tag);
    if (r === undefined) {
      r = ruleForTag(table, tag) ?? null;
      c.ruleCache.set(tag, r);
    }
    return r ?? unlistedRule(vr);
  };
  const codeOf = (rule: TableRule): ActionCode => {
    let code = c.codeCache.get(rule);
    if (code === undefined) {
      code = resolveActionCode(rule, rules.options);
      c.codeCache.set(rule, code);
    }
    return code;
  };

  const note = (ctx: ElementContext, op: Operation | 'set' | 'private'): void => {
    if (ctx.depth === 0) notes.topLevel.set(ctx.tag, op);
  };

  type Decision = EditDecision | Promise<EditDecision>;

  /**
   * Decide from an element's values: synchronously (most elements; a promise per element
   * costs more than the decision), or after reading the bytes of a VR UN element, whose
   * values are decoded by the attribute's real VR.
   */
  const withValues = (ctx: ElementContext, vr: string, decide: (values: string[]) => EditDecision): Decision => {
    if (ctx.vr !== 'UN') return decide(ctx.values());
    return ctx.bytes().then((b) => decide(decodeStrings(b, 0, b.length, vr, { littleEndian: input.littleEndian, charsets: input.charsets })));
  };

  const replace = (ctx: ElementContext, vr: string, value: string | string[] | number | Uint8Array): EditDecision =>
    // A VR UN element of a known attribute gets its real VR back when it is rewritten.
    ({ op: 'replace', value, vr: ctx.vr === 'UN' ? vr : undefined });

  const applyRewrites = (tag: number, values: string[]): string[] => {
    const list = rewrites.get(tag);
    if (!list) return values;
    return values.map((v) => list.reduce((acc, r) => acc.replace(r.pattern, r.replacement), v));
  };

  const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

  /** K (keep) of a non-sequence value: unchanged unless the project rewrites it. */
  const keepValue = (ctx: ElementContext, vr: string): Decision => {
    if (!rewrites.has(ctx.tag)) return KEEP;
    return withValues(ctx, vr, (before) => {
      const after = applyRewrites(ctx.tag, before);
      return same(after, before) ? KEEP : replace(ctx, vr, after);
    });
  };

  const cleanValue = (ctx: ElementContext, vr: string, rule: TableRule): Decision => {
    if (vr === 'DA' || vr === 'DT') {
      const offset = input.dateOffset;
      if (offset === undefined) return operationDecision(ctx, vr, operationFor(rule.basic, vr, ctx.element.length === 0), rule);
      return withValues(ctx, vr, (values) => {
        const shifted = shiftValues(vr, values, offset);
        if (shifted === undefined) {
          // Not a date fiona can shift: leaving it would leak the real date.
          notes.warnings.push(`${formatTag(ctx.tag)}: ${vr} value is not a valid date; emptied instead of shifted`);
          return EMPTY;
        }
        return replace(ctx, vr, applyRewrites(ctx.tag, shifted));
      });
    }
    if (vr === 'TM' || vr === 'AS' || vr === 'DS' || vr === 'IS') return keepValue(ctx, vr); // a whole-day shift leaves times; numbers carry no names
    if (vr === 'AE') return replace(ctx, vr, (dummyFor('AE', 0) as { value: string }).value);
    if (vr === 'UI') return uidValue(ctx, vr);
    return withValues(ctx, vr, (values) => {
      const cleaned = applyRewrites(ctx.tag, values.map((v) => input.scrubber.scrub(v)));
      return same(cleaned, values) ? KEEP : replace(ctx, vr, cleaned);
    });
  };

  const uidValue = (ctx: ElementContext, vr: string): Decision => {
    const uids = input.uids;
    if (!uids) throw new Error(`${formatTag(ctx.tag)}: a UID must be replaced but no secret was given`);
    return withValues(ctx, vr, (values) =>
      replace(
        ctx,
        vr,
        values.map((v) => {
          if (v === '') return v;
          notes.replacedUids.add(v);
          return uids.map(v);
        }),
      ),
    );
  };

  /**
   * Sequences kept with a D (a "dummy" sequence) or a C (cleaned) hold free text the table
   * does not list (an SR's TextValue, a presentation state's UnformattedTextValue): inside
   * them, such text becomes a dummy (D) or is cleaned (C). The walk is depth first, so a
   * stack by depth knows the sequences around the element being decided.
   */
  const seqModes: SequenceMode[] = [];
  let seqMode: SequenceMode = 'none';
  const inheritedMode = (): SequenceMode => (seqModes.includes('dummy') ? 'dummy' : seqModes.includes('clean') ? 'clean' : 'none');

  const operationDecision = (ctx: ElementContext, vr: string, op: Operation, rule: TableRule, code?: ActionCode): Decision => {
    note(ctx, op);
    switch (op) {
      case 'remove':
        return REMOVE;
      case 'empty':
        return EMPTY;
      case 'recurse':
        seqMode = code === 'C' ? 'clean' : code === 'D' || code === 'Z/D' || code === 'X/D' || code === 'X/Z/D' || code === 'X/Z' ? 'dummy' : 'none';
        return KEEP;
      case 'keep':
        return keepValue(ctx, vr);
      case 'uid':
        return uidValue(ctx, vr);
      case 'clean':
        // fiona cannot clean binary values (or overlay and curve bitmaps): the basic action applies.
        if (isBinaryVr(vr) || rule.keyword === 'OverlayData' || rule.keyword === 'CurveData') {
          return operationDecision(ctx, vr, operationFor(rule.basic, vr, ctx.element.length === 0), rule);
        }
        return cleanValue(ctx, vr, rule);
      case 'dummy':
        return dummyValue(ctx, vr);
    }
  };

  const dummyValue = (ctx: ElementContext, vr: string): EditDecision => {
    const d = dummyFor(vr, ctx.element.length);
    if (d.kind === 'bytes') return replace(ctx, vr, new Uint8Array(d.length));
    return replace(ctx, vr, d.value);
  };

  const privateDecision = (ctx: ElementContext): EditDecision => {
    note(ctx, 'private');
    if (safePrivate.length === 0) return REMOVE;
    const group = ctx.tag >>> 16;
    const element = ctx.tag & 0xffff;
    if (element >= 0x0010 && element <= 0x00ff) {
      // A creator stays when the project keeps some element of that creator in this group.
      const creator = ctx.values()[0]?.trim();
      return safePrivate.some((p) => p.group === group && p.creator === creator) ? KEEP : REMOVE;
    }
    const creator = ctx.privateCreator?.trim();
    if (creator === undefined || element < 0x1000) return REMOVE; // no creator: nobody can say it is safe
    return safePrivate.some((p) => p.group === group && p.element === (element & 0xff) && p.creator === creator) ? KEEP : REMOVE;
  };

  const decideElement = (ctx: ElementContext): Decision => {
    const tag = ctx.tag;
    const group = tag >>> 16;
    if (group % 2 === 1) return privateDecision(ctx);
    if (ctx.depth === 0) {
      if (input.setTags.has(tag)) {
        note(ctx, 'set');
        return KEEP;
      }
      if (tag === PIXEL_DATA && input.maskedPixels) return replace(ctx, 'OW', input.maskedPixels);
    }
    if (remove.has(tag)) {
      note(ctx, 'remove');
      return REMOVE;
    }
    // Group 0002 inside a dataset (not File Meta) has no business there.
    if (group === 0x0002) return REMOVE;
    const vr = ctx.element.items ? 'SQ' : ctx.vr === 'UN' ? (lookupTag(tag)?.vr ?? 'UN') : ctx.vr;
    if (keep.has(tag)) {
      note(ctx, 'keep');
      return vr === 'SQ' ? KEEP : keepValue(ctx, vr);
    }
    // An overlay is a group (60xx): when its data goes, the whole group goes, or the
    // Overlay Plane Module would be left without its Type 1 Overlay Data.
    if (group >= 0x6000 && group <= 0x60ff && overlayRule) {
      return operationDecision(ctx, vr, operationFor(overlayRule.basic, vr, false), overlayRule);
    }
    const rule = ruleOf(tag, vr);
    if (!rule) {
      if (vr !== 'SQ' && FREE_TEXT_VRS.has(vr) && !isCodeAttribute(tag) && ctx.element.length > 0) {
        const mode = inheritedMode();
        if (mode === 'dummy') {
          note(ctx, 'dummy');
          return dummyValue(ctx, vr);
        }
        if (mode === 'clean') {
          note(ctx, 'clean');
          return cleanValue(ctx, vr, CLEAN_TEXT_RULE);
        }
      }
      note(ctx, vr === 'SQ' ? 'recurse' : 'keep');
      return vr === 'SQ' ? KEEP : keepValue(ctx, vr);
    }
    const code = codeOf(rule);
    return operationDecision(ctx, vr, operationFor(code, vr, ctx.element.length === 0), rule, code);
  };

  return (ctx: ElementContext): EditDecision | Promise<EditDecision> => {
    if (seqModes.length > ctx.depth) seqModes.length = ctx.depth;
    seqMode = 'none';
    const d = decideElement(ctx);
    if (ctx.element.items) seqModes[ctx.depth] = seqMode;
    return d;
  };
}
