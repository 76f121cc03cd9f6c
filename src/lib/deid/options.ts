/**
 * The options of the PS3.15 Basic Application Level Confidentiality Profile (E.3), by the
 * names fiona uses in project rules (camel case) and on the command line (kebab case), and
 * the CID 7050 code each one is marked with in DeidentificationMethodCodeSequence.
 */
export const PROFILE_OPTIONS = [
  'retainSafePrivate',
  'retainUIDs',
  'retainDeviceIdentity',
  'retainInstitutionIdentity',
  'retainPatientCharacteristics',
  'retainLongitudinalFullDates',
  'retainLongitudinalModifiedDates',
  'cleanDescriptors',
  'cleanStructuredContent',
  'cleanGraphics',
] as const;
export type ProfileOption = (typeof PROFILE_OPTIONS)[number];

/** A code of CID 7050 "De-identification Method" (scheme DCM). */
export interface MethodCode {
  value: string;
  meaning: string;
}

export const BASIC_PROFILE_CODE: MethodCode = { value: '113100', meaning: 'Basic Application Confidentiality Profile' };
export const CLEAN_PIXEL_DATA_CODE: MethodCode = { value: '113101', meaning: 'Clean Pixel Data Option' };

export const OPTION_CODES: Record<ProfileOption, MethodCode> = {
  cleanGraphics: { value: '113103', meaning: 'Clean Graphics Option' },
  cleanStructuredContent: { value: '113104', meaning: 'Clean Structured Content Option' },
  cleanDescriptors: { value: '113105', meaning: 'Clean Descriptors Option' },
  retainLongitudinalFullDates: { value: '113106', meaning: 'Retain Longitudinal Temporal Information Full Dates Option' },
  retainLongitudinalModifiedDates: { value: '113107', meaning: 'Retain Longitudinal Temporal Information Modified Dates Option' },
  retainPatientCharacteristics: { value: '113108', meaning: 'Retain Patient Characteristics Option' },
  retainDeviceIdentity: { value: '113109', meaning: 'Retain Device Identity Option' },
  retainUIDs: { value: '113110', meaning: 'Retain UIDs Option' },
  retainSafePrivate: { value: '113111', meaning: 'Retain Safe Private Option' },
  retainInstitutionIdentity: { value: '113112', meaning: 'Retain Institution Identity Option' },
};

/** 'retain-uids' -> 'retainUIDs'; also accepts the camel-case name itself. */
export function parseOptionName(text: string): ProfileOption | undefined {
  const t = text.trim();
  if ((PROFILE_OPTIONS as readonly string[]).includes(t)) return t as ProfileOption;
  return PROFILE_OPTIONS.find((o) => optionCliName(o) === t.toLowerCase());
}

/** 'retainUIDs' -> 'retain-uids'. */
export function optionCliName(option: ProfileOption): string {
  return option.replace(/UIDs/, 'Uids').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The profile names fiona knows; only the standard's Basic profile exists (with options). */
export const PROFILES = ['basic'] as const;
export type ProfileName = (typeof PROFILES)[number];
