/**
 * Idefics2Config from a checkpoint's config.json, with the meaning transformers gives the file:
 * a key the file omits takes the default of its transformers config class (Idefics2VisionConfig,
 * Idefics2PerceiverConfig, MistralConfig), because that is what every other reader of the same
 * file does (the released idefics2-8b config.json leaves many Mistral sizes at their defaults).
 * What has no such default (model_type, the three sub-configs) must be present; a value of the
 * wrong type, an architecture this implementation does not compute (model_type, activation, RoPE
 * scaling) or inconsistent sizes fail with the key named. `defaulted` lists the keys filled in.
 */

export type Activation = 'silu' | 'gelu_pytorch_tanh' | 'gelu' | 'gelu_new' | 'relu';
const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu_pytorch_tanh', 'gelu', 'gelu_new', 'relu'];

export interface VisionConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly numChannels: number;
  /** Side of the position-embedding grid in pixels; numPatchesPerSide = imageSize / patchSize. */
  readonly imageSize: number;
  readonly patchSize: number;
  readonly numPatchesPerSide: number;
  readonly hiddenAct: Activation;
  readonly layerNormEps: number;
}

export interface PerceiverConfig {
  readonly hiddenSize: number;
  readonly hiddenAct: Activation;
  readonly numLatents: number;
  readonly depth: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly numKvHeads: number;
  readonly rmsNormEps: number;
}

export interface TextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly hiddenAct: Activation;
  readonly maxPositionEmbeddings: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** Mistral's sliding window (null = none); the forward pass checks sequences fit inside it. */
  readonly slidingWindow: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
}

export interface Idefics2Config {
  readonly vision: VisionConfig;
  readonly perceiver: PerceiverConfig;
  readonly text: TextConfig;
  readonly imageTokenId: number;
  readonly tieWordEmbeddings: boolean;
  /** Dotted keys that were absent and took the transformers default. */
  readonly defaulted: readonly string[];
}

export class Idefics2ConfigError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

type Json = Record<string, unknown>;

/** Defaults of transformers' config classes (configuration_idefics2.py, configuration_mistral.py). */
const VISION_DEFAULTS: Json = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'gelu_pytorch_tanh',
  layer_norm_eps: 1e-6,
};
const PERCEIVER_DEFAULTS: Json = {
  hidden_act: 'silu',
  hidden_size: 4096,
  rms_norm_eps: 1e-6,
  resampler_n_latents: 64,
  resampler_depth: 3,
  resampler_n_heads: 16,
  resampler_head_dim: 96,
  num_key_value_heads: 4,
};
const MISTRAL_DEFAULTS: Json = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: null,
  hidden_act: 'silu',
  max_position_embeddings: 4096 * 32,
  rms_norm_eps: 1e-6,
  sliding_window: 4096,
  pad_token_id: null,
  bos_token_id: 1,
  tie_word_embeddings: false,
};

class Reader {
  readonly defaulted: string[] = [];
  constructor(private readonly file: string) {}

  fail(key: string, message: string): never {
    throw new Idefics2ConfigError(`${this.file}: '${key}' ${message}`);
  }

