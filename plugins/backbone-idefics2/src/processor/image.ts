/**
 * The IDEFICS2 image processor (Idefics2ImageProcessor without image splitting), implemented here
 * because transformers.js has no Idefics2 image processor (its Idefics3 one splits and sizes images
 * differently). The steps are those of transformers' image_processing_pil_idefics2.py:
 *
 * 1. size: if the longer side exceeds `longest_edge`, scale it to `longest_edge` keeping the aspect
 *    ratio (the other side truncated to an integer); then raise each side to at least
 *    `shortest_edge` independently;
 * 2. resize with Pillow's BILINEAR filter on 8-bit RGB: a separable triangle filter whose support
 *    widens with the downscale factor (antialiasing), horizontal pass then vertical pass, 22-bit
 *    fixed-point coefficients and rounding to uint8 after each pass. Reimplemented from
 *    Pillow's libImaging/Resample.c so the uint8 result matches PIL's bit for bit;
 * 3. rescale (x * rescale_factor in float64, stored as float32) and normalise ((x - mean) / std in
 *    float32), as numpy does in transformers;
 * 4. pad bottom/right with zeros to the largest height and width of the batch, with a pixel mask
 *    (1 = real pixel).
 */
import type { RgbImage } from '@userpref/core';

export interface ImageProcessorConfig {
  readonly shortestEdge: number;
  readonly longestEdge: number;
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];
  readonly doPad: boolean;
}

