/**
 * AdamW with PyTorch's semantics (torch.optim.AdamW, what the paper's HF Trainer uses): decoupled
 * weight decay p <- p - lr*wd*p, bias-corrected moments, and HF's linear decay schedule without
 * warm-up (lr_t = lr * (T - t) / T for the t-th update, t from 0). State lives in tf.Variables so
 * a checkpoint can save and restore it exactly.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamWOptions {
  lr: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Total optimizer updates for the linear schedule; 0 or undefined = constant lr. */
  totalSteps?: number;
}

export interface AdamWState {
  step: number;
  /** Per variable name: first and second moments. */
  moments: Record<string, { m: Float32Array; v: Float32Array; shape: number[] }>;
}

export class AdamW {
  private stepCount = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(private readonly options: AdamWOptions) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
  }

  get step(): number {
    return this.stepCount;
  }

  /** Learning rate the next update uses. */
  currentLr(): number {
    const T = this.options.totalSteps ?? 0;
    if (!T) return this.options.lr;
    return this.options.lr * Math.max(0, (T - this.stepCount) / T);
  }

  /**
   * One update of `variables` with `grads`, both keyed by a stable parameter key (a variable's
   * own name when given bare). Grads are not disposed.
   */
  apply(variables: ReadonlyArray<tf.Variable | { v: tf.Variable; key: string }>, grads: Record<string, tf.Tensor>): void {
    const lr = this.currentLr();
    this.stepCount += 1;
    const t = this.stepCount;
    const bc1 = 1 - Math.pow(this.beta1, t);
    const bc2 = 1 - Math.pow(this.beta2, t);
    const wd = this.options.weightDecay;
    tf.tidy(() => {
      for (const item of variables) {
        const p = item instanceof tf.Variable ? item : item.v;
        const key = item instanceof tf.Variable ? item.name : item.key;
        const g = grads[key];
        if (!g) continue;
        const m = this.slot(this.m, key, p);
        const v = this.slot(this.v, key, p);
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.eps);
        const decayed = wd ? tf.mul(p, 1 - lr * wd) : p;
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / bc1)));
      }
    });
  }

  private slot(map: Map<string, tf.Variable>, key: string, p: tf.Variable): tf.Variable {
    let s = map.get(key);
    if (!s) {
      s = tf.variable(tf.zerosLike(p), false);
      map.set(key, s);
    }
    return s;
  }

  state(): AdamWState {
    const moments: AdamWState['moments'] = {};
    for (const [name, m] of this.m) {
      const v = this.v.get(name)!;
      moments[name] = { m: m.dataSync() as Float32Array, v: v.dataSync() as Float32Array, shape: m.shape };
    }
    return { step: this.stepCount, moments };
  }

  loadState(state: AdamWState): void {
    this.stepCount = state.step;
    for (const [name, { m, v, shape }] of Object.entries(state.moments)) {
      this.m.get(name)?.dispose();
      this.v.get(name)?.dispose();
      this.m.set(name, tf.variable(tf.tensor(m, shape), false));
      this.v.set(name, tf.variable(tf.tensor(v, shape), false));
    }
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}
