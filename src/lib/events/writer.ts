import type { Writable } from 'node:stream';
import type { BaseEvent } from './types.js';

/**
 * Writes events as NDJSON. A closed stdout (the next tool in the pipe went away) must not
 * kill a receiver that is still taking studies: EPIPE is noted once and further lines dropped.
 */
export class EventWriter {
  private broken = false;
  constructor(private readonly out: Writable = process.stdout, private readonly onBroken?: (err: Error) => void) {
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.broken) {
        this.broken = true;
        this.onBroken?.(err);
      }
    });
  }

  write(event: BaseEvent): void {
    if (this.broken) return;
    this.out.write(`${JSON.stringify(event)}\n`);
  }

  get isBroken(): boolean {
    return this.broken;
  }
}
