import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { PromptPoolTokens, topKIndices } from '../src';
import { CONFIG_FILE } from '../src/storage';

/*
 * A hand-built pool: 5 prompts of 2 tokens in d = 4. Prompt j's tokens are k_j + a_j and
 * k_j - a_j, so its key (mean over tokens) is exactly k_j (all values are multiples of 1/4):
 *   k0 = [1,0,0,0]  k1 = [0,1,0,0]  k2 = [0,0,1,0]  k3 = [1,1,0,0]  k4 = [0,0,0,1]
 *   a_j = (j + 1) * [1/4, -1/4, 1/2, 0]
 * Queries (history means):
 *   q0 = [3,1,0,0]: cos with k0..k4 = 3/sqrt10 (.949), 1/sqrt10 (.316), 0, 4/sqrt20 (.894), 0
 *                   -> top-2 = [0, 3]
 *   q1 = [0,1,2,0]: cos = 0, 1/sqrt5 (.447), 2/sqrt5 (.894), 1/sqrt10 (.316), 0 -> top-2 = [2, 1]
 * Prompt 4 is chosen by nobody.
 *
 * Pull constraint, coefficient c, batch B = 2:
 *   aux = c / B * [ (1 - 3/sqrt10) + (1 - 2/sqrt5) + (1 - 2/sqrt5) + (1 - 1/sqrt5) ]
 *   (4/sqrt20 = 2/sqrt5.)
 * Its gradient: d cos(q, k)/dk = (q^ - cos * k^) / |k| (q^, k^ unit vectors), so
 *   d aux/dk = -c/B * (q^ - cos k^)/|k| for each (query, selected key) pair:
 *   (q0, k0): q^0 - cos k^0 = [0, 1/sqrt10, 0, 0], |k0| = 1   -> -c/B [0, 1/sqrt10, 0, 0]
 *   (q0, k3): q^0 - (2/sqrt5) [1,1,0,0]/sqrt2 = [1/sqrt10, -1/sqrt10, 0, 0], |k3| = sqrt2
 *                                                             -> -c/B [1/sqrt20, -1/sqrt20, 0, 0]
 *   (q1, k2): q^1 - cos k^2 = [0, 1/sqrt5, 0, 0]                -> -c/B [0, 1/sqrt5, 0, 0]
 *   (q1, k1): q^1 - cos k^1 = [0, 0, 2/sqrt5, 0]                -> -c/B [0, 0, 2/sqrt5, 0]
 * A key that is the mean of L = 2 tokens passes 1/L of its gradient to each token.
 *
 * With the language-model stand-in loss sum(E * W), E = the [2, 4, 4] prefix, a selected prompt
 * token also gets W at the position it was placed: batch 0 = [prompt 0 tok 0, tok 1, prompt 3
 * tok 0, tok 1], batch 1 = [prompt 2 tok 0, tok 1, prompt 1 tok 0, tok 1].
 */
const S10 = Math.sqrt(10);
const S5 = Math.sqrt(5);
const S20 = Math.sqrt(20);
const keys = [
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [1, 1, 0, 0],
  [0, 0, 0, 1],
];
const offset = (j: number) => [0.25, -0.25, 0.5, 0].map((v) => v * (j + 1));
const pool = keys.map((k, j) => [k.map((v, i) => v + offset(j)[i]), k.map((v, i) => v - offset(j)[i])]);
const queries = [
  [3, 1, 0, 0],
  [0, 1, 2, 0],
];
const pullGrad: Record<number, number[]> = {
  0: [0, 1 / S10, 0, 0],
  3: [1 / S20, -1 / S20, 0, 0],
  2: [0, 1 / S5, 0, 0],
  1: [0, 0, 2 / S5, 0],
};
/** Where each selected prompt sits: [batch, first position]. */
const placed: Record<number, [number, number]> = { 0: [0, 0], 3: [0, 2], 2: [1, 0], 1: [1, 2] };
const W = Array.from({ length: 2 }, (_, b) => Array.from({ length: 4 }, (_, p) => Array.from({ length: 4 }, (_, i) => 0.01 * (b * 16 + p * 4 + i + 1))));

