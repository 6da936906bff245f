import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initRuntime, pinnedBackend } from '../src';

/**
 * The plain JS cpu backend is tfjs' reference implementation: every gradient computed on the
 * backend under test must equal it. That is the patched wasm backend (its kernel fixes), or the
 * backend pinned by USERPREF_BACKEND (CI runs this file once per backend).
 */
const underTest = pinnedBackend() ?? 'wasm';
type Fn = (xs: tf.Tensor[]) => tf.Scalar;

function gradsOn(backend: string, fn: Fn, inputs: () => tf.Tensor[]): number[][] {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs();
    const g = tf.grads((...a: tf.Tensor[]) => fn(a))(xs);
    return g.map((t) => Array.from(t.dataSync()));
  });
}

function seeded(shape: number[], seed: number) {
  return () => tf.randomNormal(shape, 0, 1, 'float32', seed);
}

function expectClose(a: number[][], b: number[][], tol = 1e-4) {
  expect(a.length).toBe(b.length);
  a.forEach((arr, i) => {
    expect(arr.length).toBe(b[i].length);
    let maxErr = 0;
    let maxRef = 0;
    arr.forEach((v, j) => {
      maxErr = Math.max(maxErr, Math.abs(v - b[i][j]));
      maxRef = Math.max(maxRef, Math.abs(b[i][j]));
    });
    expect(maxErr).toBeLessThanOrEqual(tol * Math.max(1, maxRef));
  });
}

// On the cpu backend itself there is nothing to compare against.
const describeBackend = underTest === 'cpu' ? describe.skip : describe;

describeBackend(`${underTest} backend gradients match the cpu reference`, () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu', prefer: underTest });
    await tf.setBackend('cpu');
    await tf.ready();
  });

  function compare(fn: Fn, make: Array<() => tf.Tensor>) {
    const inputs = () => make.map((m) => m());
    const ref = gradsOn('cpu', fn, inputs);
    const got = gradsOn(underTest, fn, inputs);
    expectClose(got, ref);
  }

  const weights = seeded([5, 7], 3);
  it.each([
    [false, false, [5, 6], [6, 7]],
    [true, false, [6, 5], [6, 7]],
    [false, true, [5, 6], [7, 6]],
    [true, true, [6, 5], [7, 6]],
  ])('matMul transposeA=%s transposeB=%s', (ta, tb, sa, sb) => {
    compare(
      ([a, b]) => tf.sum(tf.mul(tf.matMul(a, b, ta as boolean, tb as boolean), weights())),
      [seeded(sa as number[], 1), seeded(sb as number[], 2)],
    );
  });

  it('batched matMul with a broadcast operand', () => {
    compare(([a, b]) => tf.sum(tf.square(tf.matMul(a, b))), [seeded([2, 3, 4, 5], 1), seeded([1, 5, 6], 2)]);
  });

  it('gather (embedding lookup with repeated ids)', () => {
    const ids = () => tf.tensor1d([0, 3, 3, 1, 0, 5], 'int32');
    compare(([table]) => tf.sum(tf.mul(tf.gather(table, ids()), seeded([6, 4], 9)())), [seeded([6, 4], 1)]);
  });

  it('softmax', () => {
    compare(([x]) => tf.sum(tf.mul(tf.softmax(x), seeded([3, 8], 5)())), [seeded([3, 8], 1)]);
  });

  it('RMS norm', () => {
    compare(
      ([x, w]) => {
        const rms = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6));
        return tf.sum(tf.mul(tf.mul(tf.mul(x, rms), w), seeded([4, 16], 7)()));
      },
      [seeded([4, 16], 1), seeded([16], 2)],
    );
  });

  it('layer norm', () => {
    compare(
      ([x, w, b]) => {
        const { mean, variance } = tf.moments(x, -1, true);
        const y = tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-6))), w), b);
        return tf.sum(tf.mul(y, seeded([4, 16], 7)()));
      },
      [seeded([4, 16], 1), seeded([16], 2), seeded([16], 3)],
    );
  });
});
