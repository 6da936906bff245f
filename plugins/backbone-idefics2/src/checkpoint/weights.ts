/**
 * Every tensor of Idefics2ForConditionalGeneration with its Hugging Face name and shape, derived
 * from config.json alone (the names of modeling_idefics2.py: model.vision_model.*,
 * model.connector.{modality_projection,perceiver_resampler}.*, model.text_model.*, lm_head), and
 * its initial values in the manner of transformers' `_init_weights`: Linear / Conv2d / Embedding
 * weights ~ N(0, initializer_range), biases 0, LayerNorm and RMSNorm weights 1, the padding row of
 * the token embedding 0.
 *
 * One deliberate difference: transformers fills the perceiver latents with ones, which makes every
 * latent identical (each image would collapse to one repeated vector). Here they are N(0, 1), like
 * the original Idefics perceiver's torch.randn; they are RMS-normalised before use, so their scale
 * does not matter.
 *
 * Each tensor draws from its own named random stream (Rng.stream(seed, name)), so the values of one
 * tensor do not depend on which other tensors exist or in which order they are written.
 */
import { Rng } from '@userpref/core';

export type Init = { kind: 'normal'; std: number } | { kind: 'ones' } | { kind: 'zeros' } | { kind: 'embedding'; std: number; paddingRow: number | null };

export interface TensorSpec {
  readonly name: string;
  readonly shape: number[];
  readonly init: Init;
}

/** The subset of config.json this module reads. */
interface Idefics2ConfigJson {
  vision_config: {
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_channels: number;
    patch_size: number;
    image_size: number;
    initializer_range: number;
  };
  perceiver_config: {
    hidden_size: number;
    resampler_n_latents: number;
    resampler_depth: number;
    resampler_n_heads: number;
    resampler_head_dim: number;
    num_key_value_heads: number;
    initializer_range: number;
  };
  text_config: {
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    head_dim?: number | null;
    vocab_size: number;
    pad_token_id?: number | null;
    initializer_range: number;
  };
}

function need(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`config.json: '${key}' must be a number, got ${JSON.stringify(value)}`);
  return value;
}

