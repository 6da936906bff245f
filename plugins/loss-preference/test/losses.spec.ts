import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { BasePreferenceLoss, BradleyTerryPreferenceLoss, ContrastivePreferenceLoss } from '../src';
import type { PreferenceLoss, ReadoutTokens } from '@userpref/core';

/*
 * Hand-worked numbers. A 3-token vocabulary; the readout ids are deliberately not 0/1 in order:
 * "+" is token 2 and "-" is token 0 (token 1 is any other word).
 *
 * Example 1:
 *   z(pos) = [0, ln 2, ln 3]   exp -> [1, 2, 3], sum 6, softmax = [1/6, 1/3, 1/2]
 *   z(neg) = [0, ln 3, ln 4]   exp -> [1, 3, 4], sum 8, softmax = [1/8, 3/8, 1/2]
 * Example 2:
 *   z(pos) = [ln 2, 0, 0]      exp -> [2, 1, 1], sum 4, softmax = [1/2, 1/4, 1/4]
 *   z(neg) = [0, 0, 0]         softmax = [1/3, 1/3, 1/3]
 *
 * CE(z, t) = log sum_j exp z_j - z_t,   dCE/dz = softmax(z) - onehot(t).
 *
 * BASE, L = (CE(z(neg), "-") + CE(z(pos), "+")) / 2
 *   ex1: CE(pos, 2) = -ln(3/6) = ln 2;  CE(neg, 0) = -ln(1/8) = ln 8 = 3 ln 2;  L1 = 2 ln 2
 *        dL1/dz(pos) = 1/2 [1/6, 1/3, 1/2 - 1] = [1/12, 1/6, -1/4]
 *        dL1/dz(neg) = 1/2 [1/8 - 1, 3/8, 1/2] = [-7/16, 3/16, 1/4]
 *   ex2: CE(pos, 2) = -ln(1/4) = ln 4;  CE(neg, 0) = -ln(1/3) = ln 3;  L2 = ln(12) / 2
 *        dL2/dz(pos) = 1/2 [1/2, 1/4, -3/4] = [1/4, 1/8, -3/8]
 *        dL2/dz(neg) = 1/2 [-2/3, 1/3, 1/3] = [-1/3, 1/6, 1/6]
 *   batch of 2: mean, so value (L1 + L2)/2 and every gradient row halves.
 *
 * CONTRASTIVE, with a = z(pos)[+], b = z(neg)[+], c = z(pos)[-], d = z(neg)[-]:
 *   L = -ln(e^a / (e^a + e^b)) - ln(e^d / (e^c + e^d))
 *   dL/da = -(1 - sa), dL/db = 1 - sa with sa = e^a/(e^a+e^b);  dL/dc = e^c/(e^c+e^d), dL/dd = -dL/dc
 *   ex1: a = ln 3, b = ln 4: sa = 3/7, first term ln(7/3); c = d = 0: second term ln 2.
 *        L1 = ln(7/3) + ln 2 = ln(14/3);  dz(pos) = [1/2, 0, -4/7],  dz(neg) = [-1/2, 0, 4/7]
 *   ex2: a = b = 0: first term ln 2, sa = 1/2; c = ln 2, d = 0: e^d/(e^c+e^d) = 1/3, second term ln 3.
 *        L2 = ln 6;  dz(pos) = [2/3, 0, -1/2],  dz(neg) = [-2/3, 0, 1/2]
 *   with temperature T = 2, ex1: ln(1 + e^{(b-a)/2}) + ln(1 + e^{(c-d)/2}) = ln(1 + sqrt(4/3)) + ln 2
 *
 * BRADLEY-TERRY, s = z[+] - z[-], D = s(liked) - s(disliked), L = -ln sigmoid(D) = ln(1 + e^-D):
 *   dL/dD = -(1 - sigmoid(D)); dD/dz(pos) = [-1, 0, +1]; dD/dz(neg) = [+1, 0, -1]
 *   ex1: s(liked) = ln 3 - 0, s(disliked) = ln 4 - 0, D = ln(3/4): L1 = ln(1 + 4/3) = ln(7/3),
 *        sigmoid(D) = 3/7, dL/dD = -4/7: dz(pos) = [4/7, 0, -4/7],  dz(neg) = [-4/7, 0, 4/7]
 *   ex2: s(liked) = 0 - ln 2, s(disliked) = 0, D = -ln 2: L2 = ln(1 + 2) = ln 3,
 *        sigmoid(D) = 1/3, dL/dD = -2/3: dz(pos) = [2/3, 0, -2/3],  dz(neg) = [-2/3, 0, 2/3]
 */
