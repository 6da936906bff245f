/**
 * Shared reference prefix (backbone pairLogits, default): running the history once and the two
 * target turns on its keys must give the logits AND the gradients of two complete sequences per
 * example (pairLogitsFull, itself checked against transformers through backbone.spec / model.spec),
 * for a right-padded batch of examples of different lengths, with and without preference tokens
 * prepended before BOS, and K candidates of one user must run one prefix. The custom-gradient
 * kernels it rests on (segment attention with causal blocks, fused RMSNorm / SwiGLU, thin matMul)
 * are checked against plain tfjs ops and autodiff.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PairLogits, PreferenceExample, PrefixContext, PrefixProvider } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone } from '../src';
import { gatedActivation, matMulThin, planSegments, rmsNorm, segmentAttention, type AttentionSegment } from '@userpref/mllm';
import { relErr, tinyCheckpoint } from './model-fixtures';
import { syntheticExample } from './synthetic';

const RECIPE = { step: 3, add: 31, every: 5 };

function example(user: string, refs: number, seed: number, label0: number, prompt: string, targetSeed = seed): PreferenceExample {
  return syntheticExample(user, refs, seed, label0, { prompt, targetPrompt: `target ${targetSeed}`, likedFirst: 'odd', targetSeed, recipe: RECIPE });
}

/** Preference tokens that depend on the history mean (as the prompt pool does), so its path is exercised too. */
class MixingPrefix implements PrefixProvider {
  readonly tokens: tf.Variable;
  readonly mix: tf.Variable;
  constructor(readonly length: number, d: number) {
    this.tokens = tf.variable(tf.randomUniform([length, d], 0, 1, 'float32', 11), true, 'prefix_tokens');
    this.mix = tf.variable(tf.randomNormal([d, d], 0, 0.1, 'float32', 12), true, 'prefix_mix');
  }
  prefix(ctx: PrefixContext): { embeddings: tf.Tensor3D; auxLoss: tf.Scalar } {
    const B = ctx.historyMean.shape[0];
    const q = tf.matMul(ctx.historyMean, this.mix); // [B, d]
    const embeddings = tf.add(tf.expandDims(this.tokens, 0), tf.expandDims(q, 1)) as tf.Tensor3D; // [B, P, d]
    return { embeddings: tf.reshape(embeddings, [B, this.length, -1]) as tf.Tensor3D, auxLoss: tf.mean(tf.square(q)) as tf.Scalar };
  }
}