export function idefics2TensorSpecs(config: unknown): TensorSpec[] {
  const c = config as Idefics2ConfigJson;
  if (!c.vision_config || !c.perceiver_config || !c.text_config) throw new Error('config.json: needs vision_config, perceiver_config and text_config');
  const v = c.vision_config;
  const p = c.perceiver_config;
  const t = c.text_config;
  const vd = need(v.hidden_size, 'vision_config.hidden_size');
  const vi = need(v.intermediate_size, 'vision_config.intermediate_size');
  const patch = need(v.patch_size, 'vision_config.patch_size');
  const perSide = Math.floor(need(v.image_size, 'vision_config.image_size') / patch);
  const td = need(t.hidden_size, 'text_config.hidden_size');
  const ti = need(t.intermediate_size, 'text_config.intermediate_size');
  const heads = need(t.num_attention_heads, 'text_config.num_attention_heads');
  const headDim = t.head_dim ?? td / heads;
  const kv = need(t.num_key_value_heads, 'text_config.num_key_value_heads');
  const pd = need(p.hidden_size, 'perceiver_config.hidden_size');
  if (pd !== td) throw new Error(`config.json: perceiver_config.hidden_size ${pd} must equal text_config.hidden_size ${td}`);
  const pHeads = need(p.resampler_n_heads, 'perceiver_config.resampler_n_heads');
  const pHeadDim = need(p.resampler_head_dim, 'perceiver_config.resampler_head_dim');
  const pKv = need(p.num_key_value_heads, 'perceiver_config.num_key_value_heads');
  const vocab = need(t.vocab_size, 'text_config.vocab_size');

  const specs: TensorSpec[] = [];
  const linear = (prefix: string, out: number, inp: number, std: number, bias: boolean) => {
    specs.push({ name: `${prefix}.weight`, shape: [out, inp], init: { kind: 'normal', std } });
    if (bias) specs.push({ name: `${prefix}.bias`, shape: [out], init: { kind: 'zeros' } });
  };
  const layerNorm = (prefix: string, dim: number) => {
    specs.push({ name: `${prefix}.weight`, shape: [dim], init: { kind: 'ones' } });
    specs.push({ name: `${prefix}.bias`, shape: [dim], init: { kind: 'zeros' } });
  };
  const rmsNorm = (name: string, dim: number) => specs.push({ name: `${name}.weight`, shape: [dim], init: { kind: 'ones' } });
  const swiglu = (prefix: string, inp: number, inter: number, out: number, std: number) => {
    linear(`${prefix}.gate_proj`, inter, inp, std, false);
    linear(`${prefix}.up_proj`, inter, inp, std, false);
    linear(`${prefix}.down_proj`, out, inter, std, false);
  };

  // Vision tower (SigLIP with NaViT-style position buckets).
  const vs = v.initializer_range;
  const vp = 'model.vision_model';
  specs.push({ name: `${vp}.embeddings.patch_embedding.weight`, shape: [vd, need(v.num_channels, 'vision_config.num_channels'), patch, patch], init: { kind: 'normal', std: vs } });
  specs.push({ name: `${vp}.embeddings.patch_embedding.bias`, shape: [vd], init: { kind: 'zeros' } });
  specs.push({ name: `${vp}.embeddings.position_embedding.weight`, shape: [perSide * perSide, vd], init: { kind: 'embedding', std: vs, paddingRow: null } });
  for (let l = 0; l < need(v.num_hidden_layers, 'vision_config.num_hidden_layers'); l++) {
    const lp = `${vp}.encoder.layers.${l}`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) linear(`${lp}.self_attn.${proj}`, vd, vd, vs, true);
    layerNorm(`${lp}.layer_norm1`, vd);
    linear(`${lp}.mlp.fc1`, vi, vd, vs, true);
    linear(`${lp}.mlp.fc2`, vd, vi, vs, true);
    layerNorm(`${lp}.layer_norm2`, vd);
  }
  layerNorm(`${vp}.post_layernorm`, vd);

  // Connector: SwiGLU modality projection (vision width -> text intermediate -> text width),
  // then the perceiver resampler in the text width.
  const cp = 'model.connector';
  swiglu(`${cp}.modality_projection`, vd, ti, td, t.initializer_range);
  const ps = p.initializer_range;
  const rp = `${cp}.perceiver_resampler`;
  specs.push({ name: `${rp}.latents`, shape: [need(p.resampler_n_latents, 'perceiver_config.resampler_n_latents'), pd], init: { kind: 'normal', std: 1 } });
  for (let l = 0; l < need(p.resampler_depth, 'perceiver_config.resampler_depth'); l++) {
    const lp = `${rp}.layers.${l}`;
    rmsNorm(`${lp}.input_latents_norm`, pd);
    rmsNorm(`${lp}.input_context_norm`, pd);
    linear(`${lp}.self_attn.q_proj`, pHeads * pHeadDim, pd, ps, false);
    linear(`${lp}.self_attn.k_proj`, pKv * pHeadDim, pd, ps, false);
    linear(`${lp}.self_attn.v_proj`, pKv * pHeadDim, pd, ps, false);
    linear(`${lp}.self_attn.o_proj`, pd, pHeads * pHeadDim, ps, false);
    rmsNorm(`${lp}.post_attention_layernorm`, pd);
    swiglu(`${lp}.mlp`, pd, 4 * pd, pd, ps);
  }
  rmsNorm(`${rp}.norm`, pd);

  // Mistral text model and the untied LM head.
  const ts = t.initializer_range;
  const tp = 'model.text_model';
  specs.push({ name: `${tp}.embed_tokens.weight`, shape: [vocab, td], init: { kind: 'embedding', std: ts, paddingRow: t.pad_token_id ?? null } });
  for (let l = 0; l < need(t.num_hidden_layers, 'text_config.num_hidden_layers'); l++) {
    const lp = `${tp}.layers.${l}`;
    linear(`${lp}.self_attn.q_proj`, heads * headDim, td, ts, false);
    linear(`${lp}.self_attn.k_proj`, kv * headDim, td, ts, false);
    linear(`${lp}.self_attn.v_proj`, kv * headDim, td, ts, false);
    linear(`${lp}.self_attn.o_proj`, td, heads * headDim, ts, false);
    swiglu(`${lp}.mlp`, td, ti, td, ts);
    rmsNorm(`${lp}.input_layernorm`, td);
    rmsNorm(`${lp}.post_attention_layernorm`, td);
  }
  rmsNorm(`${tp}.norm`, td);
  specs.push({ name: 'lm_head.weight', shape: [vocab, td], init: { kind: 'normal', std: ts } });
  return specs;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The initial values of one tensor, deterministic in (seed, name). */
export function initTensor(spec: TensorSpec, seed: number): Float32Array {
  const n = numel(spec.shape);
  const out = new Float32Array(n);
  switch (spec.init.kind) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'normal':
    case 'embedding': {
      const rng = Rng.stream(seed, spec.name);
      const std = spec.init.std;
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      if (spec.init.kind === 'embedding' && spec.init.paddingRow !== null) {
        const row = spec.init.paddingRow;
        const width = spec.shape[1];
        if (row < 0 || row >= spec.shape[0]) throw new Error(`${spec.name}: padding row ${row} outside [0, ${spec.shape[0]})`);
        out.fill(0, row * width, (row + 1) * width);
      }
      return out;
    }
  }
}
