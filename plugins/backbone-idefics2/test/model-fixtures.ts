/**
 * Shared by the model / LoRA / backbone tests: the tiny random checkpoint (written once per test
 * file by the workspace's generator, the same one the goldens were made from) and the exact pixel
 * recipe of goldens/make_idefics2_goldens.py.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointReader } from '@userpref/safetensors';
import { writeIdefics2Checkpoint } from '../src/checkpoint';
import { padRows } from '@userpref/mllm';

export const GOLDEN_DIR = path.join(__dirname, 'fixtures', 'goldens');

export interface ModelGolden {
  fingerprint: Record<string, { sum: number; abs_sum: number; first: number[] }>;
  image_sizes: Array<[number, number]>;
  image_size: number;
  single: {
    input_ids: number[];
    images: number[];
    logits: number[];
    vision_image0_first64: number[];
    vision_image1_abs_sum: number;
    vision_image1_valid_patches: number;
    connector_images01: number[];
    attention_last_layer_last_query: number[];
    hidden_last_layer_last_position: number[];
  };
  padded: {
    input_ids: number[][];
    images: number[][];
    pad_token_id: number;
    last_index: number[];
    logits: number[][];
    logits_unpadded: number[][];
  };
  buckets: Record<string, Record<string, number[]>>;
}

export async function readGolden<T>(name: string): Promise<T> {
  return JSON.parse(await fs.readFile(path.join(GOLDEN_DIR, name), 'utf8')) as T;
}

/** Writes the tiny checkpoint (seed 0) into a fresh temp dir. */
export async function tinyCheckpoint(prefix = 'idefics2-tiny-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: dir, seed: 0 });
  return dir;
}

/** Fails with a clear message when the generator no longer writes the weights the goldens saw. */
export async function checkFingerprint(dir: string, fp: ModelGolden['fingerprint']): Promise<void> {
  const reader = await CheckpointReader.open(dir);
  try {
    for (const [name, want] of Object.entries(fp)) {
      const data = await reader.readFloat32(name);
      let sum = 0;
      for (const x of data) sum += x;
      const ok = Math.abs(sum - want.sum) <= 1e-6 * Math.max(1, Math.abs(want.abs_sum)) && want.first.every((v, i) => Math.abs(v - data[i]) <= 1e-7 * Math.max(1, Math.abs(v)));
      if (!ok) {
        throw new Error(`the tiny checkpoint generator no longer writes the weights the goldens were made from (tensor ${name}); rerun goldens/make_idefics2_goldens.py`);
      }
    }
  } finally {
    await reader.close();
  }
}

/** The golden recipe: image `img` of h x w real pixels padded to size x size. */
export function recipePixels(img: number, h: number, w: number, size: number): { chw: Float32Array; mask: Uint8Array } {
  const chw = new Float32Array(3 * size * size);
  const mask = new Uint8Array(size * size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = (img * 7 + c * 11 + y * y * 3 + x * (img + 1) * 5 + x * y) % 33;
        chw[c * size * size + y * size + x] = v / 16 - 1;
      }
    }
  }
  for (let y = 0; y < h; y++) mask.fill(1, y * size, y * size + w);
  return { chw, mask };
}

/** pixelValues [n, 3, size, size] and the pixel mask [n*size*size] of the listed recipe images. */
export function recipeBatch(images: readonly number[], sizes: ReadonlyArray<[number, number]>, size: number): { pixelValues: tf.Tensor4D; mask: Uint8Array } {
  const n = images.length;
  const data = new Float32Array(n * 3 * size * size);
  const mask = new Uint8Array(n * size * size);
  images.forEach((img, i) => {
    const [h, w] = sizes[img % sizes.length];
    const p = recipePixels(img, h, w, size);
    data.set(p.chw, i * 3 * size * size);
    mask.set(p.mask, i * size * size);
  });
  return { pixelValues: tf.tensor4d(data, [n, 3, size, size]), mask };
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

/**
 * The goldens' padded batch as model inputs: the two sequences right-padded to the longer one,
 * with its attention mask and the images of both.
 */
export function goldenPaddedInputs(golden: ModelGolden): { ids: Int32Array; am: Uint8Array; T: number; pixelValues: tf.Tensor4D; mask: Uint8Array } {
  const g = golden.padded;
  const { ids, mask: am, len: T } = padRows(g.input_ids.map((s) => Int32Array.from(s)), g.pad_token_id);
  const { pixelValues, mask } = recipeBatch([...g.images[0], ...g.images[1]], golden.image_sizes, golden.image_size);
  return { ids, am, T, pixelValues, mask };
}
