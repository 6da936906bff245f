/**
 * A frozen linear layer in the layout the wasm backend multiplies fastest: the weight is stored
 * [in, out] (transposed once at load), and layers that read the same input are fused column-wise
 * (q|k|v, gate|up, k|v) so one matMul serves them all. Each fused part keeps its Hugging Face module
 * name, which is what LoRA targets and PEFT adapter files are keyed by; a LoRA adapter attaches to
 * a part and adds scale * dropout(x) A^T B^T to that part's columns.
 *
 * The frozen weight is either a float32 tensor or packed at 8 or 4 bits (@userpref/quant: int8
 * absmax per output channel or NF4 blocks of 64, codes in float32 words). A packed weight is
 * unpacked to float32 each time the layer runs and freed right after its product, unless a gradient
 * is being recorded (the tape keeps what a matMul used; under activation checkpointing the layer's
 * forward records nothing, so only the layer being recomputed holds its unpacked weights).
 */
import * as tf from '@tensorflow/tfjs-core';
import { recordingGradients, type PackedMatrix } from '@userpref/quant';
import type { LoraModule } from './lora';

export interface LinearPart {
  /** Hugging Face module name, e.g. `model.text_model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  readonly out: number;
  lora: LoraModule | null;
  /** An adapter folded into the frozen weight by mergeLora (kept so unmergeLora can take it out again). */
  merged?: LoraModule | null;
}

/** Per-call settings: dropout only in training, with masks derived from a seed. */
export interface RunContext {
  readonly training: boolean;
  readonly seed?: number;
  /** Activation checkpointing per decoder / connector / vision layer (only acts while a gradient is recorded). */
  readonly checkpoint?: boolean;
  /** Row of x's first row in the matrix the dropout masks are drawn for (a chunk of rows run alone). */
  readonly rowOffset?: number;
}

export const EVAL: RunContext = { training: false };

export class Linear {
  private weight: tf.Tensor2D | null;
  /** The frozen weight packed at 8 or 4 bits (then `w` is not held). */
  packed: PackedMatrix | null = null;

  constructor(
    /** [in, out_total] float32, or the packed weight */
    w: tf.Tensor2D | PackedMatrix,
    /** [out_total] or null */
    public b: tf.Tensor1D | null,
    readonly parts: LinearPart[],
  ) {
    const total = parts.reduce((s, p) => s + p.out, 0);
    if (w instanceof tf.Tensor) {
      this.weight = w;
    } else {
      this.weight = null;
      this.packed = w;
    }
    const cols = w instanceof tf.Tensor ? w.shape[1] : w.outFeatures;
    if (cols !== total) throw new Error(`Linear ${parts.map((p) => p.name).join('|')}: weight has ${cols} columns, parts need ${total}`);
  }

  /** The float32 weight [in, out_total]; a packed layer has none (see `packed`, `frozenWeight`). */
  get w(): tf.Tensor2D {
    if (!this.weight) throw new Error(`Linear ${this.parts.map((p) => p.name).join('|')} holds a ${this.packed!.bits}-bit packed weight, not a float32 one`);
    return this.weight;
  }

  set w(v: tf.Tensor2D) {
    this.weight = v;
    if (this.packed) {
      this.packed.dispose();
      this.packed = null;
    }
  }

  get inFeatures(): number {
    return this.weight ? this.weight.shape[0] : this.packed!.inFeatures;
  }

  /** The tensors holding the frozen weight (float32, or the packed codes and scales). */
  weightTensors(): tf.Tensor[] {
    return this.weight ? [this.weight] : this.packed!.tensors();
  }

  /**
   * The float32 weight [in, out]: the held tensor, or a fresh unpacking of the packed one
   * (`owned`: the caller frees it).
   */
  frozenWeight(): { w: tf.Tensor2D; owned: boolean } {
    return this.weight ? { w: this.weight, owned: false } : { w: this.packed!.materialize(), owned: true };
  }

