/**
 * transformers' CLIPImageProcessor (its Pillow backend, which PickScore, HPS and the LAION
 * aesthetic predictor were evaluated with), from a checkpoint's preprocessor_config.json:
 *
 * 1. resize so the shortest edge is `size.shortest_edge` (the other side `int(s * long / short)`),
 *    or to `size.height` x `size.width`, with Pillow's resampling on uint8 RGB: the filter widened
 *    by the scale when downscaling (antialias), fixed-point coefficients, horizontal then
 *    vertical pass, reimplemented from Pillow's libImaging/Resample.c so the result is bit-exact;
 * 2. center crop to `crop_size` (top = (h - ch) // 2, left = (w - cw) // 2);
 * 3. `x * rescale_factor` in float64, stored as float32; then `(x - mean) / std` in float32.
 *
 * transformers.js's own CLIP processor resizes with sharp's affine transform, which does not
 * widen the filter when downscaling; its pixels differ from Pillow's on every image that is
 * downscaled (the usual case: 512 px Pick-a-Pic images to 224), hence this module.
 */
import type { RgbImage } from '@userpref/core';

export interface ClipImageConfig {
  /** Resize target: shortest edge, or an exact height x width. */
  readonly resize: { shortestEdge: number } | { height: number; width: number } | null;
  /** Pillow filter id: 2 bilinear, 3 bicubic. */
  readonly resample: 2 | 3;
  readonly crop: { height: number; width: number } | null;
  readonly rescaleFactor: number | null;
  readonly mean: readonly [number, number, number] | null;
  readonly std: readonly [number, number, number] | null;
}

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function triple(x: unknown, what: string, file: string): [number, number, number] {
  if (num(x)) return [x, x, x];
  if (Array.isArray(x) && x.length === 3 && x.every(num)) return [x[0], x[1], x[2]];
  throw new Error(`${file}: ${what} must be a number or 3 numbers (got ${JSON.stringify(x)})`);
}

/** Reads preprocessor_config.json with transformers' defaults for CLIPImageProcessor. */
export function parseClipImageConfig(json: Record<string, unknown>, file: string): ClipImageConfig {
  const size = json.size as unknown;
  let resize: ClipImageConfig['resize'] = null;
  if (json.do_resize !== false) {
    if (num(size)) resize = { shortestEdge: size };
    else if (size && typeof size === 'object') {
      const s = size as Record<string, unknown>;
      if (num(s.shortest_edge)) resize = { shortestEdge: s.shortest_edge };
      else if (num(s.height) && num(s.width)) resize = { height: s.height, width: s.width };
    }
    if (!resize) throw new Error(`${file}: size ${JSON.stringify(size)} is not supported (expected { shortest_edge } or { height, width })`);
  }
  const resample = json.resample ?? 3;
  if (resample !== 2 && resample !== 3) throw new Error(`${file}: resample=${JSON.stringify(resample)} is not supported; only 2 (bilinear) and 3 (bicubic, CLIP's) are implemented`);
  let crop: ClipImageConfig['crop'] = null;
  if (json.do_center_crop !== false && json.crop_size !== undefined) {
    const c = json.crop_size as unknown;
    if (num(c)) crop = { height: c, width: c };
    else if (c && typeof c === 'object' && num((c as Record<string, unknown>).height) && num((c as Record<string, unknown>).width)) {
      crop = { height: (c as { height: number }).height, width: (c as { width: number }).width };
    } else throw new Error(`${file}: crop_size ${JSON.stringify(c)} is not supported`);
  } else if (json.do_center_crop === true) throw new Error(`${file}: do_center_crop without crop_size`);
  const rescaleFactor = json.do_rescale === false ? null : num(json.rescale_factor) ? json.rescale_factor : 1 / 255;
  const normalize = json.do_normalize !== false;
  return {
    resize,
    resample,
    crop,
    rescaleFactor,
    mean: normalize ? triple(json.image_mean ?? [0.48145466, 0.4578275, 0.40821073], 'image_mean', file) : null,
    std: normalize ? triple(json.image_std ?? [0.26862954, 0.26130258, 0.27577711], 'image_std', file) : null,
  };
}

/** transformers' get_resize_output_image_size(default_to_square=False): [height, width]. */
export function shortestEdgeTarget(height: number, width: number, shortestEdge: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((shortestEdge * long) / short);
  return width <= height ? [newLong, shortestEdge] : [shortestEdge, newLong];
}

const PRECISION_BITS = 32 - 8 - 2;

