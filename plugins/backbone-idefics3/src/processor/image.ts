/**
 * The Idefics3 / SmolVLM image processor, as transformers' PIL backend computes it
 * (image_processing_pil_idefics3.py; SmolVLM's is the same code):
 *
 * 1. resize so the longest edge is `size.longest_edge` (up or down), the other side truncated and
 *    raised to an even number, both capped at 4096;
 * 2. with do_image_splitting: resize so both sides are multiples of the tile side M =
 *    `max_image_size.longest_edge` (longer side first, keeping the aspect ratio), cut that into
 *    rows x cols tiles of M x M (row-major) and add the whole image resized to M x M as the global
 *    image, last. An image that fits one tile is the global image alone (rows = cols = 0). Without
 *    splitting, the image is resized to M x M (rows = cols = 0);
 * 3. rescale and normalise every tile (@userpref/mllm's rescaleNormalize, float32 as numpy, as IDEFICS2's).
 *
 * Every resize is Pillow's on 8-bit RGB with the configured filter (LANCZOS for these models;
 * @userpref/imaging), each from the previous step's uint8 image, as transformers chains them.
 */
import type { RgbImage } from '@userpref/core';
import { filterFromPil, resizePil, type PilFilter } from '@userpref/imaging';
import { checkImageSize, preprocessorKeys, rescaleNormalize, type RescaleNormalizeConfig } from '@userpref/mllm';

export interface Idefics3ImageConfig extends RescaleNormalizeConfig {
  readonly doResize: boolean;
  /** size.longest_edge: step 1. */
  readonly longestEdge: number;
  readonly doImageSplitting: boolean;
  /** max_image_size.longest_edge: the tile side M. */
  readonly tileSize: number;
  readonly filter: PilFilter;
}

/** Largest side transformers allows after step 1 (MAX_IMAGE_SIZE). */
export const MAX_IMAGE_SIZE = 4096;

export function parseIdefics3ImageConfig(json: Record<string, unknown>, file: string): Idefics3ImageConfig {
  const { bool, rescaleNormalize: normalization } = preprocessorKeys(json, file);
  const edge = (key: string, dflt: number): number => {
    const v = json[key] as { longest_edge?: unknown } | undefined;
    if (v === undefined) return dflt;
    if (!v || typeof v.longest_edge !== 'number' || !Number.isInteger(v.longest_edge) || v.longest_edge < 1) throw new Error(`${file}: '${key}' must be {longest_edge: positive integer}, got ${JSON.stringify(v)}`);
    return v.longest_edge;
  };
  const type = json.image_processor_type;
  if (type !== undefined && !/^(Idefics3|SmolVLM)ImageProcessor/.test(String(type))) throw new Error(`${file}: image_processor_type '${type}' is not an Idefics3 / SmolVLM image processor`);
  if (bool('do_convert_rgb', true) === false) throw new Error(`${file}: do_convert_rgb=false is not supported (inputs are always RGB)`);
  const resample = json.resample ?? 1;
  if (typeof resample !== 'number') throw new Error(`${file}: 'resample' must be a PIL resampling number`);
  let filter: PilFilter;
  try {
    filter = filterFromPil(resample);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  // Defaults of Idefics3ImageProcessor: size 4 x 364, tiles of 364, LANCZOS, SigLIP mean/std 0.5.
  return {
    doResize: bool('do_resize', true),
    longestEdge: edge('size', 4 * 364),
    doImageSplitting: bool('do_image_splitting', true),
    tileSize: edge('max_image_size', 364),
    filter,
    ...normalization(0.5),
  };
}

/** Step 1: [height, width] with the longest edge at `longest` (other side even), capped at 4096. */
export function longestEdgeSize(height: number, width: number, longest: number): [number, number] {
  const aspect = width / height;
  let h = height;
  let w = width;
  if (w >= h) {
    w = longest;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = longest;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  const aspect2 = w / h;
  if (w >= h && w > MAX_IMAGE_SIZE) {
    w = MAX_IMAGE_SIZE;
    h = Math.trunc(w / aspect2);
  } else if (h > w && h > MAX_IMAGE_SIZE) {
    h = MAX_IMAGE_SIZE;
    w = Math.trunc(h * aspect2);
  }
  return [Math.max(h, 1), Math.max(w, 1)];
}

/** Step 2's size: both sides raised to multiples of the tile side (resize_for_vision_encoder). */
export function tileGridSize(height: number, width: number, tile: number): [number, number] {
  const aspect = width / height;
  if (width >= height) {
    const w = Math.ceil(width / tile) * tile;
    const h = Math.ceil(Math.trunc(w / aspect) / tile) * tile;
    return [h, w];
  }
  const h = Math.ceil(height / tile) * tile;
  const w = Math.ceil(Math.trunc(h * aspect) / tile) * tile;
  return [h, w];
}

/** Rows and columns of tiles an image of this size gets (0, 0: the global image alone). */
export function tileLayout(height: number, width: number, cfg: Idefics3ImageConfig): { rows: number; cols: number } {
  if (!cfg.doImageSplitting) return { rows: 0, cols: 0 };
  let [h, w] = [height, width];
  if (cfg.doResize) [h, w] = longestEdgeSize(h, w, cfg.longestEdge);
  [h, w] = tileGridSize(h, w, cfg.tileSize);
  if (h > cfg.tileSize || w > cfg.tileSize) return { rows: h / cfg.tileSize, cols: w / cfg.tileSize };
  return { rows: 0, cols: 0 };
}

export interface ProcessedImage {
  readonly rows: number;
  readonly cols: number;
  /** rows * cols + 1 when split, else 1. */
  readonly tiles: number;
  /** Tile side in pixels. */
  readonly size: number;
  /** float32 [tiles, 3, size, size]: the tiles row-major, then the global image. */
  readonly pixelValues: Float32Array;
}

function crop(img: RgbImage, y0: number, x0: number, size: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + size) * 3), y * size * 3);
  return { width: size, height: size, data };
}

/** Steps 1-3 for one image. */
export function processIdefics3Image(img: RgbImage, cfg: Idefics3ImageConfig): ProcessedImage {
  checkImageSize(img);
  const M = cfg.tileSize;
  let im = img;
  if (cfg.doResize) {
    const [h, w] = longestEdgeSize(im.height, im.width, cfg.longestEdge);
    im = resizePil(im, h, w, cfg.filter);
  }
  const frames: RgbImage[] = [];
  let rows = 0;
  let cols = 0;
  if (cfg.doImageSplitting) {
    const [h, w] = tileGridSize(im.height, im.width, M);
    im = resizePil(im, h, w, cfg.filter);
    if (h > M || w > M) {
      rows = h / M;
      cols = w / M;
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) frames.push(crop(im, r * M, c * M, M));
      frames.push(resizePil(im, M, M, cfg.filter));
    } else {
      frames.push(im);
    }
  } else {
    frames.push(resizePil(im, M, M, cfg.filter));
  }
  const plane = 3 * M * M;
  const pixelValues = new Float32Array(frames.length * plane);
  frames.forEach((f, i) => pixelValues.set(rescaleNormalize(f, cfg), i * plane));
  return { rows, cols, tiles: frames.length, size: M, pixelValues };
}
