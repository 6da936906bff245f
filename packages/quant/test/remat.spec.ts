/**
 * Activation checkpointing: gradients through checkpointed blocks equal the unchecked ones, the
 * tape keeps only the blocks' inputs (measured live tensor bytes after the forward), and nothing
 * leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { checkpointed, checkpointedMulti, PackedMatrix } from '../src';

const rel = (a: Float32Array, b: Float32Array) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
};

describe('checkpointed()', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  const N = 96;
  const d = 48;
  const hidden = 192;
  const blocks = 3;

  function setup() {
    const frozen = Array.from({ length: blocks }, (_, i) => ({
      w1: tf.randomNormal([d, hidden], 0, 0.2, 'float32', 10 + i) as tf.Tensor2D,
      w2: tf.randomNormal([hidden, d], 0, 0.2, 'float32', 20 + i) as tf.Tensor2D,
    }));
    const lora = Array.from({ length: blocks }, (_, i) => ({
      a: tf.variable(tf.randomNormal([d, 4], 0, 0.3, 'float32', 30 + i) as tf.Tensor2D, true),
      b: tf.variable(tf.randomNormal([4, hidden], 0, 0.3, 'float32', 40 + i) as tf.Tensor2D, true),
    }));
    const packed = frozen.map((f) => ({ w1: PackedMatrix.quantizeInOut(f.w1.dataSync() as Float32Array, d, hidden, { bits: 4 }), w2: f.w2 }));
    return { frozen, lora, packed };
  }

  /** A residual block with a LoRA on its first matMul and a dropout mask from a seed. */
  function block(x: tf.Tensor2D, i: number, s: ReturnType<typeof setup>, usePacked: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const w1 = usePacked ? s.packed[i].w1.materialize() : s.frozen[i].w1;
      const mask = tf.cast(tf.greater(tf.randomUniform([N, d], 0, 1, 'float32', 100 + i), 0.1), 'float32');
      const h = tf.add(tf.matMul(x, w1), tf.matMul(tf.matMul(tf.mul(x, mask), s.lora[i].a), s.lora[i].b));
      return tf.add(x, tf.matMul(tf.mul(h, tf.sigmoid(h)), s.frozen[i].w2)) as tf.Tensor2D;
    });
  }

  function run(s: ReturnType<typeof setup>, x: tf.Tensor2D, ckpt: boolean, usePacked: boolean) {
    let afterForward = 0;
    const vars = s.lora.flatMap((l) => [l.a, l.b]);
    const { value, grads } = tf.variableGrads(() => {
      let h = x;
      for (let i = 0; i < blocks; i++) {
        const params = [s.lora[i].a, s.lora[i].b];
        const f = (inp: tf.Tensor2D) => block(inp, i, s, usePacked);
        h = ckpt ? checkpointed(f, h, params) : f(h);
      }
      const loss = tf.sum(tf.square(h)) as tf.Scalar;
      afterForward = tf.memory().numBytes;
      return loss;
    }, vars);
    const out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync() as Float32Array), afterForward };
    value.dispose();
    tf.dispose(Object.values(grads));
    return out;
  }

  it('gives the unchecked gradients, keeps less after the forward, leaks nothing', () => {
    const s = setup();
    const x = tf.randomNormal([N, d], 0, 1, 'float32', 3) as tf.Tensor2D;
    for (const usePacked of [false, true]) {
      const base = tf.memory().numBytes;
      const plain = run(s, x, false, usePacked);
      const tensors = tf.memory().numTensors;
      const ck = run(s, x, true, usePacked);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(ck.loss).toBeCloseTo(plain.loss, 4);
      for (let i = 0; i < plain.grads.length; i++) expect(rel(ck.grads[i], plain.grads[i])).toBeLessThan(1e-6);
      // Unchecked: every block's intermediates ([N, hidden] several times) are on the tape;
      // checkpointed: the block inputs [N, d] only.
      expect(ck.afterForward - base).toBeLessThan((plain.afterForward - base) / 4);
    }
  });

  it('is a plain call when no gradient is recorded', () => {
    const s = setup();
    const x = tf.randomNormal([N, d], 0, 1, 'float32', 4) as tf.Tensor2D;
    const a = checkpointed((inp: tf.Tensor2D) => block(inp, 0, s, false), x, [s.lora[0].a, s.lora[0].b]);
    const b = block(x, 0, s, false);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
  });

  it('checkpointedMulti: a block of two inputs gives both their gradients', () => {
    const s = setup();
    const x = tf.variable(tf.randomNormal([N, d], 0, 1, 'float32', 5) as tf.Tensor2D, true);
    const c = tf.variable(tf.randomNormal([N, d], 0, 1, 'float32', 6) as tf.Tensor2D, true);
    const vars = [x, c, s.lora[0].a, s.lora[0].b];
    const f = (xs: tf.Tensor[]) => tf.tidy(() => tf.add(block(xs[0] as tf.Tensor2D, 0, s, false), tf.mul(xs[1], tf.sigmoid(xs[0])))) as tf.Tensor2D;
    const run = (ck: boolean) => {
      const { value, grads } = tf.variableGrads(() => {
        const a = tf.mul(x, 1.5) as tf.Tensor2D;
        const b = tf.sin(c) as tf.Tensor2D;
        const out = ck ? checkpointedMulti(f, [a, b], [s.lora[0].a, s.lora[0].b]) : f([a, b]);
        return tf.sum(tf.square(out)) as tf.Scalar;
      }, vars);
      value.dispose();
      const g = vars.map((v) => grads[v.name].dataSync() as Float32Array);
      tf.dispose(Object.values(grads));
      return g;
    };
    const plain = run(false);
    const ck = run(true);
    for (let i = 0; i < vars.length; i++) expect(rel(ck[i], plain[i])).toBeLessThan(1e-6);
  });
});
