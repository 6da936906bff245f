/**
 * A model's tensors as one list, derived from its parsed config: each Hugging Face name with its
 * shape (as transformers' module tree names them, in the order of the modules in the modeling
 * file, which is what save_pretrained writes) and how a random checkpoint initialises it (in the
 * manner of transformers' `_init_weights`: Linear / Conv2d / Embedding weights ~ N(0,
 * initializer_range), biases 0, LayerNorm and RMSNorm weights 1, the padding row of the token
 * embedding 0). Loading, export, the checkpoint writer and the progress total all read this list,
 * so they cannot disagree on a name, a shape or a count.
 */
import type { TextConfig, VisionConfig } from './config';

export type TensorInit = { kind: 'normal'; std: number } | { kind: 'ones' } | { kind: 'zeros' } | { kind: 'embedding'; std: number; paddingRow: number | null };

export interface TensorSpec {
  /** Canonical Hugging Face name (e.g. model.text_model.layers.0.self_attn.q_proj.weight). */
  readonly name: string;
  /** Hugging Face shape (Linear weights [out, in], a Conv2d [out, C, k, k]). */
  readonly shape: number[];
  readonly init: TensorInit;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Appends the specs of the usual module kinds to `specs`. */
export class SpecListBuilder {
  readonly specs: TensorSpec[] = [];

  tensor(name: string, shape: number[], init: TensorInit): this {
    this.specs.push({ name, shape, init });
    return this;
  }

  linear(prefix: string, out: number, inp: number, std: number, bias: boolean): this {
    this.tensor(`${prefix}.weight`, [out, inp], { kind: 'normal', std });
    if (bias) this.tensor(`${prefix}.bias`, [out], { kind: 'zeros' });
    return this;
  }

  layerNorm(prefix: string, dim: number): this {
    return this.tensor(`${prefix}.weight`, [dim], { kind: 'ones' }).tensor(`${prefix}.bias`, [dim], { kind: 'zeros' });
  }

  rmsNorm(prefix: string, dim: number): this {
    return this.tensor(`${prefix}.weight`, [dim], { kind: 'ones' });
  }

  /** gate_proj, up_proj (inp -> inter) and down_proj (inter -> out), with biases when `bias`. */
  swiglu(prefix: string, inp: number, inter: number, out: number, std: number, bias = false): this {
    return this.linear(`${prefix}.gate_proj`, inter, inp, std, bias).linear(`${prefix}.up_proj`, inter, inp, std, bias).linear(`${prefix}.down_proj`, out, inter, std, bias);
  }
}

/** The SigLIP vision tower (NaViT-style position buckets) under `prefix`, in SiglipEncoderLayer order. */
export function visionTowerSpecs(v: VisionConfig, prefix = 'model.vision_model'): TensorSpec[] {
  const b = new SpecListBuilder();
  const vd = v.hiddenSize;
  const std = v.initializerRange;
  b.tensor(`${prefix}.embeddings.patch_embedding.weight`, [vd, v.numChannels, v.patchSize, v.patchSize], { kind: 'normal', std });
  b.tensor(`${prefix}.embeddings.patch_embedding.bias`, [vd], { kind: 'zeros' });
  b.tensor(`${prefix}.embeddings.position_embedding.weight`, [v.numPatchesPerSide * v.numPatchesPerSide, vd], { kind: 'embedding', std, paddingRow: null });
  for (let l = 0; l < v.numLayers; l++) {
    const lp = `${prefix}.encoder.layers.${l}`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) b.linear(`${lp}.self_attn.${proj}`, vd, vd, std, true);
    b.layerNorm(`${lp}.layer_norm1`, vd);
    b.linear(`${lp}.mlp.fc1`, v.intermediateSize, vd, std, true);
    b.linear(`${lp}.mlp.fc2`, vd, v.intermediateSize, std, true);
    b.layerNorm(`${lp}.layer_norm2`, vd);
  }
  b.layerNorm(`${prefix}.post_layernorm`, vd);
  return b.specs;
}

/**
 * The Llama / Mistral text model under `prefix` and the LM head; with tied word embeddings there is
 * no lm_head tensor (transformers ties it to embed_tokens and save_pretrained leaves it out).
 */
export function decoderSpecs(t: TextConfig, tied: boolean, prefix = 'model.text_model'): TensorSpec[] {
  const b = new SpecListBuilder();
  const td = t.hiddenSize;
  const std = t.initializerRange;
  b.tensor(`${prefix}.embed_tokens.weight`, [t.vocabSize, td], { kind: 'embedding', std, paddingRow: t.padTokenId });
  for (let l = 0; l < t.numLayers; l++) {
    const lp = `${prefix}.layers.${l}`;
    b.linear(`${lp}.self_attn.q_proj`, t.numHeads * t.headDim, td, std, t.attentionBias);
    b.linear(`${lp}.self_attn.k_proj`, t.numKvHeads * t.headDim, td, std, t.attentionBias);
    b.linear(`${lp}.self_attn.v_proj`, t.numKvHeads * t.headDim, td, std, t.attentionBias);
    b.linear(`${lp}.self_attn.o_proj`, td, t.numHeads * t.headDim, std, t.attentionBias);
    b.swiglu(`${lp}.mlp`, td, t.intermediateSize, td, std, t.mlpBias);
    b.rmsNorm(`${lp}.input_layernorm`, td);
    b.rmsNorm(`${lp}.post_attention_layernorm`, td);
  }
  b.rmsNorm(`${prefix}.norm`, td);
  if (!tied) b.linear('lm_head', t.vocabSize, td, std, false);
  return b.specs;
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * `tensors` (e.g. an export) in the order of `specs`, checked to be exactly that list: every spec
 * once, with its shape, and nothing else. `makeError` is the caller's error class.
 */
export function inSpecOrder<T extends { readonly name: string; readonly shape: readonly number[] }>(tensors: readonly T[], specs: readonly TensorSpec[], makeError: (message: string) => Error): T[] {
  const byName = new Map<string, T>();
  for (const t of tensors) {
    if (byName.has(t.name)) throw makeError(`tensor '${t.name}' appears twice`);
    byName.set(t.name, t);
  }
  const out: T[] = [];
  for (const s of specs) {
    const t = byName.get(s.name);
    if (!t) throw makeError(`tensor '${s.name}' (shape ${shapeStr(s.shape)} from config.json) is missing`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) throw makeError(`tensor '${s.name}' has shape ${shapeStr(t.shape)} but config.json implies ${shapeStr(s.shape)}`);
    out.push(t);
    byName.delete(s.name);
  }
  if (byName.size > 0) throw makeError(`tensors the config does not describe: ${[...byName.keys()].slice(0, 5).join(', ')}${byName.size > 5 ? ', ...' : ''}`);
  return out;
}
