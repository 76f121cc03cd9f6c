/** The events fiona tools write, one JSON object per line (DESIGN.md, "Events"). */
export interface BaseEvent {
  event: string;
  time: string;
  [key: string]: unknown;
}

export interface StoredEvent extends BaseEvent {
  event: 'stored';
  path: string;
  study: string;
  series: string;
  sop: string;
  sopClass: string;
  transferSyntax: string;
  calling: string;
  called: string;
  peer: string;
  bytes: number;
}

export interface QuarantinedEvent extends BaseEvent {
  event: 'quarantined';
  path: string;
  reason: string;
}

/** What a reader makes of one input line. */
export type InputItem =
  | { kind: 'event'; event: BaseEvent; line: number }
  | { kind: 'path'; path: string; line: number }
  | { kind: 'fiona'; calling: string; called: string; peer: string; dir: string; file: string; path: string; line: number }
  | { kind: 'invalid'; text: string; reason: string; line: number };

export function makeEvent<T extends Record<string, unknown>>(event: string, fields: T): BaseEvent & T {
  return { event, time: new Date().toISOString(), ...fields };
}
