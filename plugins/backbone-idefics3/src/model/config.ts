/**
 * Idefics3Config from a checkpoint's config.json (HuggingFaceM4/Idefics3-8B-Llama3 and SmolVLM
 * 256M / 500M / 2.2B, whose config.json says model_type "idefics3"; SmolVLM2's "smolvlm" has the
 * same computation for images), with the meaning transformers gives the file: a key the file
 * omits takes the default of its transformers config class (Idefics3VisionConfig, LlamaConfig).
 *
 * The vision and text parts are expressed as the IDEFICS2 plugin's VisionConfig / TextConfig, so
 * its SigLIP tower and decoder run them unchanged. What differs from Mistral is parameterised
 * there already: rope_theta (10000 for Llama defaults, 500000 Llama 3, 100000 / 273768 SmolLM2),
 * tied embeddings (SmolVLM 256M / 500M) and no sliding window (null). Llama 3.1's scaled RoPE
 * ("llama3" rope_type) is not computed; such a file fails naming the key.
 */
import type { Activation, TextConfig, VisionConfig } from '@userpref/backbone-idefics2';

export interface Idefics3Config {
  readonly vision: VisionConfig;
  readonly text: TextConfig;
  /** Pixel-shuffle factor: s x s neighbouring patches become one token of width d_vision * s^2. */
  readonly scaleFactor: number;
  /** <image> tokens per tile: (image_size / patch_size)^2 / scale_factor^2. */
  readonly imageSeqLen: number;
  readonly imageTokenId: number;
  readonly tieWordEmbeddings: boolean;
  readonly modelType: 'idefics3' | 'smolvlm';
  /** Dotted keys that were absent and took the transformers default. */
  readonly defaulted: readonly string[];
}

export class Idefics3ConfigError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

type Json = Record<string, unknown>;
const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu_pytorch_tanh', 'gelu', 'gelu_new', 'relu'];

/** Idefics3VisionConfig defaults (configuration_idefics3.py). */
const VISION_DEFAULTS: Json = {
  hidden_size: 1152,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 16,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'gelu_pytorch_tanh',
  layer_norm_eps: 1e-6,
};
/** LlamaConfig defaults (configuration_llama.py); num_key_value_heads defaults to the heads. */
const LLAMA_DEFAULTS: Json = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  head_dim: null,
  hidden_act: 'silu',
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  pad_token_id: null,
  bos_token_id: 1,
  attention_bias: false,
  mlp_bias: false,
};

class Reader {
  readonly defaulted: string[] = [];
  constructor(private readonly file: string) {}

  fail(key: string, message: string): never {
    throw new Idefics3ConfigError(`${this.file}: '${key}' ${message}`);
  }

