/**
 * The one place fiona imports dcmjs-dimse (0.3.3, pinned). It is a CommonJS webpack bundle, so
 * Node's ESM loader gives us only its default export; this module re-exports the parts fiona
 * uses with their types, and silences the library's logger (it logs every PDU at INFO by
 * default, building the strings even when nobody reads them).
 *
 * The SCU code (src/lib/net/scu) and the SCP code (src/lib/net/scp) import from here only.
 */
import { fionaVersion } from '../version.js';
import dimse from 'dcmjs-dimse';

type DimseModule = typeof dimse;

export type Association = InstanceType<DimseModule['association']['Association']>;
export type PresentationContext = InstanceType<DimseModule['association']['PresentationContext']>;
export type DimseDataset = InstanceType<DimseModule['Dataset']>;

export const Scp: DimseModule['Scp'] = dimse.Scp;
export const Server: DimseModule['Server'] = dimse.Server;
export const Client: DimseModule['Client'] = dimse.Client;
export const Dataset: DimseModule['Dataset'] = dimse.Dataset;
export const Implementation: DimseModule['Implementation'] = dimse.Implementation;
export const constants: DimseModule['constants'] = dimse.constants;
export const requests: DimseModule['requests'] = dimse.requests;
export const responses: DimseModule['responses'] = dimse.responses;
export const associationClasses: DimseModule['association'] = dimse.association;
export const dimseVersion: string = dimse.version;

// dcmjs-dimse enables every log level at import; fiona reports through its own events.
dimse.log.setLevel('silent');

// dcmjs-dimse logs `${association.toString()}` for every A-ASSOCIATE-RQ and -AC, and the
// template string is built before the (silent) logger drops it: about 7 ms per call for the
// 128 presentation contexts storescu proposes, twice per association. Only build it when the
// library's INFO logging is on.
{
  const proto = dimse.association.Association.prototype as { toString(): string };
  const full = proto.toString;
  proto.toString = function toString(this: unknown): string {
    return dimse.log.getLevel() <= dimse.log.levels.INFO ? full.call(this) : '(association; enable dcmjs-dimse logging for details)';
  };
}

// fiona's Implementation Class UID lives in scu-common.ts (free of dcmjs-dimse); one value.
export { FIONA_IMPLEMENTATION_CLASS_UID } from './scu-common.js';

/** Implementation Version Name (0002,0013): "FIONA_" + package version, at most 16 chars. */
export function fionaImplementationVersion(): string {
  return `FIONA_${fionaVersion()}`.slice(0, 16);
}
