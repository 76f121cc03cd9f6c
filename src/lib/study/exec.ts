
/**
 * `--exec CMD ARGS...`: a command run once per reported study with the manifest path as its
 * last argument (an argument array: no shell, nothing from a header reaches a command line
 * unquoted). Its output goes to stderr so it cannot corrupt the NDJSON on stdout.
 */
export interface ExecSpec {
  command: string;
  args: string[];
  /** Also run for study-updated (default: only study-complete). */
  updates: boolean;
}

export interface ExecResult {
  exitCode: number | undefined;
  ok: boolean;
  durationMs: number;
  error?: string;
}

export async function runExec(
  spec: ExecSpec,
  manifest: string,
  env: { study: string; event: string; site: string },
): Promise<ExecResult> {
  const started = Date.now();
  // Loaded when needed: execa is about 100 files, most runs never start a program.
  const { execa } = await import('execa');
  const r = await execa(spec.command, [...spec.args, manifest], {
    reject: false,
    stdin: 'ignore',
    stdout: process.stderr,
    stderr: process.stderr,
    env: { FIONA_STUDY: env.study, FIONA_MANIFEST: manifest, FIONA_EVENT: env.event, FIONA_SITE: env.site },
  });
  const durationMs = Date.now() - started;
  if (r.failed && r.exitCode === undefined) {
    return { exitCode: undefined, ok: false, durationMs, error: r.shortMessage ?? r.message };
  }
  return { exitCode: r.exitCode, ok: r.exitCode === 0, durationMs };
}
