/**
 * Full-parameter training of the base weights (not LoRA): turns the loaded weight tensors into
 * trainable tf.Variables in place, so the unchanged forward code reads the variables and
 * tf.variableGrads reaches them. Used by the pre-training stand-in for a pretrained base
 * (apps/pretrain); LoRA training never needs it.
 *
 * The vision tower is excluded by default: the paper keeps it frozen, and the backbone caches its
 * output per image (a trained tower would make that cache stale). Conversion is idempotent: a
 * weight that already is a variable is returned as it is. Merging a LoRA adapter afterwards
 * replaces the merged weights with plain tensors again (call this again to re-wrap them).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Idefics2Config } from './config';
import type { Linear } from '@userpref/mllm';
import type { Idefics2Params, Norm } from './weights';

export interface TrainableBaseOptions {
  /** Also train the SigLIP vision tower (default false: frozen as in the paper). */
  includeVision?: boolean;
}

export interface TrainableWeight {
  /** Hugging Face name(s) of what the variable holds (fused Linears list each part). */
  readonly name: string;
  readonly variable: tf.Variable;
}

/** Holder of one weight: reads and replaces it. */
interface Slot {
  name: string;
  get(): tf.Tensor;
  set(v: tf.Variable): void;
}

function toVariable(slot: Slot): TrainableWeight {
  const t = slot.get();
  if (t instanceof tf.Variable) return { name: slot.name, variable: t };
  if (t.isDisposed) throw new Error(`weight '${slot.name}' has been disposed`);
  // tf.variable shares the tensor's data; the original handle can go.
  const v = tf.variable(t, true);
  slot.set(v);
  t.dispose();
  return { name: slot.name, variable: v };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function linearSlots(lin: Linear, out: Slot[]): void {
  const label = lin.parts.map((p) => p.name).join('|');
  out.push({ name: `${label} (weight [in, out])`, get: () => lin.w, set: (v) => (lin.w = v as unknown as tf.Tensor2D) });
  if (lin.b) out.push({ name: `${label} (bias)`, get: () => lin.b!, set: (v) => (lin.b = v as unknown as tf.Tensor1D) });
}

function normSlots(name: string, n: Norm, out: Slot[]): void {
  const m = n as Mutable<Norm>;
  out.push({ name: `${name}.weight`, get: () => m.w, set: (v) => (m.w = v as unknown as tf.Tensor1D) });
  if (m.b) out.push({ name: `${name}.bias`, get: () => m.b!, set: (v) => (m.b = v as unknown as tf.Tensor1D) });
}

function fieldSlot<T extends object, K extends keyof T>(name: string, obj: T, key: K, out: Slot[]): void {
  const m = obj as Mutable<T>;
  out.push({ name, get: () => m[key] as unknown as tf.Tensor, set: (v) => (m[key] = v as unknown as T[K]) });
}

/**
 * Makes the base weights trainable and returns them in a fixed order (vision tower if asked,
 * connector, text model, LM head): the same model config always gives the same list.
 */
export function makeBaseTrainable(params: Idefics2Params, config: Idefics2Config, options: TrainableBaseOptions = {}): TrainableWeight[] {
  if (config.tieWordEmbeddings) {
    // The loader builds the tied head as a transposed copy of the embedding; training both would untie them.
    throw new Error('full-parameter training of a checkpoint with tie_word_embeddings is not supported (the LM head is a copy of the embedding here)');
  }
  const slots: Slot[] = [];
  if (options.includeVision) {
    const v = params.vision;
    fieldSlot('model.vision_model.embeddings.patch_embedding.weight (as [C*p*p, hidden])', v, 'patchW', slots);
    fieldSlot('model.vision_model.embeddings.patch_embedding.bias', v, 'patchB', slots);
    fieldSlot('model.vision_model.embeddings.position_embedding.weight', v, 'posEmb', slots);
    v.layers.forEach((l, i) => {
      const lp = `model.vision_model.encoder.layers.${i}`;
      normSlots(`${lp}.layer_norm1`, l.ln1, slots);
      linearSlots(l.qkv, slots);
      linearSlots(l.out, slots);
      normSlots(`${lp}.layer_norm2`, l.ln2, slots);
      linearSlots(l.fc1, slots);
      linearSlots(l.fc2, slots);
    });
    normSlots('model.vision_model.post_layernorm', v.post, slots);
  }
  const c = params.connector;
  linearSlots(c.projGateUp, slots);
  linearSlots(c.projDown, slots);
  const rp = 'model.connector.perceiver_resampler';
  fieldSlot(`${rp}.latents`, c, 'latents', slots);
  c.layers.forEach((l, i) => {
    const lp = `${rp}.layers.${i}`;
    normSlots(`${lp}.input_latents_norm`, l.latentsNorm, slots);
    normSlots(`${lp}.input_context_norm`, l.contextNorm, slots);
    linearSlots(l.q, slots);
    linearSlots(l.kv, slots);
    linearSlots(l.o, slots);
    normSlots(`${lp}.post_attention_layernorm`, l.postNorm, slots);
    linearSlots(l.gateUp, slots);
    linearSlots(l.down, slots);
  });
  normSlots(`${rp}.norm`, c.norm, slots);
  const t = params.text;
  fieldSlot('model.text_model.embed_tokens.weight', t, 'embed', slots);
  t.layers.forEach((l, i) => {
    const lp = `model.text_model.layers.${i}`;
    normSlots(`${lp}.input_layernorm`, l.inputNorm, slots);
    linearSlots(l.qkv, slots);
    linearSlots(l.o, slots);
    normSlots(`${lp}.post_attention_layernorm`, l.postNorm, slots);
    linearSlots(l.gateUp, slots);
    linearSlots(l.down, slots);
  });
  normSlots('model.text_model.norm', t.norm, slots);
  linearSlots(t.lmHead, slots);
  return slots.map(toVariable);
}

/**
 * Fan-in scaled starting weights for a pre-training run: every Linear weight of `weights` gets
 * N(0, 1/fan_in) (torch.nn.Linear's scale), output projections (o_proj, down_proj) are scaled down
 * by 1/sqrt(2 * text layers) so the residual stream starts calm, biases become 0. Embeddings,
 * latents and norms keep their values. Returns the number of re-drawn weights.
 *
 * Why: checkpoints use idefics2-8b's initializer_range 0.02 (about 1/sqrt(4096)), right at width
 * 4096 but far too small at the CPU presets' widths: there the connector's outputs for different
 * images differ by ~1% of their norm and a pre-training run cannot learn to look at images
 * (measured, README "The embedded demo"). Deterministic from `seed`.
 */
export function fanInReinit(weights: readonly TrainableWeight[], config: Idefics2Config, seed: number): number {
  const residualScale = 1 / Math.sqrt(2 * config.text.numLayers);
  let redrawn = 0;
  weights.forEach((w, i) => {
    const v = w.variable;
    if (w.name.endsWith('(bias)')) {
      v.assign(tf.zerosLike(v));
      return;
    }
    if (!w.name.endsWith('(weight [in, out])')) return;
    const [fanIn] = v.shape;
    const output = /\.(o_proj|down_proj)\b/.test(w.name);
    const std = (1 / Math.sqrt(fanIn)) * (output ? residualScale : 1);
    tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, std, 'float32', seed * 1000 + i + 1)));
    redrawn++;
  });
  return redrawn;
}
