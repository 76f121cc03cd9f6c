import { writeJsonAtomic } from '../site/atomic.js';
import { withLock } from '../site/lock.js';
import { readJsonObject } from '../site/state-json.js';

/**
 * execMeasurements.json as FIONA kept it: { "<project>": <seconds> }, each new export
 * averaged with the value before ((old + new) / 2), which the web application reads to
 * tell users how long an export takes. fiona adds per-stage seconds under "_stages"
 * (no project name can start with '_', so FIONA's readers are not confused).
 */
export type StageTimes = Record<string, number>;

interface MeasurementsFile {
  [project: string]: number | Record<string, StageTimes> | undefined;
  _stages?: Record<string, StageTimes>;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
const average = (old: number | undefined, now: number): number => round(old === undefined ? now : (old + now) / 2);

export async function recordMeasurement(file: string, project: string, seconds: number, stages: StageTimes): Promise<void> {
  // Two runs finishing at once must not lose each other's update.
  await withLock(`${file}.lock`, async () => {
    // Missing or damaged (FIONA's writer was not atomic): start over rather than fail the export.
    const data = ((await readJsonObject(file)) ?? {}) as MeasurementsFile;
    const old = data[project];
    data[project] = average(typeof old === 'number' ? old : undefined, seconds);
    const all = data._stages ?? {};
    const mine: StageTimes = { ...(all[project] ?? {}) };
    for (const [stage, s] of Object.entries(stages)) mine[stage] = average(mine[stage], s);
    all[project] = mine;
    data._stages = all;
    await writeJsonAtomic(file, data);
  }, 5_000);
}

/** Times the stages of one export. */
export class StageTimer {
  readonly stages: StageTimes = {};
  private readonly start = performance.now();

  async time<T>(stage: string, fn: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.stages[stage] = round((this.stages[stage] ?? 0) + (performance.now() - t) / 1000);
    }
  }

  get total(): number {
    return round((performance.now() - this.start) / 1000);
  }
}
