import { parseRules, RulesError, type RawRules } from '../route/parse.js';
import type { RulesSource } from '../route/source.js';
import type { RoutingRules } from '../route/types.js';
import type { RedcapClient, RedcapRow } from './client.js';

/**
 * Routing rules read from REDCap projects with FIONA's field names (Routing: routing_*,
 * CouplingList: cl_*, DataTransferProjects: project_*), validated exactly like a local
 * routes file. A local file may be given too: its routes and coupling entries are added,
 * and its project entries fill in what FIONA's REDCap projects never held (destination,
 * de-identification rules) for projects of the same name.
 */
export interface RedcapSourceOptions {
  routing?: RedcapClient;
  coupling?: RedcapClient;
  projects?: RedcapClient;
  local?: RawRules;
  localOrigin?: string;
  baseDir: string;
  now?: () => Date;
}

type Raw = Record<string, unknown>;

/** Rows of a repeating instrument (e.g. rewritepixelexclusions) are not project records. */
function mainRows(rows: RedcapRow[]): RedcapRow[] {
  return rows.filter((r) => !r.redcap_repeat_instrument);
}

function ymd(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export class RedcapRulesSource implements RulesSource {
  readonly origin: string;
  constructor(private readonly o: RedcapSourceOptions) {
    const url = o.routing?.url ?? o.coupling?.url ?? o.projects?.url ?? '(no REDCap project)';
    this.origin = o.localOrigin ? `REDCap ${url} + ${o.localOrigin}` : `REDCap ${url}`;
  }

  private expiryDays(): number {
    const n = Number(this.o.local?.couplingExpiryDays ?? 14);
    return Number.isInteger(n) && n >= 0 ? n : 14;
  }

  async load(): Promise<RoutingRules> {
    const local: RawRules = this.o.local ?? { routes: [], coupling: [], projects: [] };
    const routing = this.o.routing
      ? // Labels, as FIONA did, so routing_dest_project reads as the project's name even
        // where the dropdown's code differs from it ("QC-NHPhantom" -> "QC - NH Phantom").
        await this.o.routing.exportRecords({ rawOrLabel: 'label', filterLogic: "[routing_active] = '1'" })
      : [];
    let coupling: RedcapRow[] = [];
    if (this.o.coupling) {
      // Ask only for entries young enough to apply (FIONA: 14 days); a day more for time zones.
      const cutoff = new Date((this.o.now?.() ?? new Date()).getTime() - (this.expiryDays() + 1) * 86_400_000);
      coupling = await this.o.coupling.exportRecords({ filterLogic: `[cl_date] >= '${ymd(cutoff)}'` });
    }
    const projectRows = this.o.projects ? mainRows(await this.o.projects.exportRecords()) : [];

    const byName = new Map<string, Raw>();
    for (const row of projectRows) {
      const name = row.project_name?.trim();
      if (name) byName.set(name, { ...row });
    }
    for (const p of local.projects) {
      const name = String(p.name ?? p.project_name ?? '');
      const merged = { ...(byName.get(name) ?? {}), ...p };
      byName.set(name, merged);
    }
    const raw: RawRules = {
      routes: [...mainRows(routing), ...local.routes],
      coupling: [...mainRows(coupling), ...local.coupling],
      projects: [...byName.values()],
      couplingExpiryDays: local.couplingExpiryDays,
      defaultDestination: local.defaultDestination,
    };
    try {
      return parseRules(raw, { origin: this.origin, baseDir: this.o.baseDir });
    } catch (err) {
      if (err instanceof RulesError) throw new RulesError(`${this.origin}: ${err.entry}`, err.message.slice(err.entry.length + 2));
      throw err;
    }
  }
}
