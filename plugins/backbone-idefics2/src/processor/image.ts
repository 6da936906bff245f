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
 *    fixed-point coefficients and rounding to uint8 after each pass: @userpref/imaging's resizePil,
 *    which matches PIL's uint8 result bit for bit;
 * 3. rescale (x * rescale_factor in float64, stored as float32) and normalise ((x - mean) / std in
 *    float32), as numpy does in transformers (@userpref/mllm's rescaleNormalize, shared with Idefics3);
 * 4. pad bottom/right with zeros to the largest height and width of the batch, with a pixel mask
 *    (1 = real pixel).
 */
import type { RgbImage } from '@userpref/core';
import { resizePil } from '@userpref/imaging';
import { checkImageSize, preprocessorKeys, rescaleNormalize, type RescaleNormalizeConfig } from '@userpref/mllm';

export interface ImageProcessorConfig extends RescaleNormalizeConfig {
  readonly shortestEdge: number;
  readonly longestEdge: number;
  readonly doResize: boolean;
  readonly doPad: boolean;
}

/** Parses preprocessor_config.json, rejecting settings this implementation does not reproduce. */
export function parseImageProcessorConfig(json: Record<string, unknown>, file: string): ImageProcessorConfig {
  const { bool, rescaleNormalize: normalization } = preprocessorKeys(json, file);
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
  return {
    shortestEdge: size.shortest_edge,
    longestEdge: size.longest_edge,
    doResize: bool('do_resize', true),
    ...normalization(),
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

/** Pillow's BILINEAR resize of an 8-bit RGB image (bit-exact; @userpref/imaging). */
export function resizeBilinearPil(img: RgbImage, outH: number, outW: number): RgbImage {
  return resizePil(img, outH, outW, 'bilinear');
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
  checkImageSize(img);
  let im = img;
  if (cfg.doResize) {
    const [h, w] = idefics2ResizeTarget(img.height, img.width, cfg.shortestEdge, cfg.longestEdge);
    im = resizeBilinearPil(img, h, w);
  }
  return { height: im.height, width: im.width, chw: rescaleNormalize(im, cfg) };
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
