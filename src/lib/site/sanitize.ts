/**
 * Header values that become path parts. UIDs are validated elsewhere (dicom/uid.ts); any
 * other value is reduced to [A-Za-z0-9._-], never '.' or '..', never empty, bounded length.
 */
export function sanitizePathPart(value: string | undefined, fallback = 'unknown', maxLength = 64): string {
  const cleaned = (value ?? '')
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+/, '')
    .replace(/_+$/, '')
    .slice(0, maxLength);
  if (cleaned === '' || cleaned === '.' || cleaned === '..') return fallback;
  return cleaned;
}
