import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A REDCap API stand-in for tests: REDCap itself (PHP + MySQL) cannot run here. It answers
 * the calls fiona makes the way REDCap's API documentation describes them:
 *
 * - every call is a form POST (application/x-www-form-urlencoded) to one URL with `token`;
 *   a token that is not 32 hex digits, or unknown, gets HTTP 403
 *   {"error":"You do not have permissions to use the API"};
 * - content=record&action=export&format=json&type=flat: one row per record, and one row per
 *   instance of a repeating instrument with redcap_repeat_instrument/_instance; `records[n]`,
 *   `fields[n]`, `forms[n]`, `filterLogic` and `rawOrLabel` (label turns dropdown/yes-no codes
 *   into their labels, checkboxes into Checked/Unchecked); unknown fields get HTTP 400;
 * - content=record&action=import&format=json&type=flat&data=[...]: `overwriteBehavior`
 *   normal (blank values leave data alone) or overwrite (blanks clear), answers
 *   {"count": n} (records touched); bad JSON or an unknown field gets HTTP 400;
 * - content=project (project info, used as a token check), content=version;
 * - errors are {"error": "..."} with returnFormat=json.
 */
export type FieldType = 'text' | 'yesno' | 'dropdown' | 'checkbox' | 'notes';

export interface FieldDef {
  name: string;
  form: string;
  type?: FieldType;
  /** code -> label, for dropdown and checkbox fields. */
  choices?: Record<string, string>;
}

export interface ProjectDef {
  title: string;
  token: string;
  fields: FieldDef[];
  /** Forms that are repeating instruments. */
  repeating?: string[];
}

interface RecordData {
  main: Record<string, string>;
  repeats: Map<string, Map<number, Record<string, string>>>;
}

interface Project {
  def: ProjectDef;
  idField: string;
  records: Map<string, RecordData>;
}

export interface LoggedCall {
  method: string;
  url: string;
  contentType: string;
  params: Record<string, string>;
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function expandFields(def: ProjectDef): Map<string, FieldDef> {
  const m = new Map<string, FieldDef>();
  for (const f of def.fields) m.set(f.name, f);
  return m;
}

/** Column names of a field in a flat export (checkboxes become field___code). */
function columns(f: FieldDef): string[] {
  if (f.type === 'checkbox') return Object.keys(f.choices ?? {}).map((c) => `${f.name}___${c}`);
  return [f.name];
}

// ---- filterLogic: [field] op 'value' joined by and/or, with parentheses ----
type Tok = { t: 'field' | 'str' | 'num' | 'op' | 'and' | 'or' | 'lp' | 'rp'; v: string };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '[') {
      const j = s.indexOf(']', i);
      if (j < 0) throw new ApiError(400, 'The parameter \'filterLogic\' is not valid: missing ]');
      out.push({ t: 'field', v: s.slice(i + 1, j) });
      i = j + 1;
    } else if (c === "'" || c === '"') {
      const j = s.indexOf(c, i + 1);
      if (j < 0) throw new ApiError(400, 'The parameter \'filterLogic\' is not valid: unclosed quote');
      out.push({ t: 'str', v: s.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '(') {
      out.push({ t: 'lp', v: c });
      i++;
    } else if (c === ')') {
      out.push({ t: 'rp', v: c });
      i++;
    } else {
      const op = /^(<>|!=|>=|<=|=|<|>)/.exec(s.slice(i));
      if (op) {
        out.push({ t: 'op', v: op[1]! });
        i += op[1]!.length;
        continue;
      }
      const word = /^[A-Za-z0-9_.-]+/.exec(s.slice(i));
      if (!word) throw new ApiError(400, `The parameter 'filterLogic' is not valid near ${JSON.stringify(s.slice(i, i + 10))}`);
      const w = word[0];
      if (/^and$/i.test(w)) out.push({ t: 'and', v: w });
      else if (/^or$/i.test(w)) out.push({ t: 'or', v: w });
      else if (/^-?\d+(\.\d+)?$/.test(w)) out.push({ t: 'num', v: w });
      else throw new ApiError(400, `The parameter 'filterLogic' is not valid near ${JSON.stringify(w)}`);
      i += w.length;
    }
  }
  return out;
}

type Pred = (row: Record<string, string>) => boolean;