  section(json: Json, key: string): Json {
    const v = json[key];
    if (v === undefined || v === null) this.fail(key, 'is missing (an IDEFICS2 config.json has vision_config, perceiver_config and text_config)');
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, `must be an object, got ${JSON.stringify(v)}`);
    return v as Json;
  }

  private raw(json: Json, prefix: string, key: string, defaults: Json): unknown {
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

  bool(json: Json, prefix: string, key: string, defaults: Json): boolean {
    const v = this.raw(json, prefix, key, defaults);
    if (typeof v !== 'boolean') this.fail(`${prefix}${key}`, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  act(json: Json, prefix: string, key: string, defaults: Json): Activation {
    const v = this.raw(json, prefix, key, defaults);
    if (!ACTIVATIONS.includes(v as Activation)) this.fail(`${prefix}${key}`, `is ${JSON.stringify(v)}; supported: ${ACTIVATIONS.join(', ')}`);
    return v as Activation;
  }
}

/** Parses a config.json object; `file` names it in errors. */
export function parseIdefics2Config(json: unknown, file = 'config.json'): Idefics2Config {
  const r = new Reader(file);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Idefics2ConfigError(`${file}: not a JSON object`);
  const top = json as Json;
  if (top.model_type === undefined) r.fail('model_type', "is missing (expected 'idefics2')");
  if (top.model_type !== 'idefics2') r.fail('model_type', `is ${JSON.stringify(top.model_type)}; this backbone implements 'idefics2' (Idefics2ForConditionalGeneration) only`);

  const v = r.section(top, 'vision_config');
  const p = r.section(top, 'perceiver_config');
  const t = r.section(top, 'text_config');

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
  if (t.model_type !== undefined && t.model_type !== 'mistral') r.fail(`${tp}model_type`, `is ${JSON.stringify(t.model_type)}; only a Mistral text model is implemented`);
  const tHidden = r.int(t, tp, 'hidden_size', MISTRAL_DEFAULTS);
  const tHeads = r.int(t, tp, 'num_attention_heads', MISTRAL_DEFAULTS);
  const tKv = r.int(t, tp, 'num_key_value_heads', MISTRAL_DEFAULTS);
  if (tHeads % tKv !== 0) r.fail(`${tp}num_attention_heads`, `${tHeads} is not a multiple of ${tp}num_key_value_heads ${tKv}`);
  let headDim = r.intOrNull(t, tp, 'head_dim', MISTRAL_DEFAULTS);
  if (headDim === null) {
    if (tHidden % tHeads !== 0) r.fail(`${tp}hidden_size`, `${tHidden} is not divisible by ${tp}num_attention_heads ${tHeads} (and head_dim is not given)`);
    headDim = tHidden / tHeads;
  }
  if (headDim % 2 !== 0) r.fail(`${tp}head_dim`, `${headDim} must be even for rotary embeddings`);
  const text: TextConfig = {
    vocabSize: r.int(t, tp, 'vocab_size', MISTRAL_DEFAULTS),
    hiddenSize: tHidden,
    intermediateSize: r.int(t, tp, 'intermediate_size', MISTRAL_DEFAULTS),
    numLayers: r.int(t, tp, 'num_hidden_layers', MISTRAL_DEFAULTS, 0),
    numHeads: tHeads,
    numKvHeads: tKv,
    headDim,
    hiddenAct: r.act(t, tp, 'hidden_act', MISTRAL_DEFAULTS),
    maxPositionEmbeddings: r.int(t, tp, 'max_position_embeddings', MISTRAL_DEFAULTS),
    rmsNormEps: r.num(t, tp, 'rms_norm_eps', MISTRAL_DEFAULTS),
    ropeTheta: ropeTheta(t, tp, r),
    slidingWindow: r.intOrNull(t, tp, 'sliding_window', MISTRAL_DEFAULTS),
    padTokenId: r.intOrNull(t, tp, 'pad_token_id', MISTRAL_DEFAULTS),
    bosTokenId: r.intOrNull(t, tp, 'bos_token_id', MISTRAL_DEFAULTS),
  };

  const pp = 'perceiver_config.';
  let pHidden = r.int(p, pp, 'hidden_size', PERCEIVER_DEFAULTS);
  let pEps = r.num(p, pp, 'rms_norm_eps', PERCEIVER_DEFAULTS);
  if (pHidden !== text.hiddenSize) {
    // Idefics2Config.__post_init__: the resampler runs in the text width; a mismatch means the file
    // relied on defaults, and transformers then takes hidden_size and rms_norm_eps from the text config.
    pHidden = text.hiddenSize;
    pEps = text.rmsNormEps;
    r.defaulted.push(`${pp}hidden_size`, `${pp}rms_norm_eps`);
  }
  const pHeads = r.int(p, pp, 'resampler_n_heads', PERCEIVER_DEFAULTS);
  const pKv = r.int(p, pp, 'num_key_value_heads', PERCEIVER_DEFAULTS);
  if (pHeads % pKv !== 0) r.fail(`${pp}resampler_n_heads`, `${pHeads} is not a multiple of ${pp}num_key_value_heads ${pKv}`);
  const perceiver: PerceiverConfig = {
    hiddenSize: pHidden,
    hiddenAct: r.act(p, pp, 'hidden_act', PERCEIVER_DEFAULTS),
    numLatents: r.int(p, pp, 'resampler_n_latents', PERCEIVER_DEFAULTS),
    depth: r.int(p, pp, 'resampler_depth', PERCEIVER_DEFAULTS, 0),
    numHeads: pHeads,
    headDim: r.int(p, pp, 'resampler_head_dim', PERCEIVER_DEFAULTS),
    numKvHeads: pKv,
    rmsNormEps: pEps,
  };

  const imageTokenId = r.int(top, '', 'image_token_id', { image_token_id: 32001 }, 0);
  if (imageTokenId >= text.vocabSize) r.fail('image_token_id', `${imageTokenId} is outside the vocabulary (text_config.vocab_size ${text.vocabSize})`);
  const tie = r.bool(top, '', 'tie_word_embeddings', { tie_word_embeddings: false });
  return { vision, perceiver, text, imageTokenId, tieWordEmbeddings: tie, defaulted: r.defaulted };
}

/** rope_theta from transformers 4.x (`rope_theta`, `rope_scaling`) or 5.x (`rope_parameters`). */
function ropeTheta(t: Json, tp: string, r: Reader): number {
  const params = t.rope_parameters as Json | null | undefined;
  const scaling = t.rope_scaling as Json | null | undefined;
  for (const [key, obj] of [
    ['rope_parameters', params],
    ['rope_scaling', scaling],
  ] as const) {
    if (obj === undefined || obj === null) continue;
    if (typeof obj !== 'object') r.fail(`${tp}${key}`, `must be an object, got ${JSON.stringify(obj)}`);
    const type = obj.rope_type ?? obj.type ?? 'default';
    if (type !== 'default') r.fail(`${tp}${key}.rope_type`, `is ${JSON.stringify(type)}; only the default (unscaled) RoPE is implemented`);
  }
  if (params && params.rope_theta !== undefined) {
    if (typeof params.rope_theta !== 'number' || !(params.rope_theta > 0)) r.fail(`${tp}rope_parameters.rope_theta`, `must be a positive number, got ${JSON.stringify(params.rope_theta)}`);
    return params.rope_theta;
  }
  return r.num(t, tp, 'rope_theta', { rope_theta: 10000 });
}
