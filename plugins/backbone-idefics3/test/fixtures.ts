/**
 * The committed tiny checkpoints and goldens of goldens/make_idefics3_goldens.py, and the
 * PNG inputs it fed transformers.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceImage, RgbImage } from '@userpref/core';
import { padRows } from '@userpref/mllm';
import type { Idefics3Model } from '../src/model/idefics3';
import type { ProcessedImage } from '../src/processor/image';
import type * as Transformers from '@huggingface/transformers' with { 'resolution-mode': 'import' };

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { RawImage } = require('@huggingface/transformers') as typeof Transformers;

export const FIXTURES = path.join(__dirname, 'fixtures');
export const ARCHS = ['idefics3-tiny', 'smolvlm-tiny'] as const;
export type Arch = (typeof ARCHS)[number];

export interface Golden {
  image_seq_len: number;
  image_sizes: Array<[number, number]>;
  images: Array<{ rows: number; cols: number; tiles: number; shape: number[]; sha256: string }>;
  single: { text: string; images: number[]; input_ids: number[]; logits: number[]; connector_last_tile: number[] };
  padded: { texts: string[]; images: number[][]; use_prompt: boolean[]; input_ids: number[][]; pad_token_id: number; last_index: number[]; logits: number[][]; logits_unpadded: number[][] };
  peft: { modules: string[]; logits: number[][] };
  nosplit: { images: Array<{ rows: number; cols: number; tiles: number; shape: number[]; sha256: string }>; input_ids: number[]; logits: number[] };
}

export const checkpointDir = (arch: Arch) => path.join(FIXTURES, arch);

export async function readGolden(arch: Arch): Promise<Golden> {
  return JSON.parse(await fs.readFile(path.join(FIXTURES, 'goldens', `${arch}.json`), 'utf8')) as Golden;
}

export async function readImage(i: number): Promise<RgbImage> {
  const im = await RawImage.read(path.join(FIXTURES, 'images', `image${i}.png`));
  if (im.channels !== 3) throw new Error(`image${i}.png: expected RGB, got ${im.channels} channels`);
  return { width: im.width, height: im.height, data: Uint8Array.from(im.data) };
}

/** Fixture image i as a PreferenceImage (id = its file name). */
export function fixtureImage(i: number): PreferenceImage {
  return { id: `fixture-image-${i}`, decode: () => readImage(i) };
}

/** max |a - b| / max |b| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** The tiles of processed images, in order, as one pixel_values batch [tiles, 3, M, M]. */
export function tileBatch(ims: readonly ProcessedImage[]): tf.Tensor4D {
  const n = ims.reduce((s, p) => s + p.tiles, 0);
  const M = ims[0].size;
  const data = new Float32Array(n * 3 * M * M);
  let off = 0;
  for (const p of ims) {
    data.set(p.pixelValues, off);
    off += p.pixelValues.length;
  }
  return tf.tensor4d(data, [n, 3, M, M]);
}

/** Each sequence's last-position logits for a right-padded golden batch (ids padded with pad_token_id; the sequences' images' tiles in order). */
export function paddedLastLogits(model: Idefics3Model, g: { input_ids: number[][]; pad_token_id: number; images: number[][] }, tiles: (images: number[]) => tf.Tensor4D): Float32Array[] {
  const { ids, mask, len } = padRows(g.input_ids.map((s) => Int32Array.from(s)), g.pad_token_id);
  const px = tiles(g.images.flat());
  const logits = model.forward(ids, g.input_ids.length, len, px, mask);
  const rows = tf.split(logits, g.input_ids.length, 0);
  const out = rows.map((t) => t.dataSync() as Float32Array);
  tf.dispose([px, logits, ...rows]);
  return out;
}
