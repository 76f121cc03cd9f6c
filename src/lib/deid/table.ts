import { readFileSync } from 'node:fs';
import type { ProfileOption } from './options.js';

/**
 * The derived PS3.15 Table E.1-1 (rules/deid/ps3.15-e1-1-2024b.json, made by
 * scripts/derive-profile.mjs from the standard's table; source and licence recorded beside it).
 */
export type ActionCode = 'D' | 'Z' | 'X' | 'K' | 'C' | 'U' | 'Z/D' | 'X/Z' | 'X/D' | 'X/Z/D' | 'X/Z/U*';

export interface TableRule {
  keyword: string;
  name: string;
  vr: string;
  basic: ActionCode;
  inStandardIOD: boolean;
  options: Partial<Record<ProfileOption, ActionCode>>;
}

interface RangeRule extends TableRule {
  mask: number;
  value: number;
}

export interface ProfileTable {
  byTag: Map<number, TableRule>;
  ranges: RangeRule[];
  /** The row for private attributes (odd groups). */
  privateRule: TableRule;
  title: string;
  sha256: string;
}

interface TableFile {
  title: string;
  source: { sha256: string };
  attributes: Array<Omit<TableRule, never> & { tag: string }>;
  ranges: Array<TableRule & { mask: string; value: string }>;
  private: TableRule;
}

export const DEFAULT_TABLE_PATH = new URL('../../../rules/deid/ps3.15-e1-1-2024b.json', import.meta.url);

let cached: ProfileTable | undefined;

/** Load (once) the shipped table; a path loads another derived table (tests, newer editions). */
export function loadProfileTable(path: string | URL = DEFAULT_TABLE_PATH): ProfileTable {
  if (cached && path === DEFAULT_TABLE_PATH) return cached;
  const file = JSON.parse(readFileSync(path, 'utf8')) as TableFile;
  const byTag = new Map<number, TableRule>();
  for (const a of file.attributes) {
    const { tag, ...rule } = a;
    byTag.set(Number.parseInt(tag, 16) >>> 0, rule);
  }
  const ranges = file.ranges.map((r) => ({
    ...r,
    mask: Number.parseInt(r.mask, 16) >>> 0,
    value: Number.parseInt(r.value, 16) >>> 0,
  }));
  const table: ProfileTable = { byTag, ranges, privateRule: file.private, title: file.title, sha256: file.source.sha256 };
  if (path === DEFAULT_TABLE_PATH) cached = table;
  return table;
}

/** The table row for a standard (even group) tag, including the repeating-group rows. */
export function ruleForTag(table: ProfileTable, tag: number): TableRule | undefined {
  const direct = table.byTag.get(tag >>> 0);
  if (direct) return direct;
  for (const r of table.ranges) {
    if (((tag & r.mask) >>> 0) === r.value) return r;
  }
  return undefined;
}