const LN2 = Math.log(2);
const LN3 = Math.log(3);
const LN4 = Math.log(4);
const readout: ReadoutTokens = { positive: 2, negative: 0 };

const ex1 = { pos: [0, LN2, LN3], neg: [0, LN3, LN4] };
const ex2 = { pos: [LN2, 0, 0], neg: [0, 0, 0] };

interface Expected {
  value: number;
  dPos: number[];
  dNeg: number[];
}

const hand: Record<string, [Expected, Expected]> = {
  base: [
    { value: 2 * LN2, dPos: [1 / 12, 1 / 6, -1 / 4], dNeg: [-7 / 16, 3 / 16, 1 / 4] },
    { value: Math.log(12) / 2, dPos: [1 / 4, 1 / 8, -3 / 8], dNeg: [-1 / 3, 1 / 6, 1 / 6] },
  ],
  contrastive: [
    { value: Math.log(14 / 3), dPos: [1 / 2, 0, -4 / 7], dNeg: [-1 / 2, 0, 4 / 7] },
    { value: Math.log(6), dPos: [2 / 3, 0, -1 / 2], dNeg: [-2 / 3, 0, 1 / 2] },
  ],
  'bradley-terry': [
    { value: Math.log(7 / 3), dPos: [4 / 7, 0, -4 / 7], dNeg: [-4 / 7, 0, 4 / 7] },
    { value: LN3, dPos: [2 / 3, 0, -2 / 3], dNeg: [-2 / 3, 0, 2 / 3] },
  ],
};

const losses: Record<string, () => PreferenceLoss> = {
  base: () => new BasePreferenceLoss(),
  contrastive: () => new ContrastivePreferenceLoss(),
  'bradley-terry': () => new BradleyTerryPreferenceLoss(),
};

function valueAndGrads(loss: PreferenceLoss, pos: number[][], neg: number[][], tokens: ReadoutTokens = readout) {
  return tf.tidy(() => {
    const liked = tf.tensor2d(pos);
    const disliked = tf.tensor2d(neg);
    const f = (l: tf.Tensor, d: tf.Tensor) => loss.compute({ liked: l as tf.Tensor2D, disliked: d as tf.Tensor2D }, tokens);
    const { value, grads } = tf.valueAndGrads(f)([liked, disliked]);
    return { value: value.dataSync()[0], dPos: grads[0].arraySync() as number[][], dNeg: grads[1].arraySync() as number[][] };
  });
}

function expectRowsClose(got: number[][], want: number[][]) {
  expect(got.length).toBe(want.length);
  got.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i][j], 6)));
}

