import type { ProfileOption } from './options.js';
import { type ActionCode, type ProfileTable, type TableRule, ruleForTag } from './table.js';

/**
 * What fiona does to one element. The standard's action codes become these operations:
 *
 * - remove: X
 * - empty: Z (zero-length value; a sequence with no items)
 * - dummy: D (a non-zero dummy value consistent with the VR; see dummy.ts)
 * - keep: K
 * - clean: C (dates shifted, text scrubbed of the instance's identifying values)
 * - uid: U (replaced by the keyed UID mapping)
 * - recurse: a sequence that stays, with the profile applied to every item (K, C, D and U* on SQ)
 */
export type Operation = 'remove' | 'empty' | 'dummy' | 'keep' | 'clean' | 'uid' | 'recurse';

/**
 * The action of an attribute under the chosen options. "A requirement for an Option, when
 * implemented, overrides any requirement for the underlying Profile" (PS3.15 E.1.1). When two
 * chosen options name different actions for one attribute (e.g. Retain Device Identity K and
 * Clean Descriptors C), keeping wins: the user chose to retain that information.
 */
export function resolveActionCode(rule: TableRule, options: ReadonlySet<ProfileOption>): ActionCode {
  let chosen: ActionCode | undefined;
  for (const [option, code] of Object.entries(rule.options) as Array<[ProfileOption, ActionCode]>) {
    if (!options.has(option)) continue;
    if (code === 'K') return 'K';
    chosen = code;
  }
  return chosen ?? rule.basic;
}

/** VRs whose values fiona cannot clean by rewriting text; a C on them falls back to the basic action. */
const BINARY_VRS = new Set(['OB', 'OW', 'OD', 'OF', 'OL', 'OV', 'UN', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV', 'AT']);

export function isBinaryVr(vr: string): boolean {
  return BINARY_VRS.has(vr);
}

/**
 * The operation for an action code. Combined codes ask for X, Z or D "as required to
 * maintain IOD conformance" (Type 3, 2 or 1). fiona has no IOD tables, so it takes the
 * choice that keeps every file valid whatever its IOD: the strongest presence the code
 * allows. X/Z -> Z, X/D, Z/D and X/Z/D -> D, X/Z/U* -> the sequence stays with its UIDs
 * replaced (sequences: see sequenceOperation). A D on an element whose value is already empty stays empty (Z): there is
 * nothing to hide, and the file is no less valid than it came.
 */
export function operationFor(code: ActionCode, vr: string, valueIsEmpty: boolean): Operation {
  if (vr === 'SQ') return sequenceOperation(code);
  return baseOperation(code, vr, valueIsEmpty);
}

/**
 * Sequences: X removes, Z empties (a Type 2 sequence may have no item). Every other code
 * keeps the sequence and applies the profile to its items (K and U* as the standard says;
 * D, and C when cleaning, with the items' free text dummied or cleaned, see visitor.ts).
 * X/Z is kept that way too, not emptied: a Type 3 sequence that is present must have an
 * item (dciodvfy: "Bad Sequence number of Items 0"), and without IOD tables fiona cannot
 * tell Type 3 from Type 2; a dummied item is valid as either.
 */
function sequenceOperation(code: ActionCode): Operation {
  if (code === 'X') return 'remove';
  if (code === 'Z') return 'empty';
  return 'recurse';
}

function baseOperation(code: ActionCode, vr: string, valueIsEmpty: boolean): Operation {
  switch (code) {
    case 'X':
      return 'remove';
    case 'Z':
    case 'X/Z':
      return 'empty';
    case 'K':
      return 'keep';
    case 'C':
      return 'clean';
    case 'U':
      return valueIsEmpty ? 'empty' : 'uid';
    case 'X/Z/U*':
      return vr === 'UI' ? (valueIsEmpty ? 'empty' : 'uid') : 'recurse';
    case 'D':
    case 'Z/D':
    case 'X/D':
    case 'X/Z/D':
      if (valueIsEmpty) return 'empty';
      // A dummy UID must still be a valid, consistent UID: the keyed mapping is one.
      return vr === 'UI' ? 'uid' : 'dummy';
  }
}

/**
 * Attributes the table does not list but whose VR carries identity (PS3.15 E.1.1 note 4
 * suggests handling dates and times by VR): unlisted DA and DT are handled like the listed
 * dates (X/Z/D, kept with full dates, shifted with modified dates), unlisted PN like a
 * listed name (X/Z/D). Unlisted TM is kept: a time of day alone does not identify.
 */
const UNLISTED_BY_VR: Record<string, TableRule> = {
  DA: makeUnlistedRule('DA', { retainLongitudinalFullDates: 'K', retainLongitudinalModifiedDates: 'C' }),
  DT: makeUnlistedRule('DT', { retainLongitudinalFullDates: 'K', retainLongitudinalModifiedDates: 'C' }),
  PN: makeUnlistedRule('PN', {}),
};

function makeUnlistedRule(vr: string, options: TableRule['options']): TableRule {
  return { keyword: `(unlisted ${vr})`, name: `attribute with VR ${vr} not in Table E.1-1`, vr, basic: 'X/Z/D', inStandardIOD: false, options };
}

/** The rule for a standard (even group) tag: the table's row, or the by-VR rule, or undefined (keep). */
export function standardRule(table: ProfileTable, tag: number, vr: string): TableRule | undefined {
  return ruleForTag(table, tag) ?? UNLISTED_BY_VR[vr];
}

/** The by-VR rule for an attribute the table does not list (undefined: keep). */
export function unlistedRule(vr: string): TableRule | undefined {
  return UNLISTED_BY_VR[vr];
}