const FILTERS: Record<2 | 3, { support: number; f: (x: number) => number }> = {
  2: { support: 1, f: (x) => (x < 0 ? -x : x) < 1 ? 1 - (x < 0 ? -x : x) : 0 },
  3: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis. */
function coefficients(inSize: number, outSize: number, filter: (typeof FILTERS)[2]) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Int32Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
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

/**
 * Pillow `Image.resize((outW, outH), resample)` of an 8-bit HWC RGB image, bit-exact for
 * resample 2 (bilinear) and 3 (bicubic). Returns the input when the size already matches.
 */
export function resizePil(img: RgbImage, outH: number, outW: number, resample: 2 | 3): RgbImage {
  const { width: inW, height: inH, data } = img;
  if (data.length !== inW * inH * 3) throw new Error(`image data has ${data.length} bytes, expected ${inW}x${inH}x3`);
  if (outH < 1 || outW < 1) throw new Error(`cannot resize to ${outW}x${outH}`);
  if (inW === outW && inH === outH) return img;
  const filter = FILTERS[resample];
  const horiz = coefficients(inW, outW, filter);
  const vert = coefficients(inH, outH, filter);
  const needH = outW !== inW;
  const needV = outH !== inH;
  let src = data;
  let srcW = inW;
  let srcH = inH;
  // Rows of the source the vertical pass reads (Pillow computes only those horizontally).
  const yFirst = vert.bounds[0];
  const yLast = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
  let vOffset = 0;
  if (needH) {
    const rows = needV ? yLast - yFirst : inH;
    const y0 = needV ? yFirst : 0;
    const tmp = new Uint8Array(rows * outW * 3);
    const { bounds, kk, ksize } = horiz;
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + y0) * inW * 3;
      const rowOut = y * outW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const k = xx * ksize;
        let s0 = 1 << (PRECISION_BITS - 1);
        let s1 = s0;
        let s2 = s0;
        for (let x = 0; x < xmax; x++) {
          const p = rowIn + (x + xmin) * 3;
          const c = kk[k + x];
          s0 += src[p] * c;
          s1 += src[p + 1] * c;
          s2 += src[p + 2] * c;
        }
        tmp[rowOut + xx * 3] = clip8(s0);
        tmp[rowOut + xx * 3 + 1] = clip8(s1);
        tmp[rowOut + xx * 3 + 2] = clip8(s2);
      }
    }
    src = tmp;
    srcW = outW;
    srcH = rows;
    if (needV) vOffset = yFirst;
  }
  if (!needV) return { width: srcW, height: srcH, data: src };
  const out = new Uint8Array(outH * srcW * 3);
  const { bounds, kk, ksize } = vert;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2] - vOffset;
    const ymax = bounds[yy * 2 + 1];
    const k = yy * ksize;
    for (let xx = 0; xx < srcW; xx++) {
      let s0 = 1 << (PRECISION_BITS - 1);
      let s1 = s0;
      let s2 = s0;
      for (let y = 0; y < ymax; y++) {
        const p = ((y + ymin) * srcW + xx) * 3;
        const c = kk[k + y];
        s0 += src[p] * c;
        s1 += src[p + 1] * c;
        s2 += src[p + 2] * c;
      }
      const o = (yy * srcW + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return { width: srcW, height: outH, data: out };
}

/** numpy center_crop: top = (h - ch) // 2, left = (w - cw) // 2 (the image must be large enough). */
export function centerCrop(img: RgbImage, height: number, width: number): RgbImage {
  if (img.height === height && img.width === width) return img;
  if (img.height < height || img.width < width) throw new Error(`cannot center-crop a ${img.width}x${img.height} image to ${width}x${height}`);
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const out = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) out.set(img.data.subarray(((top + y) * img.width + left) * 3, ((top + y) * img.width + left + width) * 3), y * width * 3);
  return { width, height, data: out };
}

/** The uint8 image the model sees, before rescaling and normalisation. */
export function resizeAndCrop(img: RgbImage, cfg: ClipImageConfig): RgbImage {
  let out = img;
  if (cfg.resize) {
    const [h, w] = 'shortestEdge' in cfg.resize ? shortestEdgeTarget(img.height, img.width, cfg.resize.shortestEdge) : [cfg.resize.height, cfg.resize.width];
    out = resizePil(out, h, w, cfg.resample);
  }
  if (cfg.crop) out = centerCrop(out, cfg.crop.height, cfg.crop.width);
  return out;
}

/** Pixel values [3, H, W] (float32, channel-first) of one image. */
export function pixelValues(img: RgbImage, cfg: ClipImageConfig): { height: number; width: number; chw: Float32Array } {
  const im = resizeAndCrop(img, cfg);
  const { width, height, data } = im;
  const chw = new Float32Array(3 * height * width);
  const mean = cfg.mean?.map(Math.fround);
  const std = cfg.std?.map(Math.fround);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < height * width; i++) {
      let v = cfg.rescaleFactor === null ? data[i * 3 + c] : Math.fround(data[i * 3 + c] * cfg.rescaleFactor);
      if (mean && std) v = Math.fround(Math.fround(v - mean[c]) / std[c]);
      chw[c * height * width + i] = v;
    }
  }
  return { height, width, chw };
}
