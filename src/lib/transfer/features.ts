import type { SeriesInfo, StudyInfo } from '../route/study.js';
import type { ProjectFeature } from '../route/types.js';
import type { SkippedSeries } from './requests.js';

/**
 * A project's features decide which series leave the gateway at all (FIONA's
 * project_features in DataTransferProjects). A series dropped here is recorded in the
 * result with the reason; it still counts as seen, so it never makes a study look new.
 */
const PR_SOP_PREFIX = '1.2.840.10008.5.1.4.1.1.11.';
const SC_SOP = '1.2.840.10008.5.1.4.1.1.7';
const CHECK_BURNED_IN = 'CHECKBURNEDINFO';

export function isPresentationState(s: SeriesInfo): boolean {
  return s.modality?.toUpperCase() === 'PR' || (s.sopClassUid ?? '').startsWith(PR_SOP_PREFIX);
}

/** Secondary captures by SOP class; FIONA also counted series its rules put in CHECKBURNEDINFO. */
export function isSecondaryCapture(s: SeriesInfo): boolean {
  const sop = s.sopClassUid ?? '';
  return sop === SC_SOP || sop.startsWith(`${SC_SOP}.`) || s.classifyTypes.some((t) => t.toUpperCase() === CHECK_BURNED_IN);
}

export function mayHoldBurnedIn(s: SeriesInfo): boolean {
  return (s.burnedInAnnotation ?? '').toUpperCase() === 'YES' || s.classifyTypes.some((t) => t.toUpperCase() === CHECK_BURNED_IN);
}

export function selectSeries(study: StudyInfo, features: ReadonlySet<ProjectFeature>): { send: SeriesInfo[]; skipped: SkippedSeries[] } {
  const send: SeriesInfo[] = [];
  const skipped: SkippedSeries[] = [];
  for (const s of study.series) {
    if (features.has('drop-presentation-states') && isPresentationState(s)) {
      skipped.push({ series: s.uid, reason: 'presentation state (project feature drop-presentation-states)' });
    } else if (features.has('drop-secondary-captures') && isSecondaryCapture(s)) {
      skipped.push({ series: s.uid, reason: 'secondary capture (project feature drop-secondary-captures)' });
    } else if (features.has('never-release-burned-in') && mayHoldBurnedIn(s)) {
      skipped.push({ series: s.uid, reason: 'may hold burned-in identity (project feature never-release-burned-in)' });
    } else {
      send.push(s);
    }
  }
  return { send, skipped };
}
