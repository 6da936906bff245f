/**
 * A frozen linear layer in the layout the wasm backend multiplies fastest: the weight is stored
 * [in, out] (transposed once at load), and layers that read the same input are fused column-wise
 * (q|k|v, gate|up, k|v) so one matMul serves them all. Each fused part keeps its Hugging Face module
 * name, which is what LoRA targets and PEFT adapter files are keyed by; a LoRA adapter attaches to
 * a part and adds scale * dropout(x) A^T B^T to that part's columns.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LoraModule } from '../lora/lora';

export interface LinearPart {
  /** Hugging Face module name, e.g. `model.text_model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  readonly out: number;
  lora: LoraModule | null;
}

/** Per-call settings: dropout only in training, with masks derived from a seed. */
export interface RunContext {
  readonly training: boolean;
  readonly seed?: number;
}

export const EVAL: RunContext = { training: false };

export class Linear {
  constructor(
    /** [in, out_total] */
    public w: tf.Tensor2D,
    /** [out_total] or null */
    public b: tf.Tensor1D | null,
    readonly parts: LinearPart[],
  ) {
    const total = parts.reduce((s, p) => s + p.out, 0);
    if (w.shape[1] !== total) throw new Error(`Linear ${parts.map((p) => p.name).join('|')}: weight has ${w.shape[1]} columns, parts need ${total}`);
  }

  get inFeatures(): number {
    return this.w.shape[0];
  }

  /**
   * x [N, in] -> one [N, out_i] per part (LoRA deltas added). Outside training (no dropout) the
   * deltas are folded into the weight first, x (W + scale A^T B^T): one product of x instead of
   * three per adapted part, the [in, out] sum costing less than one [N, r] product for long inputs.
   * Gradients w.r.t. A and B still flow (through weightDelta).
   */
  apply(x: tf.Tensor2D, ctx: RunContext): tf.Tensor2D[] {
    if (!ctx.training && x.shape[0] > this.inFeatures && this.parts.some((p) => p.lora)) return this.applyFolded(x);
    let y = tf.matMul(x, this.w);
    if (this.b) y = tf.add(y, this.b);
    const outs = this.parts.length === 1 ? [y] : tf.split(y, this.parts.map((p) => p.out), 1);
    return outs.map((o, i) => {
      const lora = this.parts[i].lora;
      return (lora ? tf.add(o, lora.delta(x, ctx)) : o) as tf.Tensor2D;
    });
  }

  private applyFolded(x: tf.Tensor2D): tf.Tensor2D[] {
    const cols = this.parts.length === 1 ? [this.w] : tf.split(this.w, this.parts.map((p) => p.out), 1);
    const w = tf.concat(cols.map((c, i) => (this.parts[i].lora ? tf.add(c, this.parts[i].lora!.weightDelta()) : c)), 1) as tf.Tensor2D;
    let y = tf.matMul(x, w);
    if (this.b) y = tf.add(y, this.b);
    return (this.parts.length === 1 ? [y] : tf.split(y, this.parts.map((p) => p.out), 1)) as tf.Tensor2D[];
  }

  /** Single-part convenience. */
  apply1(x: tf.Tensor2D, ctx: RunContext): tf.Tensor2D {
    if (this.parts.length !== 1) throw new Error(`apply1 on fused linear ${this.parts.map((p) => p.name).join('|')}`);
    return this.apply(x, ctx)[0];
  }

  /** Adds each part's LoRA delta (scale A^T B^T) into the frozen weight and detaches the adapters. */
  mergeLora(): void {
    if (!this.parts.some((p) => p.lora)) return;
    const merged = tf.tidy(() => {
      const cols = this.parts.length === 1 ? [this.w] : tf.split(this.w, this.parts.map((p) => p.out), 1);
      return tf.concat(
        cols.map((c, i) => {
          const lora = this.parts[i].lora;
          return lora ? tf.add(c, lora.weightDelta()) : c;
        }),
        1,
      ) as tf.Tensor2D;
    });
    this.w.dispose();
    this.w = merged;
    for (const p of this.parts) p.lora = null;
  }

  dispose(): void {
    this.w.dispose();
    this.b?.dispose();
  }
}
