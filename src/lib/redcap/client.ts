import { UnavailableError } from '../errors.js';

/**
 * A small REDCap API client: form POSTs to <url> (REDCap's .../api/), JSON answers.
 * Only the calls FIONA used: export and import of records (flat, with repeating
 * instruments) and the project info for a token check. The token goes in the POST body,
 * never in a URL, and no message this module makes contains it.
 */
export type RedcapRow = Record<string, string>;

/** REDCap answered with an error ({"error": "..."}) or something that is not its API. */
export class RedcapError extends UnavailableError {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export interface ExportOptions {
  records?: string[];
  fields?: string[];
  forms?: string[];
  filterLogic?: string;
  rawOrLabel?: 'raw' | 'label';
}

export interface RedcapClientOptions {
  timeoutMs?: number;
}

export function checkRedcapUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedcapError(`not a REDCap API URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new RedcapError(`REDCap URL must be https:// (or http:// on loopback), got ${u.protocol}`);
  if (u.username || u.password) throw new RedcapError('REDCap URL must not carry credentials; use --token-file');
  return u;
}

export class RedcapClient {
  readonly url: string;
  private readonly timeoutMs: number;

  constructor(url: string, private readonly token: string, readonly label: string, opts: RedcapClientOptions = {}) {
    this.url = checkRedcapUrl(url).toString();
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Make sure a message cannot carry the token, whatever the server echoed. */
  private redact(s: string): string {
    return this.token ? s.split(this.token).join('[token]') : s;
  }

  private where(): string {
    return `REDCap ${this.label} project at ${this.url}`;
  }

  /** One API call; params are form fields, arrays become name[0], name[1], ... */
  async call(params: Record<string, string | string[] | undefined>): Promise<unknown> {
    const body = new URLSearchParams();
    body.set('token', this.token);
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) v.forEach((x, i) => body.set(`${k}[${i}]`, x));
      else body.set(k, v);
    }
    body.set('returnFormat', 'json');
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new UnavailableError(this.redact(`${this.where()} is unreachable: ${why}`), { cause: err });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    const apiError = json && typeof json === 'object' && !Array.isArray(json) && typeof (json as { error?: unknown }).error === 'string'
      ? (json as { error: string }).error
      : undefined;
    if (apiError !== undefined) throw new RedcapError(this.redact(`${this.where()} answered HTTP ${res.status}: ${apiError}`), res.status);
    if (!res.ok) throw new RedcapError(this.redact(`${this.where()} answered HTTP ${res.status}: ${text.slice(0, 200)}`), res.status);
    if (json === undefined) throw new RedcapError(this.redact(`${this.where()} did not answer JSON: ${text.slice(0, 200)}`), res.status);
    return json;
  }

  async exportRecords(o: ExportOptions = {}): Promise<RedcapRow[]> {
    const rows = await this.call({
      content: 'record',
      action: 'export',
      format: 'json',
      type: 'flat',
      records: o.records,
      fields: o.fields,
      forms: o.forms,
      filterLogic: o.filterLogic,
      rawOrLabel: o.rawOrLabel ?? 'raw',
      rawOrLabelHeaders: 'raw',
      exportCheckboxLabel: 'false',
      exportSurveyFields: 'false',
      exportDataAccessGroups: 'false',
    });
    if (!Array.isArray(rows)) throw new RedcapError(`${this.where()}: record export did not return a list`);
    return rows.map((r) => Object.fromEntries(Object.entries(r as Record<string, unknown>).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)])));
  }

  /** Import rows; returns REDCap's count. 'overwrite' lets blank values clear fields. */
  async importRecords(rows: Array<Record<string, string | number>>, overwriteBehavior: 'normal' | 'overwrite' = 'normal'): Promise<number> {
    if (rows.length === 0) return 0;
    const res = await this.call({
      content: 'record',
      action: 'import',
      format: 'json',
      type: 'flat',
      overwriteBehavior,
      forceAutoNumber: 'false',
      data: JSON.stringify(rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)])))),
      returnContent: 'count',
    });
    const count = (res as { count?: unknown }).count;
    if (typeof count !== 'number' && typeof count !== 'string') throw new RedcapError(`${this.where()}: import did not return a count`);
    return Number(count);
  }

  /** The token check: REDCap's project info answers only to a valid token. */
  async projectInfo(): Promise<Record<string, unknown>> {
    const info = await this.call({ content: 'project', format: 'json' });
    if (!info || typeof info !== 'object' || Array.isArray(info)) throw new RedcapError(`${this.where()}: project info is not an object`);
    return info as Record<string, unknown>;
  }
}
