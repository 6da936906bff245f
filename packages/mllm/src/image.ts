/**
 * The image step both families' processors end with, as transformers computes it in numpy:
 * rescale (x * rescale_factor in float64, stored as float32) and normalise ((x - mean) / std in
 * float32) an 8-bit RGB image into float32 channels-first planes; and the readers of the
 * preprocessor_config.json keys both share.
 */
import type { RgbImage } from '@userpref/core';

export interface RescaleNormalizeConfig {
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];
}

/** Rescale + normalise an RGB image (already resized) to float32 CHW [3, height, width]. */
export function rescaleNormalize(img: RgbImage, cfg: RescaleNormalizeConfig): Float32Array {
  const { width, height, data } = img;
  const plane = width * height;
  const chw = new Float32Array(3 * plane);
  const mean = cfg.imageMean.map(Math.fround);
  const std = cfg.imageStd.map(Math.fround);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      let v = data[i * 3 + c];
      if (cfg.doRescale) v = Math.fround(v * cfg.rescaleFactor);
      if (cfg.doNormalize) v = Math.fround(Math.fround(v - mean[c]) / std[c]);
      chw[c * plane + i] = v;
    }
  }
  return chw;
}

/** Throws unless `img` has a positive integer size. */
export function checkImageSize(img: RgbImage): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) {
    throw new Error(`invalid image size ${img.width}x${img.height}`);
  }
}

/** Typed readers of a preprocessor_config.json object; `file` names it in errors. */
export function preprocessorKeys(json: Record<string, unknown>, file: string) {
  const bool = (key: string, dflt: boolean): boolean => {
    const v = json[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new Error(`${file}: '${key}' must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  /** A number or 3 numbers (image_mean, image_std); `dflt` when absent, if given. */
  const triple = (key: string, dflt?: number): [number, number, number] => {
    const v = json[key] ?? dflt;
    const arr = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number')) throw new Error(`${file}: '${key}' must be a number or 3 numbers, got ${JSON.stringify(json[key])}`);
    return [arr[0], arr[1], arr[2]];
  };
  /** The rescale / normalise keys (rescale_factor 1/255 when absent). */
  const rescaleNormalize = (meanStdDefault?: number): RescaleNormalizeConfig => {
    const rescaleFactor = json.rescale_factor ?? 1 / 255;
    if (typeof rescaleFactor !== 'number') throw new Error(`${file}: 'rescale_factor' must be a number`);
    return {
      doRescale: bool('do_rescale', true),
      rescaleFactor,
      doNormalize: bool('do_normalize', true),
      imageMean: triple('image_mean', meanStdDefault),
      imageStd: triple('image_std', meanStdDefault),
    };
  };
  return { bool, triple, rescaleNormalize };
}