describe('shared reference prefix (tiny checkpoint)', () => {
  let dir: string;
  let backbone: Idefics2Backbone;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await tinyCheckpoint('idefics2-prefix-');
    backbone = new Idefics2Backbone({ path: path.basename(dir), maxPromptLen: 40, lora: { r: 8, alpha: 16, dropout: 0, targetModules: '.*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$', init: 'gaussian' } }, { seed: 3, baseDir: path.dirname(dir) });
    await backbone.init();
    // B = 0 at init would make dL/dA vanish: give every B a value.
    for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 40 + i), 0.05) as tf.Tensor2D);
  });

  afterAll(async () => {
    backbone?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  /** Logits and gradients of a fixed random linear functional of both logit matrices (+ aux losses). */
  function run(forward: () => PairLogits, vars: tf.Variable[], B: number) {
    const vocab = 400;
    const w1 = tf.randomNormal([B, vocab], 0, 1, 'float32', 1);
    const w2 = tf.randomNormal([B, vocab], 0, 1, 'float32', 2);
    let liked: number[][] = [];
    let disliked: number[][] = [];
    const { value, grads } = tf.variableGrads(() => {
      const o = forward();
      liked = o.liked.arraySync();
      disliked = o.disliked.arraySync();
      let loss = tf.add(tf.sum(tf.mul(o.liked, w1)), tf.sum(tf.mul(o.disliked, w2)));
      for (const a of o.auxLosses ?? []) loss = tf.add(loss, a.value);
      return loss as tf.Scalar;
    }, vars);
    const g = Object.fromEntries(vars.map((v) => [v.name, grads[v.name].dataSync().slice()]));
    tf.dispose([value, w1, w2, ...Object.values(grads)]);
    return { liked, disliked, grads: g };
  }

  function expectSame(a: ReturnType<typeof run>, b: ReturnType<typeof run>, vars: tf.Variable[]) {
    for (let i = 0; i < a.liked.length; i++) {
      expect(relErr(a.liked[i], b.liked[i])).toBeLessThan(1e-5);
      expect(relErr(a.disliked[i], b.disliked[i])).toBeLessThan(1e-5);
    }
    let nonzero = 0;
    for (const v of vars) {
      const [ga, gb] = [a.grads[v.name], b.grads[v.name]];
      const scale = Math.max(...Array.from(gb, Math.abs));
      if (scale > 0) nonzero++;
      expect({ name: v.name, rel: scale > 0 ? relErr(ga, gb) < 1e-5 : Math.max(...Array.from(ga, Math.abs)) === 0 }).toEqual({ name: v.name, rel: true });
    }
    // Every variable is reached (the test would be vacuous otherwise).
    expect(nonzero).toBe(vars.length);
  }

  it('equals two full passes in logits and LoRA gradients for a padded batch of two lengths', async () => {
    const batch = [example('u1', 3, 1, 1, 'a cat on a chair with a hat'), example('u2', 1, 2, 0, 'castles')];
    const prepared = await backbone.prepare(batch);
    expect(Idefics2Backbone.prefixCount(prepared)).toBe(2);
    const vars = backbone.adapterVariables();
    const opts = { training: true, seed: 5 };
    const shared = run(() => backbone.pairLogits(prepared, opts), vars, 2);
    const full = run(() => backbone.pairLogitsFull(prepared, opts), vars, 2);
    expect(shared.liked[0]).not.toEqual(shared.liked[1]);
    expectSame(shared, full, vars);
    prepared.dispose();
  });

  it('equals two full passes with preference tokens prepended (gradients w.r.t. the tokens too)', async () => {
    const provider = new MixingPrefix(4, backbone.textHiddenSize);
    backbone.setPrefixProvider(provider);
    try {
      const batch = [example('u3', 2, 3, 0, 'sunset over a lake'), example('u4', 3, 4, 1, 'a robot')];
      const prepared = await backbone.prepare(batch);
      const vars = [provider.tokens, provider.mix, ...backbone.adapterVariables()];
      const opts = { training: true, seed: 9 };
      const shared = run(() => backbone.pairLogits(prepared, opts), vars, 2);
      const full = run(() => backbone.pairLogitsFull(prepared, opts), vars, 2);
      expectSame(shared, full, vars);
      prepared.dispose();
    } finally {
      backbone.setPrefixProvider(null);
      provider.tokens.dispose();
      provider.mix.dispose();
    }
  });

  it('scores K candidates of one user with one prefix and K short target turns', async () => {
    const K = 3;
    const batch = Array.from({ length: K }, (_, k) => example('u5', 2, 5, k % 2, 'a dog', 50 + k));
    const prepared = await backbone.prepare(batch);
    expect(Idefics2Backbone.prefixCount(prepared)).toBe(1);
    const a = backbone.pairLogits(prepared, { training: false });
    const b = backbone.pairLogitsFull(prepared, { training: false });
    const [al, bl, ad, bd] = [a.liked.arraySync(), b.liked.arraySync(), a.disliked.arraySync(), b.disliked.arraySync()];
    for (let k = 0; k < K; k++) {
      expect(relErr(al[k], bl[k])).toBeLessThan(1e-5);
      expect(relErr(ad[k], bd[k])).toBeLessThan(1e-5);
    }
    tf.dispose([a.liked, a.disliked, b.liked, b.disliked]);
    prepared.dispose();
  });

  it('is the default path; sharedPrefix: false selects the full one', async () => {
    const off = new Idefics2Backbone({ path: path.basename(dir), maxPromptLen: 40, sharedPrefix: false }, { seed: 3, baseDir: path.dirname(dir) });
    await off.init();
    try {
      const batch = [example('u6', 2, 6, 1, 'a bridge')];
      const p1 = await backbone.prepare(batch);
      const p2 = await off.prepare(batch);
      const same = (x: PairLogits, y: PairLogits) => expect(Array.from(x.liked.dataSync())).toEqual(Array.from(y.liked.dataSync()));
      const a = backbone.pairLogits(p1, { training: false });
      const b = backbone.pairLogitsShared(p1, { training: false });
      same(a, b);
      const c = off.pairLogits(p2, { training: false });
      const d = off.pairLogitsFull(p2, { training: false });
      same(c, d);
      tf.dispose([a.liked, a.disliked, b.liked, b.disliked, c.liked, c.disliked, d.liked, d.disliked]);
      p1.dispose();
      p2.dispose();
    } finally {
      off.dispose();
    }
  });
});

