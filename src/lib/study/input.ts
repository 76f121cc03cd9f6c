import type { BaseEvent, InputItem } from '../events/index.js';

/**
 * What fiona-detect-study makes of one input line: `classified` and `stored` events are
 * arrivals (study and time); other events are passed on or ignored; anything else is a
 * warning naming the line.
 */
export type ArrivalOutcome =
  | { kind: 'arrival'; study: string; time: number }
  | { kind: 'other'; event: BaseEvent }
  | { kind: 'warn'; message: string };

const ARRIVAL_EVENTS = new Set(['classified', 'stored']);

export function arrivalFromInput(item: InputItem, now = Date.now()): ArrivalOutcome {
  const origin = `line ${item.line}`;
  if (item.kind === 'invalid') return { kind: 'warn', message: `${origin}: ${item.reason}: ${JSON.stringify(item.text.slice(0, 200))}` };
  if (item.kind !== 'event') {
    return { kind: 'warn', message: `${origin}: fiona-detect-study reads events ("classified" or "stored"), not paths; run fiona-classify first` };
  }
  const e = item.event;
  if (!ARRIVAL_EVENTS.has(e.event)) return { kind: 'other', event: e };
  if (typeof e.study !== 'string' || e.study === '') {
    return { kind: 'warn', message: `${origin}: a "${e.event}" event without a "study": ${JSON.stringify(e).slice(0, 200)}` };
  }
  const t = typeof e.time === 'string' ? Date.parse(e.time) : NaN;
  return { kind: 'arrival', study: e.study, time: Number.isFinite(t) ? Math.min(t, now) : now };
}
