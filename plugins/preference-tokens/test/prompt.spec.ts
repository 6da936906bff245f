import * as tf from '@tensorflow/tfjs-core';
import { Rng, memoryLogger } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { PromptTokens } from '../src';

function values(tokens: PromptTokens): Float32Array {
  return tokens.variables()[0].dataSync() as Float32Array;
}

function stats(v: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    s += v[i];
    min = Math.min(min, v[i]);
    max = Math.max(max, v[i]);
  }
  const mean = s / v.length;
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(ss / v.length), min, max };
}

describe("preference tokens 'prompt'", () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it('defaults to the paper: 10 tokens drawn U(0, 1)', () => {
    const t = new PromptTokens({}, 3);
    expect(t.length).toBe(10);
    t.build(400);
    expect(t.variables()[0].shape).toEqual([10, 400]);
    expect(t.variables()[0].trainable).toBe(true);
    const s = stats(values(t));
    // U(0, 1): mean 1/2, std sqrt(1/12) = 0.2887; 4000 draws give standard errors 0.0046 / ~0.003.
    expect(s.min).toBeGreaterThanOrEqual(0);
    expect(s.max).toBeLessThan(1);
    expect(Math.abs(s.mean - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(s.std - Math.sqrt(1 / 12))).toBeLessThan(0.01);
    t.dispose();
  });

  it("init 'normal' has the configured std, 'zeros' is zero", () => {
    const n = new PromptTokens({ length: 8, init: 'normal', std: 0.5 }, 3);
    n.build(500);
    const s = stats(values(n));
    // N(0, 0.25): 4000 draws, standard error of the mean 0.008, of the std ~0.0056.
    expect(Math.abs(s.mean)).toBeLessThan(0.03);
    expect(Math.abs(s.std - 0.5)).toBeLessThan(0.02);
    const z = new PromptTokens({ length: 2, init: 'zeros' }, 3);
    z.build(5);
    expect(Array.from(values(z))).toEqual(new Array(10).fill(0));
    n.dispose();
    z.dispose();
  });

  it("draws from the run seed's 'preference-tokens/prompt' stream: same seed, same tokens", () => {
    const a = new PromptTokens({ length: 2 }, 42);
    const b = new PromptTokens({ length: 2 }, 42);
    const c = new PromptTokens({ length: 2 }, 43);
    [a, b, c].forEach((t) => t.build(6));
    expect(Array.from(values(a))).toEqual(Array.from(values(b)));
    expect(Array.from(values(a))).not.toEqual(Array.from(values(c)));
    const rng = Rng.stream(42, 'preference-tokens/prompt');
    const expected = Array.from({ length: 12 }, () => Math.fround(rng.uniform()));
    expect(Array.from(values(a))).toEqual(expected);
    [a, b, c].forEach((t) => t.dispose());
  });

  it('prefix broadcasts P to [batch, length, d] and its gradient sums over the batch', () => {
    const t = new PromptTokens({ length: 3 }, 1, memoryLogger());
    t.build(4);
    const p = t.variables()[0].arraySync() as number[][];
    const historyMean = tf.randomNormal([2, 4], 0, 1, 'float32', 5) as tf.Tensor2D;
    const { embeddings } = t.prefix({ historyMean, preferenceDirection: historyMean });
    expect(embeddings.shape).toEqual([2, 3, 4]);
    expect(embeddings.arraySync()).toEqual([p, p]);
    // d/dP sum(E * W) = W[0] + W[1]
    const w = tf.tensor3d(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(t.prefix({ historyMean, preferenceDirection: historyMean }).embeddings, w)) as tf.Scalar, t.variables());
    const g = grads[t.variables()[0].name].arraySync() as number[][];
    const wArr = w.arraySync();
    g.forEach((row, i) => row.forEach((v, j) => expect(v).toBe(wArr[0][i][j] + wArr[1][i][j])));
    tf.dispose([historyMean, embeddings, w, ...Object.values(grads)]);
    t.dispose();
  });

  it('says what is wrong: use before build, width mismatch, bad length', () => {
    const t = new PromptTokens({ length: 2 }, 1);
    const q = tf.zeros([1, 4]) as tf.Tensor2D;
    expect(() => t.prefix({ historyMean: q, preferenceDirection: q })).toThrow("preference tokens 'prompt': call build(hiddenSize) or load(path) first");
    t.build(5);
    expect(() => t.prefix({ historyMean: q, preferenceDirection: q })).toThrow("preference tokens 'prompt': historyMean width 4 does not match the tokens' hidden size 5");
    expect(() => t.build(6)).toThrow("preference tokens 'prompt': tokens have shape [2, 5] but the text model's hidden size is 6");
    expect(() => new PromptTokens({ length: 0 }, 1)).toThrow(/length must be an integer >= 1, got 0/);
    q.dispose();
    t.dispose();
  });
});