describe('custom-gradient kernels behind the shared prefix', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  const rel = (a: tf.Tensor, b: tf.Tensor) => relErr(a.dataSync(), b.dataSync());

  it('segment attention (blocks, GQA, prefix keys, groups, key mask) equals plain softmax attention, values and gradients', () => {
    const H = 4;
    const K = 2;
    const hd = 8;
    // Packed rows: a 300-token sequence (causal, blocked), a 20-token suffix over its first 250 keys,
    // and a non-causal block-diagonal segment of two 6-query items over 10 keys each (one key hidden).
    const N = 300 + 20 + 12;
    const Nk = 300 + 20 + 20;
    const q = tf.randomNormal([N, H * hd], 0, 1, 'float32', 1) as tf.Tensor2D;
    const k = tf.randomNormal([Nk, K * hd], 0, 1, 'float32', 2) as tf.Tensor2D;
    const v = tf.randomNormal([Nk, K * hd], 0, 1, 'float32', 3) as tf.Tensor2D;
    const w = tf.randomNormal([N, H * hd], 0, 1, 'float32', 4);
    const keyValid = Array.from({ length: 20 }, (_, j) => (j === 3 ? 0 : 1));
    const segments: AttentionSegment[] = [
      { query: { start: 0, len: 300 }, keys: [{ start: 0, len: 300 }], causalOffset: 0 },
      { query: { start: 300, len: 20 }, keys: [{ start: 0, len: 250 }, { start: 300, len: 20 }], causalOffset: 250 },
      { query: { start: 320, len: 12 }, keys: [{ start: 320, len: 20 }], causalOffset: null, keyValid, groups: { query: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], key: Array.from({ length: 20 }, (_, j) => (j < 10 ? 0 : 1)) } },
    ];
    // Reference: per segment and head, scores + explicit -inf-like mask from the definitions, plain ops.
    const visible = (s: number, i: number, j: number): boolean => {
      const seg = segments[s];
      if (s === 2) return keyValid[j] === 1 && (i < 6) === (j < 10);
      return j <= i + (seg.causalOffset as number);
    };
    const reference = (qq: tf.Tensor2D, kk: tf.Tensor2D, vv: tf.Tensor2D) => {
      const outs: tf.Tensor[] = [];
      segments.forEach((seg, s) => {
        const keys = (x: tf.Tensor2D) => tf.concat(seg.keys.map((r) => tf.slice(x, [r.start, 0], [r.len, K * hd])), 0);
        const ks = keys(kk);
        const vs = keys(vv);
        const Tq = seg.query.len;
        const Tk = ks.shape[0];
        const maskData = new Float32Array(Tq * Tk);
        for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) if (!visible(s, i, j)) maskData[i * Tk + j] = -1e9;
        const mask = tf.tensor2d(maskData, [Tq, Tk]);
        const heads: tf.Tensor[] = [];
        for (let h = 0; h < H; h++) {
          const kv = Math.floor(h / (H / K));
          const qh = tf.slice(qq, [seg.query.start, h * hd], [Tq, hd]);
          const kh = tf.slice(ks, [0, kv * hd], [Tk, hd]);
          const vh = tf.slice(vs, [0, kv * hd], [Tk, hd]);
          const p = tf.softmax(tf.add(tf.div(tf.matMul(qh, tf.transpose(kh)), Math.sqrt(hd)), mask));
          heads.push(tf.matMul(p, vh));
        }
        outs.push(tf.concat(heads, 1));
      });
      return tf.concat(outs, 0);
    };
    const dims = { heads: H, kvHeads: K, headDim: hd };
    const ours = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => {
      const plan = planSegments(segments);
      expect(plan[0].blocks.length).toBeGreaterThan(1);
      return segmentAttention(qq as tf.Tensor2D, kk as tf.Tensor2D, vv as tf.Tensor2D, plan, dims).out;
    };
    expect(rel(ours(q, k, v), reference(q, k, v))).toBeLessThan(1e-5);
    const g1 = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(ours(a, b, c), w)))([q, k, v]);
    const g2 = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(reference(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D), w)))([q, k, v]);
    for (let i = 0; i < 3; i++) expect(rel(g1[i], g2[i])).toBeLessThan(1e-5);
    tf.dispose([q, k, v, w, ...g1, ...g2]);
  });

  it('fused RMSNorm, SwiGLU and thin matMul have the gradients of their plain ops', () => {
    const x = tf.randomNormal([5, 7, 16], 0, 1, 'float32', 1);
    const w = tf.randomNormal([16], 1, 0.3, 'float32', 2);
    const dy = tf.randomNormal([5, 7, 16], 0, 1, 'float32', 3);
    const plainNorm = (a: tf.Tensor, b: tf.Tensor) => tf.mul(tf.mul(a, tf.rsqrt(tf.add(tf.mean(tf.square(a), -1, true), 1e-5))), b);
    const n1 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a, b as tf.Tensor1D, 1e-5), dy)))([x, w]);
    const n2 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plainNorm(a, b), dy)))([x, w]);
    expect(rel(rmsNorm(x, w as tf.Tensor1D, 1e-5), plainNorm(x, w))).toBe(0);
    expect(rel(n1[0], n2[0])).toBeLessThan(1e-5);
    expect(rel(n1[1], n2[1])).toBeLessThan(1e-5);
    const g = tf.randomNormal([9, 12], 0, 2, 'float32', 4);
    const u = tf.randomNormal([9, 12], 0, 1, 'float32', 5);
    const d2 = tf.randomNormal([9, 12], 0, 1, 'float32', 6);
    const s1 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(gatedActivation(a, b, 'silu'), d2)))([g, u]);
    const s2 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.mul(tf.mul(a, tf.sigmoid(a)), b), d2)))([g, u]);
    expect(rel(s1[0], s2[0])).toBeLessThan(1e-5);
    expect(rel(s1[1], s2[1])).toBeLessThan(1e-5);
    const A = tf.randomNormal([30, 4], 0, 1, 'float32', 7);
    const B = tf.randomNormal([4, 20], 0, 1, 'float32', 8);
    const d3 = tf.randomNormal([30, 20], 0, 1, 'float32', 9);
    const t1 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(matMulThin(a as tf.Tensor2D, b as tf.Tensor2D), d3)))([A, B]);
    const t2 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), d3)))([A, B]);
    expect(rel(t1[0], t2[0])).toBeLessThan(1e-6);
    expect(rel(t1[1], t2[1])).toBeLessThan(1e-6);
  });
});
