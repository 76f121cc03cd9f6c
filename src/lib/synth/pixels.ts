import type { Contrast } from './protocols.js';

/**
 * A cheap 3D head phantom sampled in patient coordinates (LPS, mm): scalp, grey and white
 * matter, two ventricles and a nose (so anterior is visible). Because slices are sampled
 * from one volume through their real ImagePositionPatient/ImageOrientationPatient, every
 * series of a study is geometrically consistent and dcm2niix makes a sensible volume.
 *
 * Values stay within 12 bits (0..4095), so a pixel's high byte is never above 0x0F: pixel
 * data can never contain two printable ASCII characters in a row, and a leak test that
 * searches a file for a name or ID cannot be fooled by pixels.
 */
export interface SliceGeometry {
  /** World position of the centre of the first pixel (ImagePositionPatient). */
  origin: readonly [number, number, number];
  /** Direction of increasing column, then of increasing row (ImageOrientationPatient). */
  orientation: readonly [number, number, number, number, number, number];
  pixelSpacing: number;
}

export interface SliceTarget {
  pixels: Uint16Array;
  /** Width of the whole image in pixels (a mosaic tile is part of a wider image). */
  stride: number;
  /** Offset of the first pixel of this slice in `pixels`. */
  offset: number;
  rows: number;
  cols: number;
}

const MAX = 4095;

export function renderSlice(t: SliceTarget, g: SliceGeometry, c: Contrast, noiseSeed: number, gain = 1): void {
  const [ox, oy, oz] = g.origin;
  const [rx, ry, rz, cx, cy, cz] = g.orientation;
  const ps = g.pixelSpacing;
  const seed = noiseSeed | 0;
  for (let r = 0; r < t.rows; r++) {
    const bx = ox + cx * r * ps;
    const by = oy + cy * r * ps;
    const bz = oz + cz * r * ps;
    let idx = t.offset + r * t.stride;
    for (let col = 0; col < t.cols; col++, idx++) {
      const x = bx + rx * col * ps;
      const y = by + ry * col * ps;
      const z = bz + rz * col * ps;
      let h = Math.imul(idx ^ seed, 0x9e3779b1);
      h ^= h >>> 15;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      const noise = (h & 63) - 32;
      t.pixels[idx] = clamp(tissue(x, y, z, c) * gain + noise);
    }
  }
}

function clamp(v: number): number {
  if (v < 0) return 0;
  if (v > MAX) return MAX;
  return Math.round(v);
}

function tissue(x: number, y: number, z: number, c: Contrast): number {
  const nose = (x / 10) ** 2 + ((y + 98) / 12) ** 2 + ((z + 20) / 20) ** 2;
  const head = (x / 75) ** 2 + (y / 95) ** 2 + (z / 100) ** 2;
  if (head >= 1) return nose < 1 ? c.scalp : 40;
  const brain = (x / 66) ** 2 + ((y - 3) / 85) ** 2 + ((z - 5) / 88) ** 2;
  if (brain >= 1) return c.scalp;
  const ventricle = ((Math.abs(x) - 12) / 8) ** 2 + ((y + 5) / 25) ** 2 + ((z - 10) / 15) ** 2;
  if (ventricle < 1) return c.csf;
  return brain > 0.72 ? c.gm : c.wm;
}

/**
 * Mark an image as carrying burned-in annotation: a bright bar across the top rows, where
 * scanners print the patient's name. (The header says BurnedInAnnotation YES.)
 */
export function burnInBar(pixels: Uint16Array, cols: number, rows: number): void {
  const height = Math.max(2, Math.floor(rows / 16));
  pixels.fill(MAX, 0, Math.min(pixels.length, height * cols));
}
