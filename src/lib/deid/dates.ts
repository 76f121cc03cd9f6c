import { createHmac } from 'node:crypto';

/**
 * Date shifting for the Retain Longitudinal Temporal Information with Modified Dates option:
 * every DA and DT of one patient moves by the same number of days, so intervals (between
 * series, studies, follow-ups) stay exact while the calendar dates do not identify.
 * Times of day (TM) are not moved by a whole-day shift.
 */

/** Default bound of a derived shift: between 1 and this many days into the past. */
export const DEFAULT_MAX_SHIFT_DAYS = 365;

/**
 * The per-patient offset derived from the project's secret: the same patient gets the same
 * offset in every run (so a follow-up study sent next year lines up), another patient or
 * another project gets another. Always negative (into the past) and never zero.
 */
export function derivedDateOffset(secret: Uint8Array, project: string, patientKey: string, maxDays = DEFAULT_MAX_SHIFT_DAYS): number {
  const h = createHmac('sha256', secret).update('fiona-date-shift\0').update(project).update('\0').update(patientKey).digest();
  return -(1 + (h.readUInt32BE(0) % maxDays));
}

const DAY_MS = 86_400_000;

function ymdToUtc(y: number, m: number, d: number): number | undefined {
  if (m < 1 || m > 12 || d < 1 || d > 31) return undefined;
  const t = Date.UTC(y, m - 1, d);
  const check = new Date(t);
  // Date.UTC rolls 20230231 over into March; such a date is invalid, not shiftable.
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== m - 1 || check.getUTCDate() !== d) return undefined;
  return t;
}

function utcToYmd(t: number): string {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  if (y < 1 || y > 9999) throw new RangeError('shifted date out of range');
  return `${String(y).padStart(4, '0')}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

/** Shift one DA value (YYYYMMDD, or the old YYYY.MM.DD) by days; undefined when it is not a date. */
export function shiftDateValue(value: string, days: number): string | undefined {
  const m = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(value.trim());
  if (!m) return undefined;
  const t = ymdToUtc(Number(m[1]), Number(m[2]), Number(m[3]));
  if (t === undefined) return undefined;
  try {
    return utcToYmd(t + days * DAY_MS);
  } catch {
    return undefined;
  }
}

/** Shift a DA element value: a date, or a range "A-B", "-B", "A-" (as in queries). */
export function shiftDA(value: string, days: number): string | undefined {
  const v = value.trim();
  if (v === '') return '';
  if (v.includes('-')) {
    const parts = v.split('-');
    if (parts.length !== 2) return undefined;
    const shifted = parts.map((p) => (p === '' ? '' : shiftDateValue(p, days)));
    if (shifted.some((s) => s === undefined)) return undefined;
    return shifted.join('-');
  }
  return shiftDateValue(v, days);
}

const DT_RE = /^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$/;

/**
 * Shift a DT value by days, keeping its precision, time and UTC offset. A DT of year or
 * year-month precision is shifted from the first day of that period and cut back to the
 * same precision (the best a shift can do without inventing digits).
 */
export function shiftDT(value: string, days: number): string | undefined {
  const v = value.trim();
  if (v === '') return '';
  const m = DT_RE.exec(v);
  if (!m) return undefined;
  const [, y, mo, d, time = '', zone = ''] = m;
  if (d === undefined && time !== '') return undefined;
  const t = ymdToUtc(Number(y), Number(mo ?? '01'), Number(d ?? '01'));
  if (t === undefined) return undefined;
  let ymd: string;
  try {
    ymd = utcToYmd(t + days * DAY_MS);
  } catch {
    return undefined;
  }
  const precision = 4 + (mo === undefined ? 0 : 2) + (d === undefined ? 0 : 2);
  return `${ymd.slice(0, precision)}${time}${zone}`;
}

/** Shift every value of a DA or DT element (VM may be > 1); undefined if any value is not a date. */
export function shiftValues(vr: 'DA' | 'DT', values: string[], days: number): string[] | undefined {
  const out: string[] = [];
  for (const v of values) {
    const s = vr === 'DA' ? shiftDA(v, days) : shiftDT(v, days);
    if (s === undefined) return undefined;
    out.push(s);
  }
  return out;
}
