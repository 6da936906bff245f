/**
 * LoRA with PEFT's semantics (peft/tuners/lora/layer.py, Linear): for a frozen W, the adapted layer
 * computes W x + scale * B(A(dropout(x))), scale = lora_alpha / r (or / sqrt(r) with rsLoRA),
 * dropout only in training, A [r, in] ~ N(0, std = 1/r) and B [out, r] = 0 for
 * init_lora_weights="gaussian". Here A and B are kept transposed (a = A^T [in, r], b = B^T [r, out])
 * so the forward pass is two plain matMuls; PEFT's layout is restored on save.
 *
 * Target matching is PEFT's check_target_module_exists: a string is a regex that must match the
 * whole module name (re.fullmatch); a list matches a name equal to an entry or ending in
 * "." + entry.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@userpref/core';
import type { RunContext } from './linear';
import { dropoutMask, matMulThin } from './ops';

export type LoraInit = 'gaussian' | 'zeros';

export interface LoraSettings {
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly targetModules: string | readonly string[];
  /** 'gaussian' = PEFT's init_lora_weights="gaussian"; 'zeros' = A and B zero (tests). */
  readonly init: LoraInit;
  readonly useRslora?: boolean;
}

export function loraScale(s: Pick<LoraSettings, 'r' | 'alpha' | 'useRslora'>): number {
  return s.useRslora ? s.alpha / Math.sqrt(s.r) : s.alpha / s.r;
}

/** Python-regex fullmatch of `pattern`, translated to a JS RegExp (the syntax common to both). */
export function targetMatcher(targetModules: string | readonly string[]): (name: string) => boolean {
  if (typeof targetModules === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targetModules})$`);
    } catch (e) {
      throw new Error(`LoRA target_modules regex ${JSON.stringify(targetModules)} is invalid: ${(e as Error).message}`);
    }
    return (name) => re.test(name);
  }
  const list = [...targetModules];
  return (name) => list.some((t) => name === t || name.endsWith(`.${t}`));
}

export function validateLoraSettings(s: LoraSettings, where = 'lora'): void {
  if (!Number.isInteger(s.r) || s.r < 1) throw new Error(`${where}.r must be a positive integer, got ${s.r}`);
  if (!(s.alpha > 0)) throw new Error(`${where}.alpha must be > 0, got ${s.alpha}`);
  if (!(s.dropout >= 0 && s.dropout < 1)) throw new Error(`${where}.dropout must be in [0, 1), got ${s.dropout}`);
  if (s.init !== 'gaussian' && s.init !== 'zeros') throw new Error(`${where}.init must be 'gaussian' or 'zeros', got ${JSON.stringify(s.init)}`);
}

/** 32-bit mix of a call seed and a module index, so each adapted layer draws its own dropout mask. */
function mixSeed(seed: number, index: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export class LoraModule {
  constructor(
    /** Hugging Face module name (PEFT key without the lora_A/lora_B suffix). */
    readonly name: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly r: number,
    readonly scale: number,
    readonly dropout: number,
    /** A^T [in, r] */
    readonly a: tf.Variable<tf.Rank.R2>,
    /** B^T [r, out] */
    readonly b: tf.Variable<tf.Rank.R2>,
    /** Position among the adapter's modules (dropout seeding). */
    readonly index: number,
  ) {}

  static create(name: string, inFeatures: number, outFeatures: number, s: LoraSettings, seed: number, index: number): LoraModule {
    const aData = new Float32Array(inFeatures * s.r);
    if (s.init === 'gaussian') {
      // PEFT draws A [r, in] with std 1/r; we store A^T, so fill in PEFT's order and transpose.
      const rng = Rng.stream(seed, `lora_A:${name}`);
      const std = 1 / s.r;
      for (let i = 0; i < s.r; i++) for (let j = 0; j < inFeatures; j++) aData[j * s.r + i] = rng.normal() * std;
    }
    const a = tf.variable(tf.tensor2d(aData, [inFeatures, s.r]), true);
    const b = tf.variable(tf.zeros([s.r, outFeatures]) as tf.Tensor2D, true);
    return new LoraModule(name, inFeatures, outFeatures, s.r, loraScale(s), s.dropout, a, b, index);
  }

  /**
   * scale * dropout(x) A^T B^T for x [N, in]. The scale multiplies the thin [N, r] product (not the
   * [N, out] result); the second product uses matMulThin's cheaper gradient.
   */
  delta(x: tf.Tensor2D, ctx: RunContext): tf.Tensor2D {
    let h = x;
    if (ctx.training && this.dropout > 0) {
      const seed = ctx.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : mixSeed(ctx.seed, this.index);
      h = tf.mul(x, dropoutMask(x.shape[0], x.shape[1], this.dropout, seed, (ctx.rowOffset ?? 0) * x.shape[1])) as tf.Tensor2D;
    }
    let u: tf.Tensor2D = tf.matMul(h, this.a);
    if (this.scale !== 1) u = tf.mul(u, this.scale) as tf.Tensor2D;
    return matMulThin(u, this.b);
  }

  /** scale A^T B^T [in, out]: what merging adds to the frozen [in, out] weight. */
  weightDelta(): tf.Tensor2D {
    return tf.mul(tf.matMul(this.a, this.b), this.scale);
  }

  dispose(): void {
    this.a.dispose();
    this.b.dispose();
  }
}
