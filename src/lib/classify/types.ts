/**
 * The compiled form of a classifyRules.json file and the values rules are evaluated on.
 * The file format is FIONA's (see docs/fiona-classify.md); rules-load.ts turns it into this.
 */

/** Where a rule's value comes from: a name (series JSON field, then header keyword) or a tag. */
export type TagRef =
  | { kind: 'name'; name: string; /** the header tag of a DICOM keyword, when it is one */ tag?: number }
  | { kind: 'tag'; tag: number; /** one value of a multi-valued element (negative counts from the end) */ index?: number };

export type Operator = 'regexp' | 'contains' | '==' | '!=' | '<' | '>' | '<=' | '>=' | 'approx' | 'exist' | 'notexist';

/**
 * A value as rules see it. `multi` is true for a multi-valued element (VM > 1) or a list in the
 * series JSON (ClassifyType, ImageType): `contains` then tests membership, not a substring.
 */
export interface RuleValue {
  values: string[];
  multi: boolean;
}

/** The right-hand side of a rule: a literal (string, number or list) or another tag. */
export type Operand =
  | { kind: 'literal'; values: string[]; list: boolean }
  | { kind: 'ref'; ref: TagRef };

export interface CompiledRule {
  tag: TagRef;
  op: Operator;
  value?: Operand;
  /** Precompiled when the value is a literal pattern. */
  regex?: RegExp;
  approxLevel: number;
  negate: boolean;
  /** Where the rule came from, for messages: `entry 3 (T1) rules[1]`, with `via` references. */
  origin: string;
}

export interface CompiledEntry {
  /** Position in the file (0-based). */
  index: number;
  type: string;
  id?: string;
  description?: string;
  /** check: "SeriesLevel": the type holds only if every instance of the series passes. */
  seriesLevel: boolean;
  /** Stable name for the series JSON bookkeeping: `<type>#<n>`, n counting entries of that type. */
  key: string;
  rules: CompiledRule[];
}

export interface RuleSet {
  entries: CompiledEntry[];
  /** Every type in the order of first appearance. */
  types: string[];
  /** The file it came from, if any. */
  source?: string;
  /** Things that are allowed but probably not meant (unknown keys, unreferenced duplicate ids...). */
  warnings: string[];
}

/** Looks up a tag for one instance: series JSON first for names, then the header. */
export type Lookup = (ref: TagRef) => RuleValue | undefined;
