/** The tiny IDEFICS2 (with a LoRA that is not a no-op) and encoded test images, for the service tests. */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { Idefics2Backbone, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { initRuntime } from '@userpref/runtime';
import type { Backbone } from '@userpref/core';
import type { ServedModel } from '@userpref/ranking-server';

export async function tinyBackbone(): Promise<{ backbone: Idefics2Backbone; dir: string; model: ServedModel }> {
  await initRuntime({ device: 'cpu' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ranking-server-'));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: path.join(dir, 'ckpt'), seed: 0 });
  const backbone = new Idefics2Backbone({ path: 'ckpt', maxPromptLen: 40 }, { seed: 4, baseDir: dir });
  await backbone.init();
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 30 + i), 0.05) as tf.Tensor2D);
  const model: ServedModel = { backbone: 'idefics2', base: path.join(dir, 'ckpt'), adapter: null, tokens: null, backend: tf.getBackend(), device: 'cpu', imageSize: 32 };
  return { backbone, dir, model };
}

/** An encoded image whose pixels depend on `seed`. */
export async function encodedImage(seed: number, format: 'png' | 'jpeg' | 'webp' | 'gif' = 'png', w = 24 + (seed % 4) * 4, h = 20): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (seed + 3) + seed * 37 + ((i / 13) | 0)) % 256;
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).toFormat(format).toBuffer();
}

/** Noise (incompressible): an image of about 3 * w * h encoded bytes. */
export async function noiseImage(seed: number, w: number, h: number): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < raw.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    raw[i] = x & 255;
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

/**
 * A backbone whose history sessions wait at a gate the test opens: a ranking is "in flight" for
 * as long as the test wants (queue, timeout and shutdown tests without timing races).
 */
export function gated(inner: Backbone): { backbone: Backbone; open(): void; started(): number } {
  let release!: () => void;
  let gate = new Promise<void>((r) => (release = r));
  let started = 0;
  const backbone = Object.create(inner) as Backbone;
  backbone.openHistory = async (history) => {
    started++;
    await gate;
    return inner.openHistory!(history);
  };
  return {
    backbone,
    open: () => {
      release();
      gate = new Promise<void>((r) => (release = r));
    },
    started: () => started,
  };
}
