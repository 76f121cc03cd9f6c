/**
 * The routing model: what decides which research project a study belongs to and under
 * which pseudonym. The names follow FIONA's REDCap projects (Routing, CouplingList,
 * DataTransferProjects); see docs/fiona-route.md for the field-by-field mapping.
 */

/** A compiled pattern that remembers the text it came from (for messages and reports). */
export interface Pattern {
  source: string;
  regex: RegExp;
}

/** One routing rule (FIONA: a record of the Routing project). */
export interface Route {
  /** How the entry is named in messages: its `name`, its REDCap record_id, or `routes[i]`. */
  name: string;
  active: boolean;
  /** Destination project (routing_dest_project). */
  project: string;
  /** The AE title the sender addressed on the gateway (routing_incoming_aetitle). */
  incomingAet?: string;
  /** The sender's own AE title (routing_sending_aetitle). */
  sendingAet?: string;
  /** PatientID must match (routing_allowed_patientid); the match becomes the pseudonym. */
  patientId?: Pattern;
  /** PatientName must match (routing_allowed_patientname). */
  patientName?: Pattern;
  /** Event name written into the transfer (routing_event_name). */
  event?: string;
}

/** One coupling list entry (FIONA: a record of the CouplingList project). */
export interface CouplingEntry {
  name: string;
  accessionNumber?: string;
  studyInstanceUid?: string;
  project: string;
  /** The pseudonym (subject ID) in the project. */
  subject: string;
  event?: string;
  /** When the entry was made; it stops applying `couplingExpiryDays` later. */
  date: Date;
}

export type ProjectFeature = 'drop-presentation-states' | 'drop-secondary-captures' | 'never-release-burned-in';
export const PROJECT_FEATURES: readonly ProjectFeature[] = [
  'drop-presentation-states',
  'drop-secondary-captures',
  'never-release-burned-in',
];

/** Automatic pseudonyms for a project (FIONA: project_use_autoid, project_patient_naming). */
export interface AutoIdSpec {
  /** A small regular expression the generated IDs follow, e.g. `NT[0-9]{4}`. */
  pattern: string;
  /**
   * When set, every study addressed to this AE title goes to the project with an automatic
   * ID, without a route (FIONA: project_autoid_aetitle).
   */
  aet?: string;
}

/** A research project (FIONA: a record of the DataTransferProjects project). */
export interface Project {
  name: string;
  active: boolean;
  /** `dicom://CALLED@HOST:PORT?calling=AET` or `sftp://USER@HOST:PORT/DIR`. */
  destination: string;
  /** De-identification rules file for fiona-anonymize (absolute path), if any. */
  rules?: string;
  features: Set<ProjectFeature>;
  autoId?: AutoIdSpec;
  /** Written to InstitutionName (0008,0080); FIONA wrote the project name. */
  institution: string;
  /** SFTP key and known_hosts for an sftp:// destination (else fiona-transfer's --identity/--known-hosts). */
  identity?: string;
  knownHosts?: string;
}

export interface RoutingRules {
  routes: Route[];
  coupling: CouplingEntry[];
  projects: Map<string, Project>;
  /** Coupling entries stop applying this many days after their date (FIONA: 14). */
  couplingExpiryDays: number;
  /** Where the rules came from, for messages (a path or a REDCap URL). */
  origin: string;
}

/** Why a study went to a project: which rule, and what it decided. */
export interface RouteMatch {
  project: string;
  pseudonym: string;
  event: string;
  /** `route:<name>`, `coupling:<name>` or `autoid:<project>`. */
  via: string;
}
