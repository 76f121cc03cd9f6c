import { ORIENTATION, type Plane, type Protocol, type SeriesType } from './protocols.js';

/** Where instance i of a series lies and what it shows (slice, volume, time point). */
export interface InstanceGeometry {
  plane: Plane;
  orientation: readonly [number, number, number, number, number, number];
  /** Centre of the slice (or of the mosaic's slab) in LPS mm. */
  centre: [number, number, number];
  /** Signed distance of the slice along its normal (SliceLocation). */
  sliceLocation: number;
  /** 0-based slice within its volume, volume (DWI direction, fMRI time point). */
  slice: number;
  slicesPerVolume: number;
  volume: number;
  volumes: number;
}

export function normalOf(o: readonly number[]): [number, number, number] {
  const [rx, ry, rz, cx, cy, cz] = o as [number, number, number, number, number, number];
  return [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx];
}

/** fMRI mosaics hold this many slices (4 x 4 tiles), as a Siemens 64x64 EPI of 16 slices. */
export const MOSAIC_TILES = 4;

/**
 * How a series of n instances is laid out:
 *  localizer: instances cycle through sagittal, coronal, axial;
 *  DWI: up to 4 volumes (b=0, then b=1000 along x, y, z) of ceil(n/4) slices;
 *  fMRI mosaic: one instance per time point, the 16 slices inside it;
 *  fMRI non-mosaic: up to 16 slices per time point;
 *  otherwise one volume of n slices.
 */
export function instanceGeometry(type: SeriesType, p: Protocol, n: number, i: number, mosaic: boolean): InstanceGeometry {
  let plane: Plane = p.planes[0]!;
  let slice = i;
  let slicesPerVolume = n;
  let volume = 0;
  let volumes = 1;
  if (type === 'localizer') {
    plane = p.planes[i % p.planes.length]!;
    slice = Math.floor(i / p.planes.length);
    slicesPerVolume = Math.ceil(n / p.planes.length);
  } else if (type === 'dwi') {
    volumes = Math.min(4, n);
    slicesPerVolume = Math.ceil(n / volumes);
    slice = i % slicesPerVolume;
    volume = Math.floor(i / slicesPerVolume);
  } else if (type === 'fmri') {
    slicesPerVolume = mosaic ? MOSAIC_TILES * MOSAIC_TILES : Math.min(n, 16);
    volumes = mosaic ? n : Math.ceil(n / slicesPerVolume);
    slice = mosaic ? 0 : i % slicesPerVolume;
    volume = mosaic ? i : Math.floor(i / slicesPerVolume);
  }
  const orientation = ORIENTATION[plane];
  const normal = normalOf(orientation);
  // A mosaic's position is that of its middle (slices are inside it); others step along the normal.
  const d = mosaic && type === 'fmri' ? 0 : (slice - (slicesPerVolume - 1) / 2) * p.sliceSpacing;
  const distance = Math.round(d * 1000) / 1000;
  return {
    plane,
    orientation,
    centre: [normal[0] * distance, normal[1] * distance, normal[2] * distance],
    sliceLocation: distance,
    slice,
    slicesPerVolume,
    volume,
    volumes,
  };
}

/** ImagePositionPatient of the first pixel of a rows x cols image centred on `centre`. */
export function firstPixelPosition(
  centre: readonly number[],
  orientation: readonly number[],
  rows: number,
  cols: number,
  spacing: number,
): [number, number, number] {
  const [rx, ry, rz, cx, cy, cz] = orientation as [number, number, number, number, number, number];
  const hc = ((cols - 1) / 2) * spacing;
  const hr = ((rows - 1) / 2) * spacing;
  return [centre[0]! - rx * hc - cx * hr, centre[1]! - ry * hc - cy * hr, centre[2]! - rz * hc - cz * hr];
}

/** A DS value: at most 16 characters, no exponent, no "-0". */
export function ds(x: number): string {
  for (let digits = 6; digits >= 0; digits--) {
    let s = Number(x.toFixed(digits)).toString();
    if (s === '-0') s = '0';
    if (s.length <= 16 && !s.includes('e')) return s;
  }
  throw new Error(`cannot write ${x} as DS`);
}

export function dsList(xs: readonly number[]): string {
  return xs.map(ds).join('\\');
}