function parseLogic(toks: Tok[], known: Set<string>): Pred {
  let p = 0;
  const peek = (): Tok | undefined => toks[p];
  const expr = (): Pred => {
    let left = term();
    while (peek()?.t === 'or') {
      p++;
      const l = left;
      const r = term();
      left = (row) => l(row) || r(row);
    }
    return left;
  };
  const term = (): Pred => {
    let left = factor();
    while (peek()?.t === 'and') {
      p++;
      const l = left;
      const r = factor();
      left = (row) => l(row) && r(row);
    }
    return left;
  };
  const value = (): ((row: Record<string, string>) => string) => {
    const t = toks[p++];
    if (!t) throw new ApiError(400, "The parameter 'filterLogic' is not valid: ends early");
    if (t.t === 'field') {
      if (!known.has(t.v)) throw new ApiError(400, `The parameter 'filterLogic' is not valid: unknown field [${t.v}]`);
      return (row) => row[t.v] ?? '';
    }
    if (t.t === 'str' || t.t === 'num') return () => t.v;
    throw new ApiError(400, `The parameter 'filterLogic' is not valid near ${JSON.stringify(t.v)}`);
  };
  const factor = (): Pred => {
    if (peek()?.t === 'lp') {
      p++;
      const e = expr();
      if (toks[p++]?.t !== 'rp') throw new ApiError(400, "The parameter 'filterLogic' is not valid: missing )");
      return e;
    }
    const a = value();
    const op = toks[p++];
    if (op?.t !== 'op') throw new ApiError(400, "The parameter 'filterLogic' is not valid: expected an operator");
    const b = value();
    const cmp = (x: string, y: string): number => {
      const nx = Number(x);
      const ny = Number(y);
      if (x !== '' && y !== '' && !Number.isNaN(nx) && !Number.isNaN(ny)) return nx - ny;
      return x < y ? -1 : x > y ? 1 : 0;
    };
    switch (op.v) {
      case '=': return (row) => cmp(a(row), b(row)) === 0;
      case '<>':
      case '!=': return (row) => cmp(a(row), b(row)) !== 0;
      case '>': return (row) => a(row) !== '' && cmp(a(row), b(row)) > 0;
      case '>=': return (row) => a(row) !== '' && cmp(a(row), b(row)) >= 0;
      case '<': return (row) => a(row) !== '' && cmp(a(row), b(row)) < 0;
      default: return (row) => a(row) !== '' && cmp(a(row), b(row)) <= 0;
    }
  };
  const pred = expr();
  if (p !== toks.length) throw new ApiError(400, "The parameter 'filterLogic' is not valid: trailing text");
  return pred;
}

export class FakeRedcap {
  readonly calls: LoggedCall[] = [];
  private readonly projects = new Map<string, Project>();
  private failures: Array<{ status: number; body: string }> = [];
  private tokenFailures = new Map<string, Array<{ status: number; body: string; content?: string }>>();
  private server?: Server;
  url = '';

  constructor(defs: ProjectDef[]) {
    for (const def of defs) {
      const idField = def.fields[0]?.name;
      if (!idField) throw new Error(`project ${def.title} has no fields`);
      this.projects.set(def.token.toUpperCase(), { def, idField, records: new Map() });
    }
  }

  /** The next n calls answer with this status and body (an outage, a REDCap error page). */
  failNext(n: number, status: number, body: string): void {
    for (let i = 0; i < n; i++) this.failures.push({ status, body });
  }

  /**
   * The next n calls with this token fail (one REDCap project down, the others up); with
   * `content`, only calls of that content (e.g. 'record': the token check still passes).
   */
  failFor(token: string, n: number, status: number, body: string, content?: string): void {
    const list = this.tokenFailures.get(token.toUpperCase()) ?? [];
    for (let i = 0; i < n; i++) list.push({ status, body, content });
    this.tokenFailures.set(token.toUpperCase(), list);
  }

  private takeFailure(params: Record<string, string>): { status: number; body: string } | undefined {
    const general = this.failures.shift();
    if (general) return general;
    const list = this.tokenFailures.get((params.token ?? '').toUpperCase());
    const i = list?.findIndex((f) => f.content === undefined || f.content === params.content) ?? -1;
    return i >= 0 ? list!.splice(i, 1)[0] : undefined;
  }

  private project(token: string): Project {
    const p = this.projects.get(token.toUpperCase());
    if (!p) throw new ApiError(403, 'You do not have permissions to use the API');
    return p;
  }

