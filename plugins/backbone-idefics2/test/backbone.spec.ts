/**
 * The Backbone contract on the tiny checkpoint: pairLogits equals independent full forwards of
 * each sequence (processor -> pixels -> Idefics2Model.forward, no cache, no dedup), with padding
 * and with a prefix provider (the SPEC §8 all-ones-mask bug), gradients reach the LoRA and the
 * prefix, adapters round-trip, the plugin wiring validates its options.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { validateOptions, type PreferenceExample, type PreferenceImage, type PrefixContext, type PrefixProvider } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone, userprefPlugin } from '../src';
import { relErr, tinyCheckpoint } from './model-fixtures';
import { syntheticExample } from './synthetic';

function example(user: string, refs: number, seed: number, label0: number, prompt = 'a cat on a chair'): PreferenceExample {
  return syntheticExample(user, refs, seed, label0, { prompt, targetPrompt: 'a red car at night', likedFirst: 'even', recipe: { step: 3, add: 29, every: 7 } });
}

class FixedPrefix implements PrefixProvider {
  readonly variable: tf.Variable;
  seen: number[][] = [];
  constructor(readonly length: number, d: number) {
    this.variable = tf.variable(tf.randomUniform([length, d], 0, 1, 'float32', 5), true);
  }
  prefix(ctx: PrefixContext): { embeddings: tf.Tensor3D } {
    this.seen = ctx.historyMean.arraySync();
    const B = ctx.historyMean.shape[0];
    return { embeddings: tf.tile(tf.expandDims(this.variable, 0), [B, 1, 1]) as tf.Tensor3D };
  }
}

describe('Idefics2Backbone (tiny checkpoint)', () => {
  let dir: string;
  let tmp: string;
  let backbone: Idefics2Backbone;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await tinyCheckpoint();
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backbone-spec-'));
    backbone = new Idefics2Backbone({ path: path.basename(dir), maxPromptLen: 12 }, { seed: 1, baseDir: path.dirname(dir) });
    await backbone.init();
    // Make the adapter matter (B = 0 at init).
    for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i), 0.05) as tf.Tensor2D);
  });

  afterAll(async () => {
    backbone?.dispose();
    for (const d of [dir, tmp]) if (d) await fs.rm(d, { recursive: true, force: true });
  });

  /** Independent path: encode, preprocess this sequence's images in order, full forward. */
  async function reference(ex: PreferenceExample, target: PreferenceImage, prefix?: tf.Tensor3D): Promise<Float32Array> {
    const p = backbone['p'];
    const enc = p.encodeExample(ex);
    const rgbs = await Promise.all(enc.imageSlots.map((s) => (s.image === 'target' ? target : s.image).decode()));
    const px = p.preprocessImages(rgbs);
    const pixelValues = tf.tensor4d(px.pixelValues, [px.count, 3, px.height, px.width]);
    const out = backbone.idefics2.forward({ inputIds: enc.inputIds, batch: 1, seqLen: enc.inputIds.length, pixelValues, pixelAttentionMask: px.pixelAttentionMask, prefix });
    const v = out.logits.dataSync() as Float32Array;
    tf.dispose([pixelValues, out.logits]);
    return v;
  }

  const maxRel = relErr;

  it('exposes the contract facts from the checkpoint', () => {
    expect(backbone.textHiddenSize).toBe(64);
    expect(backbone.readout.positive).not.toBe(backbone.readout.negative);
    // 31 LoRA modules of the paper's regex on the tiny model, A and B each.
    expect(backbone.adapterVariables()).toHaveLength(62);
  });

  it('pairLogits of a padded batch equals independent unpadded forwards (liked = image0 when label0 >= 0.5)', async () => {
    const batch = [example('u1', 3, 1, 1), example('u2', 1, 2, 0, 'a much longer prompt about castles')];
    const prepared = await backbone.prepare(batch);
    const out = backbone.pairLogits(prepared, { training: false });
    expect(out.liked.shape).toEqual([2, 400]);
    const liked = out.liked.arraySync();
    const disliked = out.disliked.arraySync();
    for (let b = 0; b < 2; b++) {
      const ex = batch[b];
      const [l, d] = ex.target.label0 >= 0.5 ? [ex.target.image0, ex.target.image1] : [ex.target.image1, ex.target.image0];
      expect(maxRel(liked[b], await reference(ex, l))).toBeLessThan(1e-5);
      expect(maxRel(disliked[b], await reference(ex, d))).toBeLessThan(1e-5);
    }
    tf.dispose([out.liked, out.disliked]);
    prepared.dispose();
  });

  it('a prefix provider is prepended before BOS with mask and read index right under padding', async () => {
    const provider = new FixedPrefix(3, 64);
    backbone.setPrefixProvider(provider);
    try {
      const batch = [example('u1', 2, 3, 1), example('u2', 1, 4, 1, 'short')];
      const prepared = await backbone.prepare(batch);
      const out = backbone.pairLogits(prepared, { training: false });
      const liked = out.liked.arraySync();
      expect(provider.seen).toHaveLength(2);
      for (let b = 0; b < 2; b++) {
        const prefix = tf.expandDims(provider.variable, 0) as tf.Tensor3D;
        expect(maxRel(liked[b], await reference(batch[b], batch[b].target.image0, prefix))).toBeLessThan(1e-5);
        prefix.dispose();
      }
      tf.dispose([out.liked, out.disliked]);
      // Gradients reach both the LoRA and the preference tokens.
      const vars = [provider.variable, ...backbone.adapterVariables().slice(0, 4)];
      const { value, grads } = tf.variableGrads(() => {
        const o = backbone.pairLogits(prepared, { training: true, seed: 7 });
        return tf.sub(tf.sum(tf.gather(o.liked, [backbone.readout.positive], 1)), tf.sum(tf.gather(o.disliked, [backbone.readout.positive], 1))) as tf.Scalar;
      }, vars);
      for (const v of vars) expect(tf.tidy(() => tf.max(tf.abs(grads[v.name])).dataSync()[0])).toBeGreaterThan(0);
      tf.dispose([value, ...Object.values(grads)]);
      prepared.dispose();
      provider.variable.dispose();
    } finally {
      backbone.setPrefixProvider(null);
    }
  });

  it("PrefixContext: the history mean ignores which image of a pair was liked; the preference direction turns round with it", async () => {
    const seen: Array<{ mean: number[][]; direction: number[][] }> = [];
    const recorder: PrefixProvider = {
      length: 1,
      prefix: (ctx) => {
        seen.push({ mean: ctx.historyMean.arraySync(), direction: ctx.preferenceDirection.arraySync() });
        return { embeddings: tf.zeros([ctx.historyMean.shape[0], 1, ctx.historyMean.shape[1]]) as tf.Tensor3D };
      },
    };
    backbone.setPrefixProvider(recorder);
    try {
      const ex = example('u1', 3, 11, 1);
      // The same images in the same places, each pair's answers swapped.
      const flipped: PreferenceExample = { ...ex, references: ex.references.map((r) => ({ ...r, liked: r.disliked, disliked: r.liked })), likedFirst: ex.likedFirst.map((f) => !f) };
      for (const e of [ex, flipped]) {
        const prepared = await backbone.prepare([e]);
        tf.dispose(Object.values(backbone.pairLogits(prepared, { training: false })));
        prepared.dispose();
      }
      const [a, b] = seen;
      expect(maxRel(b.mean[0], a.mean[0])).toBeLessThan(1e-6);
      expect(Math.max(...a.direction[0].map(Math.abs))).toBeGreaterThan(1e-3);
      expect(maxRel(b.direction[0].map((v) => -v), a.direction[0])).toBeLessThan(1e-6);
      // A history session (ranking) hands the provider the same context as a prepared batch.
      const session = await backbone.openHistory({ references: ex.references, likedFirst: ex.likedFirst });
      session.dispose();
      expect(maxRel(seen[2].direction[0], a.direction[0])).toBeLessThan(1e-5);
      expect(maxRel(seen[2].mean[0], a.mean[0])).toBeLessThan(1e-5);
    } finally {
      backbone.setPrefixProvider(null);
    }
  });

  it('PrefixContext.training says whether the forward pass trains, in every path (what starved-prompt re-seating keys on)', async () => {
    const flags: Array<boolean | undefined> = [];
    const recorder: PrefixProvider = {
      length: 1,
      prefix: (ctx) => {
        flags.push(ctx.training);
        return { embeddings: tf.zeros([ctx.historyMean.shape[0], 1, ctx.historyMean.shape[1]]) as tf.Tensor3D };
      },
    };
    backbone.setPrefixProvider(recorder);
    try {
      const ex = example('u1', 2, 5, 1);
      const prepared = await backbone.prepare([ex]);
      for (const training of [true, false]) {
        tf.dispose(Object.values(backbone.pairLogits(prepared, { training, seed: 3 })));
        tf.dispose(Object.values(backbone.pairLogitsFull(prepared, { training, seed: 3 })));
      }
      prepared.dispose();
      (await backbone.openHistory({ references: ex.references, likedFirst: ex.likedFirst })).dispose();
      expect(flags).toEqual([true, true, false, false, false]);
    } finally {
      backbone.setPrefixProvider(null);
    }
  });

  it('caches vision outputs per image and frees prepared batches', async () => {
    const batch = [example('u1', 2, 5, 1)];
    const p1 = await backbone.prepare(batch);
    p1.dispose();
    const before = tf.memory().numTensors;
    const p2 = await backbone.prepare(batch);
    // Only the stacked context is new: the 6 vision outputs come from the cache.
    expect(tf.memory().numTensors).toBe(before + 1);
    p2.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const emb = await backbone.imageEmbeddings([batch[0].target.image0, batch[0].target.image1]);
    expect(emb.shape).toEqual([2, 32]);
    emb.dispose();
  });

  it('saveAdapter / loadAdapter round-trip gives the same logits', async () => {
    const batch = [example('u1', 1, 6, 0)];
    const prepared = await backbone.prepare(batch);
    const a = backbone.pairLogits(prepared, { training: false });
    const before = a.liked.dataSync().slice();
    await backbone.saveAdapter(path.join(tmp, 'adapter'));
    // Disturb, then reload.
    for (const v of backbone.adapterVariables()) v.assign(tf.zerosLike(v));
    await backbone.loadAdapter(path.join(tmp, 'adapter'));
    const b = backbone.pairLogits(prepared, { training: false });
    expect(Array.from(b.liked.dataSync())).toEqual(Array.from(before));
    tf.dispose([a.liked, a.disliked, b.liked, b.disliked]);
    prepared.dispose();
  });

  it('the plugin contributes backbone "idefics2" whose schema fills the paper defaults', () => {
    const c = userprefPlugin.contributions.find((x) => x.kind === 'backbone' && x.name === 'idefics2')!;
    const opts = validateOptions('backbone idefics2', c.optionsSchema, { path: 'ckpt' }) as Record<string, unknown>;
    expect(opts).toMatchObject({ path: 'ckpt', usePrompt: true, maxPromptLen: 100, dtype: 'float32', lora: { r: 8, alpha: 8, dropout: 0.1, init: 'gaussian' } });
    expect(() => validateOptions('backbone idefics2', c.optionsSchema, {})).toThrow(/path/);
  });
});
