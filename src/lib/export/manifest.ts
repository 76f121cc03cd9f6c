import type { NiftiSeriesResult } from './nifti.js';

/**
 * fiona.txt, the manifest at the top of every archive: what was exported, when, by which
 * profile and options, with counts, and what was left out and why. Like FIONA's, it tells
 * the recipient to review the de-identified metadata before sharing. It holds the research
 * pseudonym and de-identified values only.
 */
export interface ManifestInput {
  fionaVersion: string;
  time: Date;
  project: string;
  exportType: string;
  participant?: string;
  event?: string;
  profile: string;
  options: string[];
  overrides: string[];
  source: string;
  encrypted: boolean;
  level: number;
  series: Array<{ folder: string; instances: number }>;
  notReleased: Array<{ reason: string; count: number }>;
  nifti?: NiftiSeriesResult[];
  niftiRemovedKeys?: string[];
}

export function manifestText(m: ManifestInput): string {
  const instances = m.series.reduce((n, s) => n + s.instances, 0);
  const L: string[] = [
    `Archive created by fiona ${m.fionaVersion} (a rebuild of FIONA, the research DICOM gateway).`,
    '',
    `Date of export: ${m.time.toISOString()}`,
    `Research project: ${m.project}`,
    `Export type: ${m.exportType}`,
    ...(m.participant ? [`Participant (pseudonym): ${m.participant}`] : []),
    ...(m.event ? [`Imaging event: ${m.event}`] : []),
    `De-identification: DICOM PS3.15 ${m.profile} profile${m.options.length ? ` with options ${m.options.join(', ')}` : ' (no options)'}`,
    ...(m.overrides.length ? [`Tag overrides: ${m.overrides.join('; ')}`] : []),
    `Source: ${m.source}`,
    `Archive: ZIP, ${m.level === 0 ? 'stored' : `deflate level ${m.level}`}${m.encrypted ? ', AES-256 encrypted' : ''}`,
    '',
    `DICOM: ${m.series.length} series, ${instances} instances`,
    ...m.series.map((s) => `  ${s.folder}: ${s.instances}`),
  ];
  if (m.notReleased.length > 0) {
    L.push('', 'Instances not released (kept back by the de-identification):');
    for (const n of m.notReleased) L.push(`  ${n.count} x ${n.reason}`);
  }
  if (m.nifti) {
    const ok = m.nifti.filter((r) => r.status === 'converted');
    L.push('', `NIfTI (dcm2niix -z y -b y -ba y): ${ok.length} of ${m.nifti.length} series converted, in nifti/`);
    for (const r of m.nifti) {
      if (r.status === 'converted') L.push(`  ${r.series}: ${r.files.filter((f) => f.endsWith('.nii.gz')).length} file(s)`);
      else L.push(`  ${r.series}: ${r.status === 'partial' ? 'PARTIAL' : 'NOT CONVERTED'}: ${r.reason}`);
    }
    if (m.niftiRemovedKeys && m.niftiRemovedKeys.length > 0) L.push(`  Removed from the JSON sidecars: ${m.niftiRemovedKeys.join(', ')}`);
  }
  L.push(
    '',
    'Before sharing this package, review the de-identified metadata: de-identification',
    'follows rules, and free text or burned-in pixels can still hold what the rules do not know.',
  );
  return `${L.join('\n')}\n`;
}
