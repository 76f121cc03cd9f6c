/** One check of fiona-heartbeat and its Nagios-style state. */
export type HealthState = 'ok' | 'warning' | 'critical' | 'unknown';

export interface CheckResult {
  /** receiver, disk, queue:<name>, stuck, arrival, restart */
  name: string;
  state: HealthState;
  message: string;
  /** Numbers for --json and Nagios performance data. */
  data: Record<string, unknown>;
}

const RANK: Record<HealthState, number> = { ok: 0, warning: 1, unknown: 2, critical: 3 };

/** The worst state (critical > unknown > warning > ok). */
export function worst(states: HealthState[]): HealthState {
  return states.reduce<HealthState>((a, b) => (RANK[b] > RANK[a] ? b : a), 'ok');
}

/** Nagios plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
export function nagiosExit(state: HealthState): number {
  return { ok: 0, warning: 1, critical: 2, unknown: 3 }[state];
}
