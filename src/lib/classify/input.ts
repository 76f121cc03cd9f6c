import type { BaseEvent, InputItem } from '../events/index.js';
import { UNKNOWN_CONNECTION, type ClassifyJob } from './classifier.js';

/**
 * What fiona-classify makes of one input line: a `stored` event, a plain path or a FIONA
 * pipe line is a job; another event is passed through (with --pass) or ignored; anything
 * else is a warning that names the line, and the stream goes on.
 */
export type InputOutcome =
  | { kind: 'job'; job: ClassifyJob }
  | { kind: 'other'; event: BaseEvent }
  | { kind: 'warn'; message: string };

export function jobFromInput(item: InputItem): InputOutcome {
  const origin = `line ${item.line}`;
  switch (item.kind) {
    case 'path':
      return { kind: 'job', job: { path: item.path, conn: UNKNOWN_CONNECTION, origin } };
    case 'fiona':
      return {
        kind: 'job',
        job: { path: item.path, conn: { AETitleCaller: item.calling, AETitleCalled: item.called, CallerIP: item.peer }, origin },
      };
    case 'invalid':
      return { kind: 'warn', message: `${origin}: ${item.reason}: ${JSON.stringify(item.text.slice(0, 200))}` };
    case 'event': {
      const e = item.event;
      if (e.event !== 'stored') return { kind: 'other', event: e };
      if (typeof e.path !== 'string' || !e.path.startsWith('/') || e.path.includes('\0')) {
        return { kind: 'warn', message: `${origin}: a "stored" event without an absolute "path": ${JSON.stringify(e).slice(0, 200)}` };
      }
      const str = (v: unknown): string => (typeof v === 'string' && v !== '' ? v : 'unknown');
      return {
        kind: 'job',
        job: { path: e.path, conn: { AETitleCaller: str(e.calling), AETitleCalled: str(e.called), CallerIP: str(e.peer) }, origin },
      };
    }
  }
}