  /** Rows as a flat raw export would give them (for assertions). */
  rows(token: string): Array<Record<string, string>> {
    return this.exportRows(this.project(token), {});
  }

  /** Put rows in as an import with overwriteBehavior=normal would. */
  seed(token: string, rows: Array<Record<string, string | number>>): void {
    this.importRows(this.project(token), rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)]))), 'normal');
  }

  private formOf(p: Project, column: string): string | undefined {
    const fields = expandFields(p.def);
    const direct = fields.get(column);
    if (direct) return direct.form;
    const m = /^(.*)___[^_]+$/.exec(column);
    const f = m ? fields.get(m[1]!) : undefined;
    return f?.type === 'checkbox' && columns(f).includes(column) ? f.form : undefined;
  }

  private importRows(p: Project, rows: Array<Record<string, string>>, overwrite: 'normal' | 'overwrite'): number {
    const repeating = new Set(p.def.repeating ?? []);
    // Validate everything first: REDCap imports all rows or none.
    for (const row of rows) {
      for (const col of Object.keys(row)) {
        if (col === 'redcap_repeat_instrument' || col === 'redcap_repeat_instance') continue;
        if (!this.formOf(p, col)) throw new ApiError(400, `The following fields were not found in the project as real data fields: ${col}`);
      }
      if (!row[p.idField]) throw new ApiError(400, `The record ID field ${p.idField} is missing or blank`);
      const form = row.redcap_repeat_instrument ?? '';
      if (form !== '') {
        if (!repeating.has(form)) throw new ApiError(400, `The instrument "${form}" is not a repeating instrument`);
        if (!/^[1-9]\d*$/.test(row.redcap_repeat_instance ?? '')) throw new ApiError(400, `redcap_repeat_instance must be a positive integer for record ${row[p.idField]}`);
        for (const col of Object.keys(row)) {
          if (col === p.idField || col.startsWith('redcap_repeat')) continue;
          if (this.formOf(p, col) !== form) throw new ApiError(400, `The field ${col} is not on the repeating instrument "${form}"`);
        }
      }
    }
    const touched = new Set<string>();
    for (const row of rows) {
      const id = row[p.idField]!;
      touched.add(id);
      let rec = p.records.get(id);
      if (!rec) {
        rec = { main: { [p.idField]: id }, repeats: new Map() };
        p.records.set(id, rec);
      }
      const form = row.redcap_repeat_instrument ?? '';
      let target = rec.main;
      if (form !== '') {
        const inst = Number(row.redcap_repeat_instance);
        let byInst = rec.repeats.get(form);
        if (!byInst) rec.repeats.set(form, (byInst = new Map()));
        target = byInst.get(inst) ?? {};
        byInst.set(inst, target);
      }
      for (const [col, v] of Object.entries(row)) {
        if (col === p.idField || col.startsWith('redcap_repeat')) continue;
        if (v === '' && overwrite === 'normal') continue;
        target[col] = v;
      }
    }
    return touched.size;
  }

  private exportRows(p: Project, q: { records?: string[]; fields?: string[]; forms?: string[]; filter?: Pred; label?: boolean }): Array<Record<string, string>> {
    const fields = expandFields(p.def);
    const repeating = new Set(p.def.repeating ?? []);
    let wanted = [...fields.values()];
    if (q.fields || q.forms) {
      wanted = wanted.filter((f) => q.fields?.includes(f.name) || q.forms?.includes(f.form));
    }
    const hasRepeats = repeating.size > 0;
    const label = (f: FieldDef, v: string): string => {
      if (!q.label || v === '') return v;
      if (f.type === 'yesno') return v === '1' ? 'Yes' : v === '0' ? 'No' : v;
      if (f.type === 'dropdown') return f.choices?.[v] ?? v;
      return v;
    };
    const rowFor = (id: string, data: Record<string, string>, form: string, inst: number | undefined, main: Record<string, string>): Record<string, string> => {
      const row: Record<string, string> = {};
      for (const f of wanted) {
        const own = form === '' ? !repeating.has(f.form) : f.form === form;
        if (f.type === 'checkbox') {
          for (const col of columns(f)) {
            const v = own ? (data[col] ?? '0') : '';
            row[col] = q.label && v !== '' ? (v === '1' ? 'Checked' : 'Unchecked') : own ? (v === '' ? '0' : v) : '';
          }
        } else {
          row[f.name] = f.name === p.idField ? id : own ? label(f, data[f.name] ?? '') : '';
        }
      }
      if (hasRepeats) {
        row.redcap_repeat_instrument = form;
        row.redcap_repeat_instance = inst === undefined ? '' : String(inst);
      }
      if (q.filter) {
        const view = { ...main, ...data, [p.idField]: id };
        if (!q.filter(view)) return undefined as unknown as Record<string, string>;
      }
      return row;
    };
    const wantForm = (form: string): boolean => !(q.fields || q.forms) || wanted.some((f) => f.form === form && f.name !== p.idField);
    const mainWanted = !(q.fields || q.forms) || wanted.some((f) => !repeating.has(f.form));
    const out: Array<Record<string, string>> = [];
    const ids = [...p.records.keys()].sort();
    for (const id of ids) {
      if (q.records && !q.records.includes(id)) continue;
      const rec = p.records.get(id)!;
      if (mainWanted) {
        const r = rowFor(id, rec.main, '', undefined, rec.main);
        if (r) out.push(r);
      }
      for (const [form, byInst] of rec.repeats) {
        if (!wantForm(form)) continue;
        for (const inst of [...byInst.keys()].sort((a, b) => a - b)) {
          const r = rowFor(id, byInst.get(inst)!, form, inst, rec.main);
          if (r) out.push(r);
        }
      }
    }
    return out;
  }

  private handle(params: Record<string, string>): unknown {
    const token = params.token ?? '';
    if (!/^[0-9A-Fa-f]{32}$/.test(token)) throw new ApiError(403, 'You do not have permissions to use the API');
    const p = this.project(token);
    const list = (name: string): string[] | undefined => {
      const vals = Object.entries(params)
        .filter(([k]) => k === name || k.startsWith(`${name}[`))
        .flatMap(([, v]) => v.split(',').map((s) => s.trim()).filter(Boolean));
      return vals.length > 0 ? vals : undefined;
    };
    switch (params.content) {
      case 'version':
        return '14.5.0';
      case 'project':
        return { project_id: 1, project_title: p.def.title, is_longitudinal: 0, has_repeating_instruments_or_events: (p.def.repeating?.length ?? 0) > 0 ? 1 : 0 };
      case 'record': {
        if ((params.format ?? 'xml') !== 'json') throw new ApiError(400, 'This stand-in only speaks format=json');
        if ((params.type ?? 'flat') !== 'flat') throw new ApiError(400, 'This stand-in only speaks type=flat');
        const action = params.action ?? (params.data !== undefined ? 'import' : 'export');
        if (action === 'import') {
          const ow = params.overwriteBehavior ?? 'normal';
          if (ow !== 'normal' && ow !== 'overwrite') throw new ApiError(400, 'The value of the parameter "overwriteBehavior" is not valid');
          let data: unknown;
          try {
            data = JSON.parse(params.data ?? '');
          } catch {
            throw new ApiError(400, 'The data being imported is not formatted correctly. The JSON must be in an array, as in [{ ... }].');
          }
          if (!Array.isArray(data)) throw new ApiError(400, 'The data being imported is not formatted correctly. The JSON must be in an array, as in [{ ... }].');
          const rows = data.map((r) => Object.fromEntries(Object.entries(r as Record<string, unknown>).map(([k, v]) => [k, String(v ?? '')])));
          return { count: this.importRows(p, rows, ow) };
        }
        if (action !== 'export') throw new ApiError(400, 'The value of the parameter "action" is not valid');
        const fields = list('fields');
        const known = expandFields(p.def);
        const bad = (fields ?? []).filter((f) => !known.has(f));
        if (bad.length > 0) throw new ApiError(400, `The following values in the parameter "fields" are not valid: '${bad.join("', '")}'`);
        const forms = list('forms');
        const badForms = (forms ?? []).filter((f) => !p.def.fields.some((x) => x.form === f));
        if (badForms.length > 0) throw new ApiError(400, `The following values in the parameter "forms" are not valid: '${badForms.join("', '")}'`);
        const columnsKnown = new Set([...known.values()].flatMap((f) => [f.name, ...columns(f)]));
        const filter = params.filterLogic ? parseLogic(tokenize(params.filterLogic), columnsKnown) : undefined;
        return this.exportRows(p, { records: list('records'), fields, forms, filter, label: params.rawOrLabel === 'label' });
      }
      default:
        throw new ApiError(400, `The value of the parameter "content" is not valid`);
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const contentType = String(req.headers['content-type'] ?? '');
    const params = Object.fromEntries(new URLSearchParams(contentType.startsWith('application/x-www-form-urlencoded') ? body : ''));
    this.calls.push({ method: req.method ?? '', url: req.url ?? '', contentType, params });
    const send = (status: number, value: unknown): void => {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      res.writeHead(status, { 'content-type': typeof value === 'string' ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8' });
      res.end(text);
    };
    const failure = this.takeFailure(params);
    if (failure) {
      res.writeHead(failure.status, { 'content-type': failure.body.startsWith('{') ? 'application/json' : 'text/html' });
      res.end(failure.body);
      return;
    }
    if (req.method !== 'POST') {
      send(405, { error: 'The API only accepts POST requests' });
      return;
    }
    try {
      send(200, this.handle(params));
    } catch (err) {
      if (err instanceof ApiError) send(err.status, { error: err.message });
      else send(500, { error: `internal: ${(err as Error).message}` });
    }
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      void this.onRequest(req, res);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${port}/api/`;
    return this.url;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

// ---- FIONA's projects (data dictionaries from MMIV's Research-Information-System) ----
const text = (name: string, form: string): FieldDef => ({ name, form });

export function routingProject(token: string, destProjects: Record<string, string>): ProjectDef {
  return {
    title: 'Routing',
    token,
    fields: [
      text('record_id', 'routing'),
      { name: 'routing_active', form: 'routing', type: 'yesno' },
      { name: 'routing_dest_project', form: 'routing', type: 'dropdown', choices: destProjects },
      text('routing_incoming_aetitle', 'routing'),
      text('routing_sending_aetitle', 'routing'),
      text('routing_allowed_patientid', 'routing'),
      text('routing_allowed_patientname', 'routing'),
      text('routing_event_name', 'routing'),
      { name: 'routing_complete', form: 'routing', type: 'dropdown', choices: { 0: 'Incomplete', 1: 'Unverified', 2: 'Complete' } },
    ],
  };
}

export function couplingProject(token: string): ProjectDef {
  return {
    title: 'CouplingList',
    token,
    fields: ['record_id', 'cl_accessionnumber', 'cl_studyinstanceuid', 'cl_projectname', 'cl_subjectid', 'cl_eventname', 'cl_date', 'coupling_list_complete'].map((n) => text(n, 'coupling_list')),
  };
}

export function projectsProject(token: string): ProjectDef {
  return {
    title: 'DataTransferProjects',
    token,
    repeating: ['rewritepixelexclusions'],
    fields: [
      text('record_id', 'projects'),
      text('project_name', 'projects'),
      { name: 'project_active', form: 'projects', type: 'yesno' },
      text('project_patient_naming', 'projects'),
      { name: 'project_use_autoid', form: 'projects', type: 'yesno' },
      text('project_autoid_aetitle', 'projects'),
      { name: 'project_features', form: 'projects', type: 'checkbox', choices: { 0: 'Remove PR', 1: 'Never anonymize burned-in', 2: 'Remove secondary captures', 3: 'Never release burned-in' } },
      text('rewrite_ex_tag', 'rewritepixelexclusions'),
      text('rewrite_ex_reg', 'rewritepixelexclusions'),
    ],
  };
}

export function incomingProject(token: string): ProjectDef {
  return {
    title: 'Incoming',
    token,
    repeating: ['series', 'transfers'],
    fields: [
      ...['study_instance_uid', 'study_institution_name', 'study_aetitle_sender', 'study_aetitle_addressed', 'study_patient_name', 'study_patient_id',
        'study_description', 'study_date', 'study_time', 'study_accession_number', 'incoming_studies_complete'].map((n) => text(n, 'incoming_studies')),
      ...['series_instance_uid', 'series_description', 'series_date', 'series_time', 'series_num_files', 'series_sequence_name', 'series_classify_types',
        'series_complete'].map((n) => text(n, 'series')),
      ...['transfer_requested_date', 'transfer_project_name', 'transfer_name', 'transfer_event_name', 'transfer_date'].map((n) => text(n, 'transfers')),
      { name: 'transfer_error', form: 'transfers', type: 'checkbox', choices: { 1: 'Anonymization error', 2: 'Send error to rDMA', 3: 'Performed pixel anonymization' } },
      ...['transfer_mapped_uid', 'transfer_error_message', 'transfer_active_proc_time', 'transfers_complete'].map((n) => text(n, 'transfers')),
    ],
  };
}