function handPool(c: number, keyMode: 'prompt-mean' | 'learnable' = 'prompt-mean'): PromptPoolTokens {
  const t = new PromptPoolTokens({ poolSize: 5, length: 2, topK: 2, pullCoefficient: c, keys: keyMode }, 1);
  t.build(4);
  const [p, k] = t.variables();
  p.assign(tf.tensor3d(pool));
  k?.assign(tf.tensor2d(keys));
  return t;
}

function expectClose(got: number[], want: number[], digits = 5) {
  expect(got.length).toBe(want.length);
  got.forEach((v, i) => expect(v).toBeCloseTo(want[i], digits));
}

describe("preference tokens 'prompt-pool'", () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it('picks the prompts whose keys are most cosine-similar to the query and concatenates them', () => {
    const t = handPool(0.5);
    expect(t.length).toBe(4);
    const q = tf.tensor2d(queries);
    const { embeddings, auxLoss } = t.prefix({ historyMean: q, preferenceDirection: q });
    expect(t.lastSelection()).toEqual([
      [0, 3],
      [2, 1],
    ]);
    expect(embeddings.shape).toEqual([2, 4, 4]);
    expect(embeddings.arraySync()).toEqual([
      [...pool[0], ...pool[3]],
      [...pool[2], ...pool[1]],
    ]);
    const hand = (0.5 / 2) * (1 - 3 / S10 + (1 - 2 / S5) + (1 - 2 / S5) + (1 - 1 / S5));
    expect(auxLoss.dataSync()[0]).toBeCloseTo(hand, 6);
    tf.dispose([q, embeddings, auxLoss]);
    t.dispose();
  });

  it('the query scale does not matter (cosine), ties go to the lower index', () => {
    const t = handPool(0.1);
    const q = tf.tensor2d([
      [300, 100, 0, 0],
      [0, 0, 0, 0],
    ]);
    const out = t.prefix({ historyMean: q, preferenceDirection: q });
    // A zero query has cosine 0 with every key (no NaN): prompts 0 and 1 by index.
    expect(t.lastSelection()).toEqual([
      [0, 3],
      [0, 1],
    ]);
    expect(Number.isFinite(out.auxLoss.dataSync()[0])).toBe(true);
    tf.dispose([q, out.embeddings, out.auxLoss]);
    expect(topKIndices([0.5, 0.9, 0.9, 0.1], 1, 4, 3)).toEqual([[1, 2, 0]]);
    t.dispose();
  });

  it('gradients: language-model part into the selected prompts, pull part through their keys, exactly zero for the unselected prompt', () => {
    const c = 0.5;
    const t = handPool(c);
    const q = tf.tensor2d(queries);
    const w = tf.tensor3d(W);
    const { value, grads } = tf.variableGrads(() => {
      const { embeddings, auxLoss } = t.prefix({ historyMean: q, preferenceDirection: q });
      return tf.add(tf.sum(tf.mul(embeddings, w)), auxLoss) as tf.Scalar;
    }, t.variables());
    const g = grads[t.variables()[0].name].arraySync() as number[][][];
    // Unselected prompt 4: exactly zero.
    expect(g[4].flat().every((v) => v === 0)).toBe(true);
    for (const j of [0, 1, 2, 3]) {
      const [b, start] = placed[j];
      for (let tok = 0; tok < 2; tok++) {
        const want = W[b][start + tok].map((wv, i) => wv - (c / 2) * (pullGrad[j][i] / 2));
        expectClose(g[j][tok], want);
      }
    }
    tf.dispose([q, w, value, ...Object.values(grads)]);
    t.dispose();
  });

  it('any pull coefficient works, including 0 (the original crashed unless it was 0)', () => {
    for (const c of [0, 0.1, 3]) {
      const t = handPool(c);
      const q = tf.tensor2d(queries);
      const { value, grads } = tf.variableGrads(() => t.prefix({ historyMean: q, preferenceDirection: q }).auxLoss, t.variables());
      const sumOneMinusCos = 1 - 3 / S10 + 2 * (1 - 2 / S5) + (1 - 1 / S5);
      expect(value.dataSync()[0]).toBeCloseTo((c / 2) * sumOneMinusCos, 6);
      const g = grads[t.variables()[0].name].dataSync();
      expect(Array.from(g).every(Number.isFinite)).toBe(true);
      tf.dispose([q, value, ...Object.values(grads)]);
      t.dispose();
    }
  });

  it('learnable keys: the pull moves the selected keys only, the prompts get only the language-model gradient', () => {
    const c = 0.5;
    const t = handPool(c, 'learnable');
    expect(t.variables()).toHaveLength(2);
    const q = tf.tensor2d(queries);
    const w = tf.tensor3d(W);
    const { value, grads } = tf.variableGrads(() => {
      const { embeddings, auxLoss } = t.prefix({ historyMean: q, preferenceDirection: q });
      return tf.add(tf.sum(tf.mul(embeddings, w)), auxLoss) as tf.Scalar;
    }, t.variables());
    const [poolVar, keyVar] = t.variables();
    const gp = grads[poolVar.name].arraySync() as number[][][];
    const gk = grads[keyVar.name].arraySync() as number[][];
    expect(t.lastSelection()).toEqual([
      [0, 3],
      [2, 1],
    ]);
    expect(gk[4].every((v) => v === 0)).toBe(true);
    expect(gp[4].flat().every((v) => v === 0)).toBe(true);
    for (const j of [0, 1, 2, 3]) {
      const [b, start] = placed[j];
      expectClose(gk[j], pullGrad[j].map((v) => (-c / 2) * v));
      for (let tok = 0; tok < 2; tok++) expectClose(gp[j][tok], W[b][start + tok]);
    }
    tf.dispose([q, w, value, ...Object.values(grads)]);
    t.dispose();
  });

  it("query 'preference-direction' picks by PrefixContext.preferenceDirection, and the default by historyMean", () => {
    const byMean = handPool(0.5);
    const byTaste = new PromptPoolTokens({ poolSize: 5, length: 2, topK: 2, pullCoefficient: 0.5, query: 'preference-direction' }, 1);
    byTaste.build(4);
    byTaste.variables()[0].assign(tf.tensor3d(pool));
    const mean = tf.tensor2d(queries);
    const direction = tf.tensor2d([queries[1], queries[0]]);
    const a = byMean.prefix({ historyMean: mean, preferenceDirection: direction });
    const b = byTaste.prefix({ historyMean: mean, preferenceDirection: direction });
    expect(byMean.lastSelection()).toEqual([
      [0, 3],
      [2, 1],
    ]);
    expect(byTaste.lastSelection()).toEqual([
      [2, 1],
      [0, 3],
    ]);
    // The pull term is the same sum of (1 - cos) over the chosen keys, in the other order.
    expect(b.auxLoss.dataSync()[0]).toBeCloseTo(a.auxLoss.dataSync()[0], 6);
    const wrong = tf.zeros([1, 4]) as tf.Tensor2D;
    expect(() => byTaste.prefix({ historyMean: mean, preferenceDirection: wrong })).toThrow(
      "preference tokens 'prompt-pool': query 'preference-direction' needs PrefixContext.preferenceDirection [2, 4] from the backbone, got [1,4]",
    );
    tf.dispose([mean, direction, wrong, a.embeddings, a.auxLoss, b.embeddings, b.auxLoss]);
    byMean.dispose();
    byTaste.dispose();
  });

  /*
   * Starved-prompt re-seating, by hand: 3 prompts of 1 token in d = 2, learnable keys
   * k0 = [2, 0], k1 = [0, 2], k2 = [-1, 0] (lengths 2, 2, 1: mean 5/3), topK 1, reseatAfter 4,
   * reseatBelow 0.5 (even share 1/3 of the choices).
   *   calls 1 and 2 (training), queries [1, 0.1] and [0.1, 1]: prompts 0 and 1 chosen; after 4
   *     examples prompt 2 was chosen 0 times: share 0 < 0.5, starved (prompts 0, 1: 1.5).
   *   call 3 (training), queries [1, 0] and [1, 1]: best cosines 1 (k0) and 1/sqrt2 (k0 and k1),
   *     so [1, 1] is served worst; k2 becomes [1, 1]/sqrt2 * 5/3 = [1.1785, 1.1785]; then [1, 0]
   *     picks 0 (cos 1 against 1/sqrt2) and [1, 1] picks 2 (cos 1). Usage: 6 examples; prompt 0
   *     chosen 3, prompt 1 2, prompt 2 seated at 4 and chosen 1.
   */
  const reseatPool = () => {
    const t = new PromptPoolTokens({ poolSize: 3, length: 1, keys: 'learnable', topK: 1, reseatAfter: 4, reseatBelow: 0.5, pullCoefficient: 0 }, 5);
    t.build(2);
    t.variables()[1].assign(tf.tensor2d([2, 0, 0, 2, -1, 0], [3, 2]));
    return t;
  };
  const call = (t: PromptPoolTokens, rows: number[][], training: boolean) => {
    const q = tf.tensor2d(rows);
    const out = t.prefix({ historyMean: q, preferenceDirection: q, training });
    tf.dispose([q, out.embeddings, out.auxLoss]);
    return t.lastSelection().map((r) => r[0]);
  };
  const first = [
    [1, 0.1],
    [0.1, 1],
  ];
  const third = [
    [1, 0],
    [1, 1],
  ];

  it('re-seats a starved prompt onto the worst-served query while training, and never in evaluation', () => {
    const t = reseatPool();
    expect(call(t, first, true)).toEqual([0, 1]);
    expect(call(t, first, true)).toEqual([0, 1]);
    // Evaluation passes neither re-seat nor count.
    expect(call(t, third, false)).toEqual([0, 0]);
    expect(Array.from(t.variables()[1].dataSync())).toEqual([2, 0, 0, 2, -1, 0]);
    expect(t.usage()).toEqual({ examples: 4, seats: [{ since: 0, chosen: 2 }, { since: 0, chosen: 2 }, { since: 0, chosen: 0 }] });
    expect(call(t, third, true)).toEqual([0, 2]);
    const k = Array.from(t.variables()[1].dataSync());
    expectClose(k, [2, 0, 0, 2, (5 / 3) / Math.SQRT2, (5 / 3) / Math.SQRT2]);
    expect(t.usage()).toEqual({ examples: 6, seats: [{ since: 0, chosen: 3 }, { since: 0, chosen: 2 }, { since: 4, chosen: 1 }] });
    // Nobody is starved now: the re-seated prompt is judged again only after 4 more examples.
    call(t, third, true);
    expectClose(Array.from(t.variables()[1].dataSync()), k);
    t.dispose();
  });

  it('the usage counts are saved with the pool, so a resumed run re-seats like an uninterrupted one', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pool-reseat-'));
    const a = reseatPool();
    call(a, first, true);
    call(a, first, true);
    await a.save(dir);
    const saved = JSON.parse(await fsp.readFile(path.join(dir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    expect(saved).toMatchObject({ reseatAfter: 4, reseatBelow: 0.5, usage: { examples: 4 } });
    const b = new PromptPoolTokens({ poolSize: 3, length: 1, keys: 'learnable', topK: 1, reseatAfter: 4, reseatBelow: 0.5, pullCoefficient: 0 }, 6);
    await b.load(dir);
    expect(call(a, third, true)).toEqual([0, 2]);
    expect(call(b, third, true)).toEqual([0, 2]);
    expect(Array.from(b.variables()[1].dataSync())).toEqual(Array.from(a.variables()[1].dataSync()));
    expect(b.usage()).toEqual(a.usage());
    // Counts that do not fit the pool are refused with the file named.
    await fsp.writeFile(path.join(dir, CONFIG_FILE), JSON.stringify({ ...saved, usage: { examples: 4, seats: [{ since: 0, chosen: 1 }] } }));
    await expect(b.load(dir)).rejects.toThrow(`usage is not { examples, seats: [3 x { since, chosen }] } of counts`);
    [a, b].forEach((x) => x.dispose());
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /*
   * Seating the keys by k-means, by hand: 2 prompts of 1 token in d = 2, keys k0 = [2, 0] and
   * k1 = [0, 1] (mean length 1.5), seedKeysAfter 4.
   *   call 1 (training) [1, 0], [0, 0]: one query kept (the zero one has no direction).
   *   call 2 (training) [1, 0.2], [-1, 0]: three kept (picks 0, and 1: cos -1 with k0, 0 with k1).
   *   call 3 (training) [-1, 0.2], [5, 5]: the fourth is [-1, 0.2]; the kept unit queries form two
   *     clusters, {[1, 0], [1, 0.2]/sqrt(1.04)} and their mirror images in x; each centre is the
   *     normalised sum, [+-1.980581, 0.196116] / 1.990267 = [+-0.995133, 0.098538]; the keys
   *     become those times 1.5 = [+-1.492700, 0.147806]. Then [-1, 0.2] picks the key with x < 0, and
   *     [5, 5] the one with x > 0 (cos 0.773 against -0.634).
   */
  const seatPool = (seed = 5) => {
    const t = new PromptPoolTokens({ poolSize: 2, length: 1, keys: 'learnable', topK: 1, seedKeysAfter: 4, reseatAfter: 100, pullCoefficient: 0 }, seed);
    t.build(2);
    t.variables()[1].assign(tf.tensor2d([2, 0, 0, 1], [2, 2]));
    return t;
  };
  const seatCalls = [
    [
      [1, 0],
      [0, 0],
    ],
    [
      [1, 0.2],
      [-1, 0],
    ],
    [
      [-1, 0.2],
      [5, 5],
    ],
  ];
  const seatedKeys = [1.5 * 0.9951333, 1.5 * 0.0985376];

  it('seats the keys on a spherical k-means of the first seedKeysAfter training queries, never in evaluation', () => {
    const t = seatPool();
    expect(call(t, seatCalls[0], true)).toEqual([0, 0]);
    expect(call(t, seatCalls[1], true)).toEqual([0, 1]);
    // Evaluation neither keeps queries nor seats.
    call(t, seatCalls[2], false);
    call(t, seatCalls[2], false);
    expect(Array.from(t.variables()[1].dataSync())).toEqual([2, 0, 0, 1]);
    const picks = call(t, seatCalls[2], true);
    const k = Array.from(t.variables()[1].dataSync());
    const negative = k[0] < 0 ? 0 : 1;
    expectClose([Math.abs(k[0]), k[1], Math.abs(k[2]), k[3]], [seatedKeys[0], seatedKeys[1], seatedKeys[0], seatedKeys[1]]);
    expect(Math.sign(k[0])).toBe(-Math.sign(k[2]));
    expect(picks).toEqual([negative, 1 - negative]);
    // The usage counts start again at the seating (4 examples in).
    expect(t.usage().seats.map((x) => x.since)).toEqual([4, 4]);
    // Seated once: later training queries leave the keys alone.
    call(t, [[0, 1], [0, -1]], true);
    call(t, [[0, 1], [0, -1]], true);
    expect(Array.from(t.variables()[1].dataSync())).toEqual(k);
    t.dispose();
  });

  it('the queries kept for seating are saved with the pool, so a resumed run seats like an uninterrupted one', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pool-seat-'));
    const a = seatPool();
    call(a, seatCalls[0], true);
    call(a, seatCalls[1], true);
    await a.save(dir);
    const saved = JSON.parse(await fsp.readFile(path.join(dir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    expect(saved).toMatchObject({ seedKeysAfter: 4, keysSeeded: false });
    // The resumed run: same seed (the k-means draws come from it), keys loaded from the file.
    const b = seatPool(5);
    b.variables()[1].assign(tf.tensor2d([9, 9, 9, 9], [2, 2]));
    await b.load(dir);
    expect(call(b, seatCalls[2], true)).toEqual(call(a, seatCalls[2], true));
    expect(Array.from(b.variables()[1].dataSync())).toEqual(Array.from(a.variables()[1].dataSync()));
    // Saved after seating: nothing kept, and a resumed run does not seat again.
    await b.save(dir);
    expect(JSON.parse(await fsp.readFile(path.join(dir, CONFIG_FILE), 'utf8'))).toMatchObject({ keysSeeded: true });
    const c = seatPool(7);
    await c.load(dir);
    call(c, seatCalls[0], true);
    call(c, seatCalls[1], true);
    call(c, seatCalls[2], true);
    expect(Array.from(c.variables()[1].dataSync())).toEqual(Array.from(b.variables()[1].dataSync()));
    await fsp.writeFile(path.join(dir, CONFIG_FILE), JSON.stringify({ ...saved, keysSeeded: 'yes' }));
    await expect(c.load(dir)).rejects.toThrow(`keysSeeded is not true or false`);
    [a, b, c].forEach((x) => x.dispose());
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('a pool saved with one query refuses to load under the other', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pool-query-'));
    const t = new PromptPoolTokens({ poolSize: 3, length: 2, query: 'preference-direction' }, 3);
    t.build(4);
    await t.save(dir);
    const same = new PromptPoolTokens({ poolSize: 3, length: 2, query: 'preference-direction' }, 4);
    await same.load(dir);
    expect(Array.from(same.variables()[0].dataSync())).toEqual(Array.from(t.variables()[0].dataSync()));
    const other = new PromptPoolTokens({ poolSize: 3, length: 2 }, 4);
    await expect(other.load(dir)).rejects.toThrow(`was trained with query 'preference-direction' but this run is configured with query 'history-mean'`);
    // A file from before the option existed was picked by the history mean.
    const cfg = path.join(dir, CONFIG_FILE);
    const written = JSON.parse(await fsp.readFile(cfg, 'utf8')) as Record<string, unknown>;
    delete written.query;
    await fsp.writeFile(cfg, JSON.stringify(written));
    await other.load(dir);
    await expect(same.load(dir)).rejects.toThrow(`was trained with query 'history-mean'`);
    [t, same, other].forEach((x) => x.dispose());
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('seeded init, and clear errors for bad options', () => {
    const a = new PromptPoolTokens({ poolSize: 3, length: 2 }, 9);
    const b = new PromptPoolTokens({ poolSize: 3, length: 2 }, 9);
    a.build(4);
    b.build(4);
    expect(a.variables()[0].shape).toEqual([3, 2, 4]);
    expect(Array.from(a.variables()[0].dataSync())).toEqual(Array.from(b.variables()[0].dataSync()));
    expect(Array.from(a.variables()[0].dataSync()).every((v) => v >= 0 && v < 1)).toBe(true);
    a.dispose();
    b.dispose();
    // Learnable keys: the prompts' init ('same') or their own.
    const same = new PromptPoolTokens({ poolSize: 3, length: 2, keys: 'learnable' }, 9);
    const own = new PromptPoolTokens({ poolSize: 3, length: 2, keys: 'learnable', keyInit: 'normal', std: 0.02 }, 9);
    same.build(400);
    own.build(400);
    const sameKeys = Array.from(same.variables()[1].dataSync());
    const ownKeys = Array.from(own.variables()[1].dataSync());
    expect(sameKeys.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Array.from(own.variables()[0].dataSync())).toEqual(Array.from(same.variables()[0].dataSync()));
    const sd = Math.sqrt(ownKeys.reduce((acc, v) => acc + v * v, 0) / ownKeys.length);
    expect(sd).toBeGreaterThan(0.018);
    expect(sd).toBeLessThan(0.022);
    same.dispose();
    own.dispose();
    expect(() => new PromptPoolTokens({ reseatAfter: 8 }, 1)).toThrow("reseatAfter needs keys 'learnable'");
    expect(() => new PromptPoolTokens({ keys: 'learnable', reseatAfter: 1.5 }, 1)).toThrow('reseatAfter must be an integer >= 0, got 1.5');
    expect(() => new PromptPoolTokens({ keys: 'learnable', reseatAfter: 4, reseatBelow: 2 }, 1)).toThrow('reseatBelow must be in [0, 1], got 2');
    expect(() => new PromptPoolTokens({ seedKeysAfter: 8 }, 1)).toThrow("seedKeysAfter needs keys 'learnable'");
    expect(() => new PromptPoolTokens({ keys: 'learnable', seedKeysAfter: -1 }, 1)).toThrow('seedKeysAfter must be an integer >= 0, got -1');
    expect(() => new PromptPoolTokens({ keys: 'learnable', poolSize: 4, seedKeysAfter: 3 }, 1)).toThrow('seedKeysAfter 3 queries cannot seat 4 keys');
    expect(() => new PromptPoolTokens({ poolSize: 2, topK: 3 }, 1)).toThrow("preference tokens 'prompt-pool': topK 3 is larger than the pool (2 prompts)");
    expect(() => new PromptPoolTokens({ pullCoefficient: -1 }, 1)).toThrow(/pullCoefficient must be a finite number >= 0, got -1/);
  });
});