  /** x W (+ b) with the frozen weight; a packed weight is unpacked for it and freed unless the tape keeps it. */
  private frozenProduct(x: tf.Tensor2D, extra?: (w: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    const { w, owned } = this.frozenWeight();
    const wEff = extra ? extra(w) : w;
    let y = tf.matMul(x, wEff) as tf.Tensor2D;
    if (owned && !recordingGradients()) {
      w.dispose();
      if (wEff !== w) wEff.dispose();
    }
    if (this.b) y = tf.add(y, this.b);
    return y;
  }

  /**
   * x [N, in] -> one [N, out_i] per part (LoRA deltas added). Outside training (no dropout) the
   * deltas are folded into the weight first, x (W + scale A^T B^T): one product of x instead of
   * three per adapted part, the [in, out] sum costing less than one [N, r] product for long inputs.
   * Gradients w.r.t. A and B still flow (through weightDelta).
   */
  apply(x: tf.Tensor2D, ctx: RunContext): tf.Tensor2D[] {
    if (!ctx.training && x.shape[0] > this.inFeatures && this.parts.some((p) => p.lora)) return this.applyFolded(x);
    const y = this.frozenProduct(x);
    const outs = this.parts.length === 1 ? [y] : tf.split(y, this.parts.map((p) => p.out), 1);
    return outs.map((o, i) => {
      const lora = this.parts[i].lora;
      return (lora ? tf.add(o, lora.delta(x, ctx)) : o) as tf.Tensor2D;
    });
  }

  private applyFolded(x: tf.Tensor2D): tf.Tensor2D[] {
    const y = this.frozenProduct(x, (base) => {
      const cols = this.parts.length === 1 ? [base] : tf.split(base, this.parts.map((p) => p.out), 1);
      return tf.concat(cols.map((c, i) => (this.parts[i].lora ? tf.add(c, this.parts[i].lora!.weightDelta()) : c)), 1) as tf.Tensor2D;
    });
    return (this.parts.length === 1 ? [y] : tf.split(y, this.parts.map((p) => p.out), 1)) as tf.Tensor2D[];
  }

  /** Single-part convenience. */
  apply1(x: tf.Tensor2D, ctx: RunContext): tf.Tensor2D {
    if (this.parts.length !== 1) throw new Error(`apply1 on fused linear ${this.parts.map((p) => p.name).join('|')}`);
    return this.apply(x, ctx)[0];
  }

  private get label(): string {
    return this.parts.map((p) => p.name).join('|');
  }

  /** The float32 weight with `sign` * each selected part's delta (scale A^T B^T) added to its columns. */
  private withDeltas(pick: (p: LinearPart) => LoraModule | null | undefined, sign: 1 | -1): tf.Tensor2D {
    return tf.tidy(() => {
      const cols = this.parts.length === 1 ? [this.w] : tf.split(this.w, this.parts.map((p) => p.out), 1);
      return tf.concat(
        cols.map((c, i) => {
          const m = pick(this.parts[i]);
          return m ? (sign > 0 ? tf.add(c, m.weightDelta()) : tf.sub(c, m.weightDelta())) : c;
        }),
        1,
      ) as tf.Tensor2D;
    });
  }

  /**
   * Adds each attached part's LoRA delta (scale A^T B^T) into the frozen weight (PEFT's merge):
   * the part then runs without its adapter, which is kept as `merged` for unmergeLora. `safe`
   * (PEFT's safe_merge) refuses a result with NaN or infinite entries and leaves the layer as it was.
   */
  mergeLora(options: { safe?: boolean } = {}): void {
    const parts = this.parts.filter((p) => p.lora);
    if (parts.length === 0) return;
    if (this.packed) throw new Error(`Linear ${this.label}: cannot merge a LoRA adapter into a ${this.packed.bits}-bit packed base (load the base in float32 to merge)`);
    const merged = this.withDeltas((p) => p.lora, 1);
    if (options.safe) {
      const finite = tf.tidy(() => tf.all(tf.isFinite(merged)));
      const ok = finite.dataSync()[0] === 1;
      finite.dispose();
      if (!ok) {
        merged.dispose();
        throw new Error(`Linear ${this.label}: merging the LoRA adapter gives non-finite weights (NaN or Inf); the layer is left unmerged`);
      }
    }
    this.w.dispose();
    this.w = merged;
    for (const p of parts) {
      p.merged = p.lora;
      p.lora = null;
    }
  }

  /** Takes merged adapters out of the frozen weight again (PEFT's unmerge) and re-attaches them. */
  unmergeLora(): void {
    const parts = this.parts.filter((p) => p.merged);
    if (parts.length === 0) return;
    const base = this.withDeltas((p) => p.merged, -1);
    this.w.dispose();
    this.w = base;
    for (const p of parts) {
      p.lora = p.merged!;
      p.merged = null;
    }
  }

  dispose(): void {
    this.weight?.dispose();
    this.packed?.dispose();
    this.b?.dispose();
  }
}

/** The LoRA variables (A^T, B^T) attached to the parts of `linears`: what a checkpointed layer trains. */
export function loraVariables(linears: readonly Linear[]): tf.Variable[] {
  return linears.flatMap((lin) => lin.parts.flatMap((p) => (p.lora ? [p.lora.a, p.lora.b] : [])));
}
