/**
 * Pillow's `Image.resize((w, h), filter)` of an 8-bit RGB image, bit for bit, for the filters the
 * Hugging Face image processors use: LANCZOS (Idefics3 / SmolVLM), BICUBIC, BILINEAR. Reimplemented
 * from Pillow's libImaging/Resample.c: a separable convolution (horizontal pass, then vertical)
 * whose support widens with the downscale factor (antialiasing); coefficients normalised to sum 1
 * in double, then quantised to 22-bit fixed point; each pass rounds to uint8 with clipping.
 *
 * Checked against Pillow itself (test/fixtures, made by goldens/make_pil_resize_goldens.py):
 * every filter, down- and up-scaling, odd sizes, one axis at a time.
 */
import type { RgbImage } from '@userpref/core';

/** PIL.Image.Resampling values as preprocessor_config.json stores them. */
export const PIL_RESAMPLE = { NEAREST: 0, LANCZOS: 1, BILINEAR: 2, BICUBIC: 3 } as const;
export type PilFilter = 'lanczos' | 'bilinear' | 'bicubic';

interface Filter {
  readonly support: number;
  readonly f: (x: number) => number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const FILTERS: Record<PilFilter, Filter> = {
  bilinear: { support: 1, f: (x) => (x < 0 ? -x : x) < 1 ? 1 - (x < 0 ? -x : x) : 0 },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      const ax = x < 0 ? -x : x;
      if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
      if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

export function filterFromPil(resample: number): PilFilter {
  if (resample === PIL_RESAMPLE.LANCZOS) return 'lanczos';
  if (resample === PIL_RESAMPLE.BILINEAR) return 'bilinear';
  if (resample === PIL_RESAMPLE.BICUBIC) return 'bicubic';
  throw new Error(`resample=${resample} is not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC are)`);
}

const PRECISION_BITS = 32 - 8 - 2;

/** precompute_coeffs + normalize_coeffs_8bpc of Resample.c. */
function coefficients(inSize: number, outSize: number, filter: Filter): { bounds: Int32Array; kk: Int32Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = filter.f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * (1 << PRECISION_BITS)) : Math.trunc(0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One pass along x (horizontal) over `rows` rows starting at source row y0. */
function horizontal(src: Uint8Array, inW: number, rows: number, y0: number, outW: number, c: ReturnType<typeof coefficients>): Uint8Array {
  const out = new Uint8Array(rows * outW * 3);
  const { bounds, kk, ksize } = c;
  for (let y = 0; y < rows; y++) {
    const rowIn = (y + y0) * inW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2];
      const xmax = bounds[xx * 2 + 1];
      let s0 = 1 << (PRECISION_BITS - 1);
      let s1 = s0;
      let s2 = s0;
      for (let x = 0; x < xmax; x++) {
        const p = rowIn + (x + xmin) * 3;
        const k = kk[xx * ksize + x];
        s0 += src[p] * k;
        s1 += src[p + 1] * k;
        s2 += src[p + 2] * k;
      }
      const o = (y * outW + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** One pass along y over an image of width w whose first row is source row `offset`. */
function vertical(src: Uint8Array, w: number, offset: number, outH: number, c: ReturnType<typeof coefficients>): Uint8Array {
  const out = new Uint8Array(outH * w * 3);
  const { bounds, kk, ksize } = c;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2] - offset;
    const ymax = bounds[yy * 2 + 1];
    for (let xx = 0; xx < w; xx++) {
      let s0 = 1 << (PRECISION_BITS - 1);
      let s1 = s0;
      let s2 = s0;
      for (let y = 0; y < ymax; y++) {
        const p = ((y + ymin) * w + xx) * 3;
        const k = kk[yy * ksize + y];
        s0 += src[p] * k;
        s1 += src[p + 1] * k;
        s2 += src[p + 2] * k;
      }
      const o = (yy * w + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** Pillow `resize((outW, outH), filter)` of an 8-bit HWC RGB image. Same size: the input itself. */
export function resizePil(img: RgbImage, outH: number, outW: number, filterName: PilFilter): RgbImage {
  const { width: inW, height: inH, data } = img;
  if (data.length !== inW * inH * 3) throw new Error(`image data has ${data.length} bytes, expected ${inW}x${inH}x3`);
  if (!(outH >= 1 && outW >= 1)) throw new Error(`cannot resize to ${outW}x${outH}`);
  if (inW === outW && inH === outH) return img;
  const filter = FILTERS[filterName];
  const horiz = coefficients(inW, outW, filter);
  const vert = coefficients(inH, outH, filter);
  const needH = outW !== inW;
  const needV = outH !== inH;
  // The vertical pass reads only source rows [yFirst, yLast): the horizontal pass skips the rest.
  const yFirst = vert.bounds[0];
  const yLast = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
  if (!needV) return { width: outW, height: inH, data: horizontal(data, inW, inH, 0, outW, horiz) };
  if (!needH) return { width: inW, height: outH, data: vertical(data, inW, 0, outH, vert) };
  const tmp = horizontal(data, inW, yLast - yFirst, yFirst, outW, horiz);
  return { width: outW, height: outH, data: vertical(tmp, outW, yFirst, outH, vert) };
}
