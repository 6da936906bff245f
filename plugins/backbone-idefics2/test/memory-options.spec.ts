/**
 * The memory options on the tiny checkpoint: activation checkpointing gives the LoRA and
 * preference-token gradients of the unchecked run on a padded batch in training mode (dropout on),
 * with a float32 and with a 4-bit base; a packed base holds its Linear weights packed (measured
 * device bytes) with the quantizers' values, and its logits stay near the float32 ones.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceExample, PrefixContext, PrefixProvider } from '@userpref/core';
import { packedBytes } from '@userpref/quant';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone } from '../src';
import { tinyCheckpoint } from './model-fixtures';
import { syntheticExample } from './synthetic';

function example(user: string, refs: number, seed: number, label0: number, prompt = 'a cat on a chair'): PreferenceExample {
  return syntheticExample(user, refs, seed, label0, { prompt, targetPrompt: 'a red car at night', likedFirst: 'even', recipe: { step: 3, add: 29, every: 7 } });
}

/** Preference tokens as a plain trainable matrix (stage 2's provider, without the plugin). */
class Tokens implements PrefixProvider {
  readonly variable: tf.Variable;
  constructor(
    readonly length: number,
    d: number,
  ) {
    this.variable = tf.variable(tf.randomUniform([length, d], 0, 1, 'float32', 5), true);
  }
  prefix(ctx: PrefixContext): { embeddings: tf.Tensor3D } {
    return { embeddings: tf.tile(tf.expandDims(this.variable, 0), [ctx.historyMean.shape[0], 1, 1]) as tf.Tensor3D };
  }
}

/** ||a - b||_2 / ||b||_2 */
const l2Rel = (a: Float32Array, b: Float32Array) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
};

/** max |a - b| / max |b| */
const maxRel = (a: Float32Array, b: Float32Array) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
};

describe('memory options (tiny checkpoint)', () => {
  let dir: string;
  const open: Idefics2Backbone[] = [];

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await tinyCheckpoint();
  });
  afterAll(() => {
    for (const b of open) b.dispose();
  });

  async function backbone(options: { baseBits?: 32 | 8 | 4; checkpointing?: boolean }): Promise<Idefics2Backbone> {
    const b = new Idefics2Backbone({ path: path.basename(dir), maxPromptLen: 12, ...options }, { seed: 1, baseDir: path.dirname(dir) });
    await b.init();
    // The same non-zero B everywhere (B = 0 at init would leave A without gradient).
    for (const [i, v] of b.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i), 0.05) as tf.Tensor2D);
    open.push(b);
    return b;
  }

  /** LoRA and token gradients of one training step on a padded batch (dropout on, seeded). */
  async function grads(b: Idefics2Backbone, tokens: Tokens | null): Promise<Float32Array[]> {
    b.setPrefixProvider(tokens);
    const batch = [example('u1', 3, 1, 1), example('u2', 1, 2, 0, 'a much longer prompt about castles')];
    const prepared = await b.prepare(batch);
    const vars = [...b.adapterVariables(), ...(tokens ? [tokens.variable] : [])];
    const { value, grads } = tf.variableGrads(() => {
      const z = b.pairLogits(prepared, { training: true, seed: 11 });
      return tf.sum(tf.sub(tf.logSoftmax(z.liked), tf.logSoftmax(z.disliked)).slice([0, 0], [-1, 40]).square()) as tf.Scalar;
    }, vars);
    const out = vars.map((v) => grads[v.name].dataSync().slice() as Float32Array);
    value.dispose();
    tf.dispose(Object.values(grads));
    prepared.dispose();
    b.setPrefixProvider(null);
    return out;
  }

  for (const bits of [32, 4] as const) {
    it(`checkpointing gives the unchecked LoRA and preference-token gradients (${bits === 32 ? 'float32' : '4-bit'} base)`, async () => {
      const plain = await backbone({ baseBits: bits });
      const ck = await backbone({ baseBits: bits, checkpointing: true });
      const tokens = new Tokens(3, plain.textHiddenSize);
      const a = await grads(plain, tokens);
      const before = tf.memory().numTensors;
      const b = await grads(ck, tokens);
      expect(tf.memory().numTensors).toBe(before);
      expect(a).toHaveLength(b.length);
      // The recomputed forward is the same arithmetic; the backward sums a layer input's gradient
      // contributions in another order, so the last bits differ.
      let worst = 0;
      let worstMax = 0;
      for (let i = 0; i < a.length; i++) {
        expect(a[i].some((x) => x !== 0)).toBe(true);
        worst = Math.max(worst, l2Rel(b[i], a[i]));
        worstMax = Math.max(worstMax, maxRel(b[i], a[i]));
      }
      console.log(`${bits}-bit base on ${tf.getBackend()}: checkpointed vs unchecked gradients over ${a.length} tensors: worst ||diff||/||ref|| ${worst.toExponential(2)}, worst max|diff|/max|ref| ${worstMax.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-6);
      tokens.variable.dispose();
    }, 300000);
  }

  it('holds a packed base packed, with the quantizers\' values, and its logits stay near float32', async () => {
    const f32 = await backbone({ baseBits: 32 });
    const batch = [example('u1', 2, 3, 1)];
    const logits = async (b: Idefics2Backbone) => {
      const p = await b.prepare(batch);
      const z = b.pairLogits(p, { training: false });
      const v = Float32Array.from([...z.liked.dataSync(), ...z.disliked.dataSync()]);
      tf.dispose([z.liked, z.disliked]);
      p.dispose();
      return v;
    };
    const ref = await logits(f32);
    for (const bits of [8, 4] as const) {
      const b = await backbone({ baseBits: bits });
      const linears = b.idefics2.linears();
      let held = 0;
      let expected = 0;
      for (const lin of linears) {
        const isHead = lin.parts[0].name === 'lm_head';
        expect(lin.packed === null).toBe(isHead);
        held += lin.weightTensors().reduce((s, t) => s + t.size * 4, 0);
        const out = lin.parts.reduce((s, p) => s + p.out, 0);
        expected += isHead ? 4 * lin.inFeatures * out : packedBytes(lin.inFeatures, out, { bits });
      }
      expect(held).toBe(expected);
      // Unpacked values = the host dequantization (bit for bit), for one fused layer.
      const qkv = linears.find((l) => l.parts[0].name.endsWith('text_model.layers.0.self_attn.q_proj'))!;
      const m = qkv.frozenWeight();
      expect(m.owned).toBe(true);
      expect(Array.from(m.w.dataSync())).toEqual(Array.from(qkv.packed!.dequantizeHost()));
      m.w.dispose();
      const z = await logits(b);
      const err = maxRel(z, ref);
      console.log(`tiny, ${bits}-bit base: logits max |difference| / max |logit| vs float32 = ${err.toExponential(2)}`);
      expect(Number.isFinite(err)).toBe(true);
      expect(err).toBeLessThan(bits === 8 ? 0.02 : 0.2);
    }
  }, 300000);
});
