/**
 * Error kinds that map to the exit codes every fiona command documents:
 * 0 ok, 1 some items failed, 2 usage or config error, 3 a peer or resource unavailable.
 */
export const EXIT = {
  OK: 0,
  ITEMS_FAILED: 1,
  USAGE: 2,
  UNAVAILABLE: 3,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class FionaError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad command line or bad config: the user must change what they typed. */
export class UsageError extends FionaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT.USAGE, options);
  }
}

/** A config file key with a bad value; the message names the key. */
export class ConfigError extends FionaError {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(`config: ${key}: ${message}`, EXIT.USAGE, options);
    this.key = key;
  }
}

/** A peer (PACS, SFTP server) or a resource (disk, port) is not there. */
export class UnavailableError extends FionaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT.UNAVAILABLE, options);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
