/**
 * transformers' CLIPImageProcessor (its Pillow backend, which PickScore, HPS and the LAION
 * aesthetic predictor were evaluated with), from a checkpoint's preprocessor_config.json:
 *
 * 1. resize so the shortest edge is `size.shortest_edge` (the other side `int(s * long / short)`),
 *    or to `size.height` x `size.width`, with Pillow's resampling on uint8 RGB: the filter widened
 *    by the scale when downscaling (antialias), fixed-point coefficients, horizontal then
 *    vertical pass: @userpref/imaging's resizePil, bit-exact with Pillow;
 * 2. center crop to `crop_size` (top = (h - ch) // 2, left = (w - cw) // 2);
 * 3. `x * rescale_factor` in float64, stored as float32; then `(x - mean) / std` in float32.
 *
 * transformers.js's own CLIP processor resizes with sharp's affine transform, which does not
 * widen the filter when downscaling; its pixels differ from Pillow's on every image that is
 * downscaled (the usual case: 512 px Pick-a-Pic images to 224), hence this module.
 */
import type { RgbImage } from '@userpref/core';
import { centerCrop, filterFromPil, resizePil as resizeWith } from '@userpref/imaging';

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

/** Pillow `resize` with PIL's resample code 2 (BILINEAR) or 3 (BICUBIC), bit-exact (@userpref/imaging). */
export function resizePil(img: RgbImage, outH: number, outW: number, resample: 2 | 3): RgbImage {
  return resizeWith(img, outH, outW, filterFromPil(resample));
}

export { centerCrop };

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