  section(json: Json, key: string, required: boolean): Json {
    const v = json[key];
    if (v === undefined || v === null) {
      if (required) this.fail(key, 'is missing (an Idefics3 config.json has vision_config and text_config)');
      this.defaulted.push(key);
      return {};
    }
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, `must be an object, got ${JSON.stringify(v)}`);
    return v as Json;
  }

  raw(json: Json, prefix: string, key: string, defaults: Json): unknown {
    if (json[key] !== undefined) return json[key];
    if (!(key in defaults)) this.fail(`${prefix}${key}`, 'is missing');
    this.defaulted.push(`${prefix}${key}`);
    return defaults[key];
  }

  int(json: Json, prefix: string, key: string, defaults: Json, min = 1): number {
    const v = this.raw(json, prefix, key, defaults);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(`${prefix}${key}`, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  }

  intOrNull(json: Json, prefix: string, key: string, defaults: Json): number | null {
    const v = this.raw(json, prefix, key, defaults);
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(`${prefix}${key}`, `must be an integer or null, got ${JSON.stringify(v)}`);
    return v;
  }

  num(json: Json, prefix: string, key: string, defaults: Json): number {
    const v = this.raw(json, prefix, key, defaults);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(`${prefix}${key}`, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  act(json: Json, prefix: string, key: string, defaults: Json): Activation {
    const v = this.raw(json, prefix, key, defaults);
    if (!ACTIVATIONS.includes(v as Activation)) this.fail(`${prefix}${key}`, `is ${JSON.stringify(v)}; supported: ${ACTIVATIONS.join(', ')}`);
    return v as Activation;
  }

  falseOnly(json: Json, prefix: string, key: string, defaults: Json, what: string): void {
    const v = this.raw(json, prefix, key, defaults);
    if (v !== false) this.fail(`${prefix}${key}`, `is ${JSON.stringify(v)}; ${what} is not implemented`);
  }
}

/** rope_theta from transformers 4.x (rope_theta, rope_scaling) or 5.x (rope_parameters); unscaled RoPE only. */
function ropeTheta(t: Json, tp: string, r: Reader): number {
  const params = t.rope_parameters as Json | null | undefined;
  for (const key of ['rope_parameters', 'rope_scaling'] as const) {
    const obj = t[key] as Json | null | undefined;
    if (obj === undefined || obj === null) continue;
    if (typeof obj !== 'object') r.fail(`${tp}${key}`, `must be an object, got ${JSON.stringify(obj)}`);
    const type = obj.rope_type ?? obj.type ?? 'default';
    if (type !== 'default') r.fail(`${tp}${key}.rope_type`, `is ${JSON.stringify(type)}; only the default (unscaled) RoPE is implemented (Llama 3.1's "llama3" scaling is not)`);
  }
  if (params && params.rope_theta !== undefined) {
    if (typeof params.rope_theta !== 'number' || !(params.rope_theta > 0)) r.fail(`${tp}rope_parameters.rope_theta`, `must be a positive number, got ${JSON.stringify(params.rope_theta)}`);
    return params.rope_theta;
  }
  return r.num(t, tp, 'rope_theta', { rope_theta: 10000 });
}

/** Parses a config.json object; `file` names it in errors. */
export function parseIdefics3Config(json: unknown, file = 'config.json'): Idefics3Config {
  const r = new Reader(file);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Idefics3ConfigError(`${file}: not a JSON object`);
  const top = json as Json;
  if (top.model_type !== 'idefics3' && top.model_type !== 'smolvlm') {
    r.fail('model_type', `is ${JSON.stringify(top.model_type)}; this backbone implements 'idefics3' (Idefics3ForConditionalGeneration, SmolVLM included) and 'smolvlm'`);
  }
  const v = r.section(top, 'vision_config', true);
  const t = r.section(top, 'text_config', true);

  const vp = 'vision_config.';
  const hidden = r.int(v, vp, 'hidden_size', VISION_DEFAULTS);
  const heads = r.int(v, vp, 'num_attention_heads', VISION_DEFAULTS);
  if (hidden % heads !== 0) r.fail(`${vp}hidden_size`, `${hidden} is not divisible by ${vp}num_attention_heads ${heads}`);
  const patchSize = r.int(v, vp, 'patch_size', VISION_DEFAULTS);
  const imageSize = r.int(v, vp, 'image_size', VISION_DEFAULTS);
  const vision: VisionConfig = {
    hiddenSize: hidden,
    intermediateSize: r.int(v, vp, 'intermediate_size', VISION_DEFAULTS),
    numLayers: r.int(v, vp, 'num_hidden_layers', VISION_DEFAULTS, 0),
    numHeads: heads,
    headDim: hidden / heads,
    numChannels: r.int(v, vp, 'num_channels', VISION_DEFAULTS),
    imageSize,
    patchSize,
    numPatchesPerSide: Math.floor(imageSize / patchSize),
    hiddenAct: r.act(v, vp, 'hidden_act', VISION_DEFAULTS),
    layerNormEps: r.num(v, vp, 'layer_norm_eps', VISION_DEFAULTS),
  };
  if (vision.numPatchesPerSide < 1) r.fail(`${vp}image_size`, `${imageSize} is smaller than ${vp}patch_size ${patchSize}`);

  const tp = 'text_config.';
  if (t.model_type !== undefined && t.model_type !== 'llama') r.fail(`${tp}model_type`, `is ${JSON.stringify(t.model_type)}; only a Llama text model is implemented`);
  const tHidden = r.int(t, tp, 'hidden_size', LLAMA_DEFAULTS);
  const tHeads = r.int(t, tp, 'num_attention_heads', LLAMA_DEFAULTS);
  const tKv = r.int(t, tp, 'num_key_value_heads', { num_key_value_heads: tHeads });
  if (tHeads % tKv !== 0) r.fail(`${tp}num_attention_heads`, `${tHeads} is not a multiple of ${tp}num_key_value_heads ${tKv}`);
  let headDim = r.intOrNull(t, tp, 'head_dim', LLAMA_DEFAULTS);
  if (headDim === null) {
    if (tHidden % tHeads !== 0) r.fail(`${tp}hidden_size`, `${tHidden} is not divisible by ${tp}num_attention_heads ${tHeads} (and head_dim is not given)`);
    headDim = tHidden / tHeads;
  }
  if (headDim % 2 !== 0) r.fail(`${tp}head_dim`, `${headDim} must be even for rotary embeddings`);
  r.falseOnly(t, tp, 'attention_bias', LLAMA_DEFAULTS, 'a bias on the attention projections');
  r.falseOnly(t, tp, 'mlp_bias', LLAMA_DEFAULTS, 'a bias on the MLP projections');
  const text: TextConfig = {
    vocabSize: r.int(t, tp, 'vocab_size', LLAMA_DEFAULTS),
    hiddenSize: tHidden,
    intermediateSize: r.int(t, tp, 'intermediate_size', LLAMA_DEFAULTS),
    numLayers: r.int(t, tp, 'num_hidden_layers', LLAMA_DEFAULTS, 0),
    numHeads: tHeads,
    numKvHeads: tKv,
    headDim,
    hiddenAct: r.act(t, tp, 'hidden_act', LLAMA_DEFAULTS),
    maxPositionEmbeddings: r.int(t, tp, 'max_position_embeddings', LLAMA_DEFAULTS),
    rmsNormEps: r.num(t, tp, 'rms_norm_eps', LLAMA_DEFAULTS),
    ropeTheta: ropeTheta(t, tp, r),
    // Llama has no sliding window.
    slidingWindow: null,
    padTokenId: r.intOrNull(t, tp, 'pad_token_id', LLAMA_DEFAULTS),
    bosTokenId: r.intOrNull(t, tp, 'bos_token_id', LLAMA_DEFAULTS),
  };

  const scaleFactor = r.int(top, '', 'scale_factor', { scale_factor: 2 });
  const side = vision.numPatchesPerSide;
  if (side % scaleFactor !== 0) r.fail('scale_factor', `${scaleFactor} does not divide the ${side} patches per side of vision_config (image_size / patch_size)`);
  const imageTokenId = r.int(top, '', 'image_token_id', { image_token_id: 128257 }, 0);
  if (imageTokenId >= text.vocabSize) r.fail('image_token_id', `${imageTokenId} is outside the vocabulary (text_config.vocab_size ${text.vocabSize})`);
  // Tied when the top level or the text config says so (transformers 5 reads the text config's flag
  // through get_text_config(); SmolVLM's files set both).
  const tieTop = top.tie_word_embeddings;
  const tieText = t.tie_word_embeddings;
  for (const [key, val] of [['tie_word_embeddings', tieTop], [`${tp}tie_word_embeddings`, tieText]] as const) {
    if (val !== undefined && typeof val !== 'boolean') r.fail(key, `must be true or false, got ${JSON.stringify(val)}`);
  }
  const tieWordEmbeddings = tieTop === true || tieText === true;
  return {
    vision,
    text,
    scaleFactor,
    imageSeqLen: (side / scaleFactor) ** 2,
    imageTokenId,
    tieWordEmbeddings,
    modelType: top.model_type as 'idefics3' | 'smolvlm',
    defaulted: r.defaulted,
  };
}
