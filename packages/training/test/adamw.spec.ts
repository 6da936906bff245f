import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { AdamW } from '../src/adamw';

describe('AdamW', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it('matches PyTorch AdamW worked by hand for two steps with linear decay', () => {
    // p0 = 1, g = 0.5 then -0.25, lr = 0.1, wd = 0.01, betas (0.9, 0.999), eps 1e-8, T = 4.
    // step 1: lr1 = 0.1 * 4/4 = 0.1; p <- 1*(1 - 0.1*0.01) = 0.999
    //   m = 0.05, v = 0.00025; mhat = 0.5, vhat = 0.25 -> p = 0.999 - 0.1 * 0.5/(0.5+1e-8) = 0.899
    // step 2: lr2 = 0.1 * 3/4 = 0.075; p <- 0.899 * (1 - 0.075*0.01) = 0.89832575
    //   m = 0.9*0.05 - 0.1*0.25 = 0.02; v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
    //   mhat = 0.02/0.19 = 0.105263158; vhat = 0.00031225/0.001999 = 0.156203102 -> sqrt 0.395225382
    //   p = 0.89832575 - 0.075 * 0.105263158/0.395225392 = 0.89832575 - 0.019975... = 0.878350
    const p = tf.variable(tf.scalar(1), true, 'p');
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.01, totalSteps: 4 });
    opt.apply([p], { p: tf.scalar(0.5) });
    expect(p.dataSync()[0]).toBeCloseTo(0.899, 6);
    expect(opt.currentLr()).toBeCloseTo(0.075, 12);
    opt.apply([p], { p: tf.scalar(-0.25) });
    const expected = 0.89832575 - (0.075 * (0.02 / 0.19)) / (Math.sqrt(0.00031225 / (1 - 0.999 ** 2)) + 1e-8);
    expect(p.dataSync()[0]).toBeCloseTo(expected, 6);
  });

  it('restores its state exactly', () => {
    const a = tf.variable(tf.tensor1d([1, 2]), true, 'a');
    const b = tf.variable(tf.tensor1d([1, 2]), true, 'b');
    const o1 = new AdamW({ lr: 0.01, weightDecay: 0 });
    o1.apply([a], { a: tf.tensor1d([0.3, -0.1]) });
    const o2 = new AdamW({ lr: 0.01, weightDecay: 0 });
    b.assign(a);
    const st = o1.state();
    o2.loadState({ step: st.step, moments: { b: st.moments.a } });
    o1.apply([a], { a: tf.tensor1d([0.2, 0.2]) });
    o2.apply([b], { b: tf.tensor1d([0.2, 0.2]) });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
  });
});
