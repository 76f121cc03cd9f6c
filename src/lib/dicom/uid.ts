/**
 * DICOM UID rules (PS3.5 9.1): components of digits separated by dots, no leading zero
 * in a component of more than one digit, at most 64 characters. A UID that passes this
 * check is safe as a path component (no '/', no '..').
 */
const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && UID_RE.test(uid);
}

/**
 * The looser form DESIGN.md allows for UIDs that become path parts: digits and dots only.
 * Real scanners write leading zeros now and then; those are still safe in a path.
 */
export function isPathSafeUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(uid);
}
