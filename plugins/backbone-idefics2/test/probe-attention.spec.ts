/**
 * targetToPrefixAttention on a hand-built attention tensor whose every entry says where it is, so
 * the test can tell exactly which rows, columns and heads were averaged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { targetToPrefixAttention } from '../src/probe/attention';

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
});

// [B=2, H=3, T=9, T=9]; value = 1000 b + 100 h + 10 q + k (q = query row, k = key column)
const B = 2;
const H = 3;
const T = 9;
function tensor(): tf.Tensor4D {
  const data = new Float32Array(B * H * T * T);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) data[((b * H + h) * T + q) * T + k] = 1000 * b + 100 * h + 10 * q + k;
  return tf.tensor4d(data, [B, H, T, T]);
}

describe('targetToPrefixAttention', () => {
  it('averages the target-image rows (queries) over the prefix columns (keys), over all heads', () => {
    const probs = tensor();
    // prefix = keys 0..2; sequence 1's target image at rows 5..7 (3 rows)
    const [v] = targetToPrefixAttention(probs, [{ batchIndex: 1, queryStart: 5, queryCount: 3 }], 3);
    // mean over h in {0,1,2}: 100; mean over q in {5,6,7}: 60; column p: 1000 + 100 + 60 + p
    expect(Array.from(v)).toEqual([1160, 1161, 1162]);
    probs.dispose();
  });

  it('selects heads and handles several sequences with their own rows', () => {
    const probs = tensor();
    const out = targetToPrefixAttention(
      probs,
      [
        { batchIndex: 0, queryStart: 4, queryCount: 1 },
        { batchIndex: 1, queryStart: 7, queryCount: 2 },
      ],
      2,
      [2, 0],
    );
    // heads {0, 2}: mean 100. seq 0: row 4 -> 0 + 100 + 40 + p; seq 1: rows 7, 8 -> 1000 + 100 + 75 + p
    expect(Array.from(out[0])).toEqual([140, 141]);
    expect(Array.from(out[1])).toEqual([1175, 1176]);
    probs.dispose();
  });

  it('refuses rows that overlap the prefix or leave the sequence, and unknown heads', () => {
    const probs = tensor();
    expect(() => targetToPrefixAttention(probs, [{ batchIndex: 0, queryStart: 2, queryCount: 2 }], 3)).toThrow(/not inside \[3, 9\)/);
    expect(() => targetToPrefixAttention(probs, [{ batchIndex: 0, queryStart: 8, queryCount: 2 }], 3)).toThrow(/not inside/);
    expect(() => targetToPrefixAttention(probs, [{ batchIndex: 2, queryStart: 4, queryCount: 1 }], 3)).toThrow(/outside the batch/);
    expect(() => targetToPrefixAttention(probs, [{ batchIndex: 0, queryStart: 4, queryCount: 1 }], 3, [3])).toThrow(/head 3 is outside/);
    probs.dispose();
  });
});
