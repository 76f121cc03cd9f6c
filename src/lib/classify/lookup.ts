import type { Header } from '../dicom/index.js';
import { headerValue } from './header-values.js';
import { seriesValue, type SeriesJson } from './series.js';
import type { Lookup, RuleValue } from './types.js';

/** Rule lookups for one instance: series JSON first for names, then the header (cached per tag). */
export function instanceLookup(h: Header, json: SeriesJson): Lookup {
  const cache = new Map<number, RuleValue | undefined>();
  const fromHeader = (tag: number): RuleValue | undefined => {
    if (cache.has(tag)) return cache.get(tag);
    const v = headerValue(h, tag);
    cache.set(tag, v);
    return v;
  };
  return (ref) => {
    if (ref.kind === 'name') {
      const s = seriesValue(json, ref.name);
      if (s !== undefined) return s;
      return ref.tag === undefined ? undefined : fromHeader(ref.tag);
    }
    return fromHeader(ref.tag);
  };
}
