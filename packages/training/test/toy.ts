/**
 * Test doubles that honour the contracts with a model small enough to reason about:
 * images are 1x1 "pixels" whose red channel is what users like or dislike; the toy backbone
 * scores a candidate from its colour and the user's references through a trainable matrix.
 */
import * as tf from '@tensorflow/tfjs-core';
import { promises as fs } from 'fs';
import * as path from 'path';
import type { Backbone, PairLogits, PreferenceBatch, PreferenceDataset, PreferenceExample, PreferenceImage, PreferenceSplit, PreparedBatch, PrefixProvider, SplitName, PreferenceLoss, ReadoutTokens } from '@userpref/core';
import { Rng } from '@userpref/core';
import { writeSafetensors, SafetensorsFile } from '@userpref/safetensors';

export function image(id: string, rgb: [number, number, number]): PreferenceImage {
  return { id, decode: async () => ({ width: 1, height: 1, data: Uint8Array.from(rgb) }) };
}

/** Users who like red (sign +1) or dislike it (-1); each comparison pits two random colours. */
export function toyDataset(users = 8, perUser = 12, refs = 3, seed = 1): PreferenceDataset {
  const rng = Rng.fromSeed(seed);
  const all: Record<SplitName, PreferenceExample[]> = { train: [], validation: [], test: [] };
  let n = 0;
  for (let u = 0; u < users; u++) {
    const sign = u % 2 ? 1 : -1;
    const comps = Array.from({ length: perUser }, () => {
      const a = rng.int(256);
      const b = rng.int(256);
      const aWins = sign * (a - b) > 0;
      const img = (r: number) => image(`img${n++}`, [r, 128, 128]);
      const ia = img(a);
      const ib = img(b);
      return { liked: aWins ? ia : ib, disliked: aWins ? ib : ia, prompt: 'p' };
    });
    comps.forEach((c, i) => {
      if (i < refs) return;
      const split: SplitName = i % 4 === 0 ? 'validation' : i % 4 === 1 ? 'test' : 'train';
      const image0Liked = rng.bernoulli(0.5);
      all[split].push({
        userId: `u${u}`,
        references: comps.slice(0, refs),
        likedFirst: comps.slice(0, refs).map(() => false),
        target: { prompt: 'p', image0: image0Liked ? c.liked : c.disliked, image1: image0Liked ? c.disliked : c.liked, label0: image0Liked ? 1 : 0 },
      });
    });
  }
  const split = (name: SplitName): PreferenceSplit => ({ name, size: all[name].length, get: async (i) => all[name][i] });
  return { init: async () => undefined, split, stats: (name) => ({ examples: all[name].length, users }) };
}

interface ToyPrepared extends PreparedBatch {
  liked: tf.Tensor2D;
  disliked: tf.Tensor2D;
}

/** Vocab of 3 tokens: 0 = other, 1 = "+", 2 = "-". */
export class ToyBackbone implements Backbone {
  readonly textHiddenSize = 2;
  readonly readout: ReadoutTokens = { positive: 1, negative: 2 };
  readonly w: tf.Variable;
  private prefix: PrefixProvider | null = null;

  private static count = 0;
  constructor(seed = 1) {
    // tfjs variable names are process-global: each instance gets its own.
    this.w = tf.variable(tf.randomNormal([2, 3], 0, 0.01, 'float32', seed), true, `toy.lora_A.${ToyBackbone.count++}`);
  }
  async init() {}
  async prepare(batch: PreferenceBatch): Promise<ToyPrepared> {
    const red = async (im: PreferenceImage) => (await im.decode()).data[0] / 255 - 0.5;
    const feats = async (ex: PreferenceExample, liked: boolean) => {
      const t = ex.target;
      const cand = (t.label0 >= 0.5) === liked ? t.image0 : t.image1;
      let pref = 0;
      for (const r of ex.references) pref += (await red(r.liked)) - (await red(r.disliked));
      const c = await red(cand);
      return [c * pref, 1];
    };
    const l = await Promise.all(batch.map((ex) => feats(ex, true)));
    const d = await Promise.all(batch.map((ex) => feats(ex, false)));
    const liked = tf.tensor2d(l);
    const disliked = tf.tensor2d(d);
    return { size: batch.length, liked, disliked, dispose: () => { liked.dispose(); disliked.dispose(); } };
  }
  pairLogits(prepared: PreparedBatch, options: { training: boolean; seed?: number }): PairLogits {
    const p = prepared as ToyPrepared;
    let w: tf.Tensor = this.w;
    if (options.training) w = tf.dropout(w, 0.1, undefined, options.seed);
    if (this.prefix) {
      const e = this.prefix.prefix({ historyMean: tf.zeros([p.size, 2]) as tf.Tensor2D, preferenceDirection: tf.zeros([p.size, 2]) as tf.Tensor2D }).embeddings;
      w = tf.add(w, tf.sum(tf.mean(e, 1), 0).reshape([2, 1]));
    }
    return { liked: tf.matMul(p.liked, w) as tf.Tensor2D, disliked: tf.matMul(p.disliked, w) as tf.Tensor2D };
  }
  /** Embedding = the pixel's RGB centred on 128. */
  async imageEmbeddings(images: readonly PreferenceImage[]): Promise<tf.Tensor2D> {
    const rows = await Promise.all(images.map(async (im) => Array.from((await im.decode()).data).map((v) => v - 128)));
    return tf.tensor2d(rows);
  }
  setPrefixProvider(p: PrefixProvider | null) {
    this.prefix = p;
  }
  adapterVariables() {
    return [this.w];
  }
  async saveAdapter(dir: string) {
    await fs.mkdir(dir, { recursive: true });
    await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), [{ name: 'w', dtype: 'F32', shape: this.w.shape, data: this.w.dataSync() as Float32Array }]);
  }
  async loadAdapter(dir: string) {
    const f = await SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    this.w.assign(tf.tensor(await f.readFloat32('w'), this.w.shape));
    await f.close();
  }
}

/** CE of "+" on liked and "-" on disliked (the base loss, written here independently). */
export const ceLoss: PreferenceLoss = {
  name: 'ce',
  compute: (l: PairLogits, r: ReadoutTokens) =>
    tf.tidy(() => {
      const lp = tf.logSoftmax(l.liked);
      const ln = tf.logSoftmax(l.disliked);
      const a = tf.slice(lp, [0, r.positive], [-1, 1]);
      const b = tf.slice(ln, [0, r.negative], [-1, 1]);
      return tf.neg(tf.mean(tf.add(a, b))).div(2) as tf.Scalar;
    }),
};
