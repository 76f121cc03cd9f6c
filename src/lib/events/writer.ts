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

/**
 * The event lines written in one turn of the event loop go out in one write: outcomes come
 * in bursts (the files that one answer of the I/O thread completes), and a line per write
 * cost a system call each and woke the pipe's reader each time (Node writes a corked
 * pipe's lines with one writev). Uncorked at the end of the turn, so no line waits longer,
 * and at exit: a process that dies of an uncaught exception in the middle of a turn still
 * writes the lines of the files it finished (stdout to a pipe or file is synchronous on Linux).
 */
export function corkPerTurn(out: Writable): { cork(): void; flush(): void } {
  let corked = false;
  const flush = (): void => {
    if (!corked) return;
    corked = false;
    out.uncork();
  };
  process.on('exit', flush);
  return {
    cork(): void {
      if (corked) return;
      corked = true;
      out.cork();
      setImmediate(flush);
    },
    flush,
  };
}
