import type { DicomHeader } from '../dicom/index.js';
import type { PixelRect } from './project.js';

/**
 * Blanking rectangles of uncompressed pixel data (the Clean Pixel Data Option, done the
 * only way that is certain: the project names where its scanners burn text, fiona zeroes
 * those pixels in every frame). Compressed pixel data is refused: blanking it means
 * decoding and re-encoding, which fiona does not do behind the user's back.
 */
export const UNCOMPRESSED_SYNTAXES: ReadonlySet<string> = new Set([
  '1.2.840.10008.1.2', // implicit VR little endian
  '1.2.840.10008.1.2.1', // explicit VR little endian
  '1.2.840.10008.1.2.2', // explicit VR big endian
  '1.2.840.10008.1.2.1.99', // deflated explicit VR little endian (the rewrite inflates and deflates)
]);

export interface PixelGeometry {
  rows: number;
  columns: number;
  bitsAllocated: number;
  samplesPerPixel: number;
  planar: boolean;
  frames: number;
}

const MASKABLE_PHOTOMETRIC = new Set(['MONOCHROME1', 'MONOCHROME2', 'RGB', 'PALETTE COLOR', 'YBR_FULL']);

/** The geometry of a file's pixel data, or a reason it cannot be masked. */
export function pixelGeometry(h: DicomHeader): PixelGeometry | string {
  if (!UNCOMPRESSED_SYNTAXES.has(h.transferSyntaxUid)) {
    return `pixel data is compressed (transfer syntax ${h.transferSyntaxUid}); a mask can only be applied to uncompressed pixel data (decompress it first, e.g. with dcmdjpeg or gdcmconv --raw)`;
  }
  const rows = h.number('Rows');
  const columns = h.number('Columns');
  const bitsAllocated = h.number('BitsAllocated');
  const samplesPerPixel = h.number('SamplesPerPixel') ?? 1;
  const photometric = h.string('PhotometricInterpretation') ?? '';
  if (!rows || !columns || !bitsAllocated) return 'Rows, Columns or BitsAllocated missing: the pixel data cannot be located';
  if (![8, 16, 32].includes(bitsAllocated)) return `BitsAllocated ${bitsAllocated}: only 8, 16 and 32 bit pixels can be masked`;
  if (!MASKABLE_PHOTOMETRIC.has(photometric)) return `PhotometricInterpretation ${photometric || '(missing)'} cannot be masked pixel by pixel`;
  const frames = Math.max(1, Number.parseInt(h.string('NumberOfFrames') ?? '1', 10) || 1);
  return { rows, columns, bitsAllocated, samplesPerPixel, planar: (h.number('PlanarConfiguration') ?? 0) === 1, frames };
}

/** Zero the rectangles (clipped to the image) in every frame and sample plane; returns a new buffer. */
export function maskPixels(pixels: Uint8Array, g: PixelGeometry, rects: PixelRect[]): Uint8Array {
  const out = new Uint8Array(pixels);
  const bps = g.bitsAllocated / 8;
  const frameBytes = g.rows * g.columns * g.samplesPerPixel * bps;
  if (pixels.length < frameBytes * g.frames) {
    throw new Error(`pixel data is ${pixels.length} bytes, expected ${frameBytes * g.frames} for ${g.frames} frame(s) of ${g.rows}x${g.columns}`);
  }
  for (let f = 0; f < g.frames; f++) {
    const base = f * frameBytes;
    for (const r of rects) {
      const x0 = Math.min(r.x, g.columns);
      const x1 = Math.min(r.x + r.width, g.columns);
      const y1 = Math.min(r.y + r.height, g.rows);
      if (x1 <= x0) continue;
      for (let y = Math.min(r.y, g.rows); y < y1; y++) {
        if (g.planar) {
          for (let s = 0; s < g.samplesPerPixel; s++) {
            const row = base + (s * g.rows * g.columns + y * g.columns) * bps;
            out.fill(0, row + x0 * bps, row + x1 * bps);
          }
        } else {
          const row = base + y * g.columns * g.samplesPerPixel * bps;
          out.fill(0, row + x0 * g.samplesPerPixel * bps, row + x1 * g.samplesPerPixel * bps);
        }
      }
    }
  }
  return out;
}