/** Parses preprocessor_config.json, rejecting settings this implementation does not reproduce. */
export function parseImageProcessorConfig(json: Record<string, unknown>, file: string): ImageProcessorConfig {
  const bool = (key: string, dflt: boolean): boolean => {
    const v = json[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new Error(`${file}: '${key}' must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  const triple = (key: string): [number, number, number] => {
    const v = json[key];
    const arr = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number')) throw new Error(`${file}: '${key}' must be a number or 3 numbers, got ${JSON.stringify(v)}`);
    return [arr[0], arr[1], arr[2]];
  };
  if (json.image_processor_type !== undefined && !/^Idefics2ImageProcessor/.test(String(json.image_processor_type))) {
    throw new Error(`${file}: image_processor_type '${json.image_processor_type}' is not an Idefics2ImageProcessor`);
  }
  if (bool('do_image_splitting', false)) throw new Error(`${file}: do_image_splitting=true is not supported (the method uses one view per image, SPEC §2)`);
  if (json.resample !== undefined && json.resample !== 2) throw new Error(`${file}: resample=${JSON.stringify(json.resample)} is not supported; only 2 (PIL BILINEAR) is implemented`);
  if (bool('do_convert_rgb', true) === false) throw new Error(`${file}: do_convert_rgb=false is not supported (inputs are always RGB)`);
  const size = json.size as { shortest_edge?: unknown; longest_edge?: unknown } | undefined;
  if (!size || typeof size.shortest_edge !== 'number' || typeof size.longest_edge !== 'number') {
    throw new Error(`${file}: 'size' must be {shortest_edge, longest_edge}, got ${JSON.stringify(json.size)}`);
  }
  const rescaleFactor = json.rescale_factor === undefined ? 1 / 255 : json.rescale_factor;
  if (typeof rescaleFactor !== 'number') throw new Error(`${file}: 'rescale_factor' must be a number`);
  return {
    shortestEdge: size.shortest_edge,
    longestEdge: size.longest_edge,
    doResize: bool('do_resize', true),
    doRescale: bool('do_rescale', true),
    rescaleFactor,
    doNormalize: bool('do_normalize', true),
    imageMean: triple('image_mean'),
    imageStd: triple('image_std'),
    doPad: bool('do_pad', true),
  };
}

/** Output [height, width] of Idefics2's resize rule. */
export function idefics2ResizeTarget(height: number, width: number, shortestEdge: number, longestEdge: number): [number, number] {
  const aspect = width / height;
  let h = height;
  let w = width;
  if (w >= h && w > longestEdge) {
    w = longestEdge;
    h = Math.trunc(w / aspect);
  } else if (h > w && h > longestEdge) {
    h = longestEdge;
    w = Math.trunc(h * aspect);
  }
  return [Math.max(h, shortestEdge), Math.max(w, shortestEdge)];
}

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter. */
function bilinearCoeffs(inSize: number, outSize: number): { bounds: Int32Array; kk: Int32Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      w[x] = t < 1 ? 1 - t : 0;
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
 * Pillow `Image.resize((outW, outH), Image.BILINEAR)` of an 8-bit HWC RGB image, bit-exact.
 * Returns the input unchanged when the size already matches (as Pillow returns a copy).
 */
export function resizeBilinearPil(img: RgbImage, outH: number, outW: number): RgbImage {
  const { width: inW, height: inH, data } = img;
  if (data.length !== inW * inH * 3) throw new Error(`image data has ${data.length} bytes, expected ${inW}x${inH}x3`);
  if (outH < 1 || outW < 1) throw new Error(`cannot resize to ${outW}x${outH}`);
  if (inW === outW && inH === outH) return img;
  const horiz = bilinearCoeffs(inW, outW);
  const vert = bilinearCoeffs(inH, outH);
  const needH = outW !== inW;
  const needV = outH !== inH;
  let src = data;
  let srcW = inW;
  let srcH = inH;
  // Rows of the source the vertical pass reads.
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

/** Pixel values of a batch of images: [count, 3, height, width], padded bottom/right. */
export interface PixelBatch {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  /** Float32 [count, 3, height, width] (channels first, as the patch convolution expects). */
  readonly pixelValues: Float32Array;
  /** [count, height, width]: 1 for real pixels, 0 for padding. */
  readonly pixelAttentionMask: Uint8Array;
  /** Size of each image after resizing, before padding. */
  readonly sizes: ReadonlyArray<{ height: number; width: number }>;
}

/** Resize + rescale + normalise one image to float32 CHW (no padding). */
export function processImage(img: RgbImage, cfg: ImageProcessorConfig): { height: number; width: number; chw: Float32Array } {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) {
    throw new Error(`invalid image size ${img.width}x${img.height}`);
  }
  let im = img;
  if (cfg.doResize) {
    const [h, w] = idefics2ResizeTarget(img.height, img.width, cfg.shortestEdge, cfg.longestEdge);
    im = resizeBilinearPil(img, h, w);
  }
  const { width, height, data } = im;
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
  return { height, width, chw };
}

/** Processes `images` and pads them to the largest height and width among them. */
export function processImages(images: readonly RgbImage[], cfg: ImageProcessorConfig): PixelBatch {
  if (images.length === 0) throw new Error('processImages needs at least one image');
  const done = images.map((im, i) => {
    try {
      return processImage(im, cfg);
    } catch (e) {
      throw new Error(`image ${i}: ${(e as Error).message}`);
    }
  });
  const height = Math.max(...done.map((d) => d.height));
  const width = Math.max(...done.map((d) => d.width));
  if (!cfg.doPad && done.some((d) => d.height !== height || d.width !== width)) {
    throw new Error(`do_pad=false but the images have different sizes (${done.map((d) => `${d.width}x${d.height}`).join(', ')})`);
  }
  const n = images.length;
  const pixelValues = new Float32Array(n * 3 * height * width);
  const pixelAttentionMask = new Uint8Array(n * height * width);
  done.forEach((d, i) => {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < d.height; y++) {
        const src = c * d.height * d.width + y * d.width;
        const dst = ((i * 3 + c) * height + y) * width;
        pixelValues.set(d.chw.subarray(src, src + d.width), dst);
      }
    }
    for (let y = 0; y < d.height; y++) pixelAttentionMask.fill(1, (i * height + y) * width, (i * height + y) * width + d.width);
  });
  return { count: n, height, width, pixelValues, pixelAttentionMask, sizes: done.map((d) => ({ height: d.height, width: d.width })) };
}