describe('preference losses against hand-worked values and gradients', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  describe.each(Object.keys(hand))('%s', (name) => {
    const [h1, h2] = hand[name];

    it('batch of 1: value and d/dlogits', () => {
      const r = valueAndGrads(losses[name](), [ex1.pos], [ex1.neg]);
      expect(r.value).toBeCloseTo(h1.value, 6);
      expectRowsClose(r.dPos, [h1.dPos]);
      expectRowsClose(r.dNeg, [h1.dNeg]);
    });

    it('batch of 2: batch mean of the value, each gradient row halved', () => {
      const r = valueAndGrads(losses[name](), [ex1.pos, ex2.pos], [ex1.neg, ex2.neg]);
      expect(r.value).toBeCloseTo((h1.value + h2.value) / 2, 6);
      expectRowsClose(r.dPos, [h1.dPos.map((v) => v / 2), h2.dPos.map((v) => v / 2)]);
      expectRowsClose(r.dNeg, [h1.dNeg.map((v) => v / 2), h2.dNeg.map((v) => v / 2)]);
    });
  });

  it('contrastive temperature 2 divides both logit pairs (hand value)', () => {
    const r = valueAndGrads(new ContrastivePreferenceLoss({ temperature: 2 }), [ex1.pos], [ex1.neg]);
    expect(r.value).toBeCloseTo(Math.log(1 + Math.sqrt(4 / 3)) + LN2, 6);
  });

  it('reads the token ids it is given: swapping "+" and "-" swaps the roles', () => {
    // Base with "+" = 0, "-" = 2 on ex1: CE(pos, 0) = -ln(1/6) = ln 6, CE(neg, 2) = -ln(1/2) = ln 2.
    const r = valueAndGrads(new BasePreferenceLoss(), [ex1.pos], [ex1.neg], { positive: 0, negative: 2 });
    expect(r.value).toBeCloseTo((Math.log(6) + LN2) / 2, 6);
  });

  it('stays finite and exact for logits of magnitude 1e4 (logSumExp)', () => {
    // CE([1e4, 0, -1e4], "+" = 2) = 2e4 (up to e^-1e4); the other row's CE is ~0.
    const pos = [[1e4, 0, -1e4]];
    const neg = [[1e4, 0, -1e4]];
    const base = valueAndGrads(new BasePreferenceLoss(), pos, neg);
    expect(base.value).toBeCloseTo(1e4, 2);
    expectRowsClose(base.dPos, [[0.5, 0, -0.5]]);
    // Identical rows: each contrastive term is ln 2; BT's D = 0 gives ln 2.
    expect(valueAndGrads(new ContrastivePreferenceLoss(), pos, neg).value).toBeCloseTo(2 * LN2, 6);
    const bt = valueAndGrads(new BradleyTerryPreferenceLoss(), [[-3e4, 0, 3e4]], [[3e4, 0, -3e4]]);
    // D = 6e4 - (-6e4) = 1.2e5: L = ln(1 + e^-1.2e5) = 0 and its gradient 0, no NaN.
    expect(bt.value).toBe(0);
    expectRowsClose(bt.dPos, [[0, 0, 0]]);
    const btBad = valueAndGrads(new BradleyTerryPreferenceLoss(), [[3e4, 0, -3e4]], [[-3e4, 0, 3e4]]);
    expect(btBad.value).toBeCloseTo(1.2e5, 0);
    expectRowsClose(btBad.dPos, [[1, 0, -1]]);
  });

  it('rejects mismatched shapes and readout ids outside the vocabulary, naming them', () => {
    const liked = tf.zeros([2, 3]) as tf.Tensor2D;
    const disliked = tf.zeros([2, 4]) as tf.Tensor2D;
    expect(() => new BasePreferenceLoss().compute({ liked, disliked }, readout)).toThrow(
      "loss 'base': liked logits [2,3] and disliked logits [2,4] differ in shape",
    );
    expect(() => new ContrastivePreferenceLoss().compute({ liked, disliked: liked }, { positive: 3, negative: 0 })).toThrow(
      "loss 'contrastive': readout token positive=3 is outside the vocabulary [0, 3)",
    );
    expect(() => new BradleyTerryPreferenceLoss().compute({ liked, disliked: liked }, { positive: 1, negative: 1 })).toThrow(/same id 1/);
    expect(() => new ContrastivePreferenceLoss({ temperature: 0 })).toThrow(/temperature must be a finite number > 0/);
    tf.dispose([liked, disliked]);
  });

  it('leaks no tensors', () => {
    const liked = tf.tensor2d([ex1.pos]);
    const disliked = tf.tensor2d([ex1.neg]);
    for (const make of Object.values(losses)) {
      const before = tf.memory().numTensors;
      const v = make().compute({ liked, disliked }, readout);
      expect(tf.memory().numTensors).toBe(before + 1);
      v.dispose();
    }
    tf.dispose([liked, disliked]);
  });
});
