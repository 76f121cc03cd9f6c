/**
 * Run async work with at most `limit` tasks in flight, in input order of starting.
 * Reading headers is I/O: a few in flight keep the disk busy while rules run on the CPU.
 */
export class Pool {
  private readonly running = new Set<Promise<void>>();
  constructor(private readonly limit: number) {}

  /** Start a task, first waiting for a free slot (this is the backpressure on the input). */
  async add(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    const p = task().finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }
}
