export { StudyDetector, type DetectorOptions } from './detector.js';
export { buildManifest, diffManifests, manifestPath, readManifest, writeManifest, type StudyManifest, type SeriesEntry, type ManifestDiff } from './manifest.js';
export { loadState, saveState, statePath, emptyState, type DetectState, type OpenStudy, type PendingExec } from './state.js';
export { listStudies, listSeries, studyActivity } from './site-scan.js';
export { runExec, type ExecSpec, type ExecResult } from './exec.js';
export { arrivalFromInput, type ArrivalOutcome } from './input.js';
