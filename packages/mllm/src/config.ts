/**
 * The parts of a vision-language config.json both backbone families read the same way: the SigLIP
 * vision_config, the Llama / Mistral text_config (GQA, head_dim, RoPE from transformers 4.x or 5.x
 * keys: unscaled, or Llama 3.1's "llama3" scaling for the families that allow it) and the reader that gives them the meaning transformers gives the file. A key the
 * file omits takes the default of the family's transformers config class (passed in as `defaults`)
 * and is listed in `defaulted`; a value of the wrong type or an architecture not computed here fails
 * naming the key, through the family's own error class.
 */

export type Activation = 'silu' | 'gelu_pytorch_tanh' | 'gelu' | 'gelu_new' | 'relu';
export const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu_pytorch_tanh', 'gelu', 'gelu_new', 'relu'];

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
  /** std of the random initialisation (transformers' initializer_range; 0.02 when absent). */
  readonly initializerRange: number;
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
  /** The RoPE base (= rope.theta), kept for the callers that read only the base. */
  readonly ropeTheta: number;
  /** RoPE: base and, for "llama3", the scaling of the inverse frequencies (ropeInvFreq in ops.ts). */
  readonly rope: RopeConfig;
  /** Mistral's sliding window (null = none, as Llama); the forward pass checks sequences fit inside it. */
  readonly slidingWindow: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  /** std of the random initialisation (transformers' initializer_range; 0.02 when absent). */
  readonly initializerRange: number;
  /** Llama's attention_bias: q/k/v/o projections carry a bias (Mistral: never). */
  readonly attentionBias: boolean;
  /** Llama's mlp_bias: gate/up/down projections carry a bias (Mistral: never). */
  readonly mlpBias: boolean;
}

/** RoPE types computed here; every other rope_type (linear, dynamic, yarn, longrope, ...) is refused naming the key. */
export type RopeType = 'default' | 'llama3';

/**
 * RoPE parameters as transformers' ROPE_INIT_FUNCTIONS read them: "default" is the base alone;
 * "llama3" (Llama 3.1, _compute_llama3_parameters) divides the low frequencies by `factor` and
 * interpolates the middle band (wavelengths between original_max_position_embeddings /
 * high_freq_factor and / low_freq_factor). Its attention factor is 1, so cos and sin are unscaled.
 */
export type RopeConfig =
  | { readonly type: 'default'; readonly theta: number }
  | {
      readonly type: 'llama3';
      readonly theta: number;
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/** What the vision tower reads of a model's config. */
export interface VisionModelConfig {
  readonly vision: VisionConfig;
}

/** What the decoder and the input-embedding merge read of a model's config. */
export interface DecoderModelConfig {
  readonly text: TextConfig;
  readonly imageTokenId: number;
}

export type Json = Record<string, unknown>;

/** Reads keys of a config.json with transformers' defaults, failing with the key named. */
export class ConfigReader {
  /** Dotted keys that were absent and took the transformers default. */
  readonly defaulted: string[] = [];
  constructor(
    private readonly file: string,
    private readonly makeError: (message: string) => Error,
  ) {}

  fail(key: string, message: string): never {
    throw this.makeError(`${this.file}: '${key}' ${message}`);
  }

  /** A required sub-object (`missing` says what the file should have). */
  section(json: Json, key: string, missing: string): Json {
    const v = json[key];
    if (v === undefined || v === null) this.fail(key, `is missing (${missing})`);
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

  /**
   * initializer_range: only the std of a random initialisation (it changes no computation on loaded
   * weights), so an absent key takes transformers' 0.02 without being listed in `defaulted`.
   */
  initializerRange(json: Json, prefix: string): number {
    return json.initializer_range === undefined ? 0.02 : this.num(json, prefix, 'initializer_range', {});
  }
}

/** vision_config (SigLIP) of either family; `defaults` are its transformers vision config class's. */
export function parseVisionConfig(r: ConfigReader, v: Json, defaults: Json, vp = 'vision_config.'): VisionConfig {
  const hidden = r.int(v, vp, 'hidden_size', defaults);
  const heads = r.int(v, vp, 'num_attention_heads', defaults);
  if (hidden % heads !== 0) r.fail(`${vp}hidden_size`, `${hidden} is not divisible by ${vp}num_attention_heads ${heads}`);
  const patchSize = r.int(v, vp, 'patch_size', defaults);
  const imageSize = r.int(v, vp, 'image_size', defaults);
  const vision: VisionConfig = {
    hiddenSize: hidden,
    intermediateSize: r.int(v, vp, 'intermediate_size', defaults),
    numLayers: r.int(v, vp, 'num_hidden_layers', defaults, 0),
    numHeads: heads,
    headDim: hidden / heads,
    numChannels: r.int(v, vp, 'num_channels', defaults),
    imageSize,
    patchSize,
    numPatchesPerSide: Math.floor(imageSize / patchSize),
    hiddenAct: r.act(v, vp, 'hidden_act', defaults),
    layerNormEps: r.num(v, vp, 'layer_norm_eps', defaults),
    initializerRange: r.initializerRange(v, vp),
  };
  if (vision.numPatchesPerSide < 1) r.fail(`${vp}image_size`, `${imageSize} is smaller than ${vp}patch_size ${patchSize}`);
  return vision;
}

/** How one family's text model differs in its config.json. */
export interface TextFamily {
  /** text_config.model_type this family computes ('mistral', 'llama'), and its name in errors. */
  readonly modelType: string;
  readonly name: string;
  /** Defaults of its transformers config class. */
  readonly defaults: Json;
  /** num_key_value_heads when absent and not in `defaults` (Llama: the number of heads). */
  readonly kvHeadsDefaultsToHeads?: boolean;
  /** Whether the family has a sliding window (Mistral) or none (Llama: always null). */
  readonly slidingWindow: boolean;
  /** Whether config.json may give the projections biases (Llama's attention_bias and mlp_bias; Mistral has none). */
  readonly biases?: boolean;
  /** Scaled RoPE types this family computes besides 'default' (none when absent). */
  readonly ropeTypes?: readonly RopeType[];
  /** Appended to the refusal of a RoPE type the family does not compute. */
  readonly ropeNote?: string;
}

/** text_config of a Llama / Mistral decoder. */
export function parseTextConfig(r: ConfigReader, t: Json, family: TextFamily, tp = 'text_config.'): TextConfig {
  const d = family.defaults;
  if (t.model_type !== undefined && t.model_type !== family.modelType) r.fail(`${tp}model_type`, `is ${JSON.stringify(t.model_type)}; only a ${family.name} text model is implemented`);
  const tHidden = r.int(t, tp, 'hidden_size', d);
  const tHeads = r.int(t, tp, 'num_attention_heads', d);
  const tKv = r.int(t, tp, 'num_key_value_heads', family.kvHeadsDefaultsToHeads ? { num_key_value_heads: tHeads } : d);
  if (tHeads % tKv !== 0) r.fail(`${tp}num_attention_heads`, `${tHeads} is not a multiple of ${tp}num_key_value_heads ${tKv}`);
  let headDim = r.intOrNull(t, tp, 'head_dim', d);
  if (headDim === null) {
    if (tHidden % tHeads !== 0) r.fail(`${tp}hidden_size`, `${tHidden} is not divisible by ${tp}num_attention_heads ${tHeads} (and head_dim is not given)`);
    headDim = tHidden / tHeads;
  }
  if (headDim % 2 !== 0) r.fail(`${tp}head_dim`, `${headDim} must be even for rotary embeddings`);
  const maxPositionEmbeddings = r.int(t, tp, 'max_position_embeddings', d);
  const rope = ropeConfig(r, t, tp, { types: family.ropeTypes ?? [], note: family.ropeNote ?? '', maxPositionEmbeddings });
  return {
    vocabSize: r.int(t, tp, 'vocab_size', d),
    hiddenSize: tHidden,
    intermediateSize: r.int(t, tp, 'intermediate_size', d),
    numLayers: r.int(t, tp, 'num_hidden_layers', d, 0),
    numHeads: tHeads,
    numKvHeads: tKv,
    headDim,
    hiddenAct: r.act(t, tp, 'hidden_act', d),
    maxPositionEmbeddings,
    rmsNormEps: r.num(t, tp, 'rms_norm_eps', d),
    ropeTheta: rope.theta,
    rope,
    slidingWindow: family.slidingWindow ? r.intOrNull(t, tp, 'sliding_window', d) : null,
    padTokenId: r.intOrNull(t, tp, 'pad_token_id', d),
    bosTokenId: r.intOrNull(t, tp, 'bos_token_id', d),
    initializerRange: r.initializerRange(t, tp),
    attentionBias: family.biases ? r.bool(t, tp, 'attention_bias', d) : false,
    mlpBias: family.biases ? r.bool(t, tp, 'mlp_bias', d) : false,
  };
}

/**
 * The RoPE parameters of a text_config, as transformers 5 standardises them
 * (RotaryEmbeddingConfigMixin.convert_rope_params_to_dict, standardize_rope_params): transformers
 * 4.x files have `rope_theta` and `rope_scaling` ({type | rope_type, ...}), 5.x files `rope_parameters`
 * ({rope_type, rope_theta, ...}); a non-empty rope_scaling takes precedence over rope_parameters, the
 * dict's rope_theta over the top-level one (default 10000), and a missing rope_type is "default".
 * For "llama3", factor, low_freq_factor and high_freq_factor are required and
 * original_max_position_embeddings defaults to text_config.original_max_position_embeddings, then
 * max_position_embeddings (listed in `defaulted`). A type not in `opts.types` (or not computed
 * here) fails naming the key; so does a partial_rotary_factor other than 1.
 */
export function ropeConfig(
  r: ConfigReader,
  t: Json,
  tp: string,
  opts: { types?: readonly RopeType[]; note?: string; maxPositionEmbeddings?: number } = {},
): RopeConfig {
  let key: 'rope_scaling' | 'rope_parameters' | null = null;
  for (const k of ['rope_parameters', 'rope_scaling'] as const) {
    const obj = t[k];
    if (obj === undefined || obj === null) continue;
    if (typeof obj !== 'object' || Array.isArray(obj)) r.fail(`${tp}${k}`, `must be an object, got ${JSON.stringify(obj)}`);
  }
  const scaling = t.rope_scaling as Json | null | undefined;
  if (scaling && Object.keys(scaling).length > 0) key = 'rope_scaling';
  else if (t.rope_parameters) key = 'rope_parameters';
  const obj: Json = key ? (t[key] as Json) : {};
  const kp = `${tp}${key ?? 'rope_parameters'}.`;
  const typeKey = obj.rope_type !== undefined ? 'rope_type' : obj.type !== undefined ? 'type' : 'rope_type';
  const type = obj.rope_type ?? obj.type ?? 'default';
  const allowed: readonly string[] = ['default', ...(opts.types ?? []).filter((x) => x !== 'default')];
  if (!allowed.includes(type as string)) {
    const what = allowed.length > 1 ? `the RoPE types implemented are ${allowed.map((x) => JSON.stringify(x)).join(', ')}` : 'only the default (unscaled) RoPE is implemented';
    r.fail(`${kp}${typeKey}`, `is ${JSON.stringify(type)}; ${what}${opts.note ?? ''}`);
  }
  for (const [k, where] of [['partial_rotary_factor', obj], ['partial_rotary_factor', t]] as const) {
    const v = where[k];
    if (v !== undefined && v !== null && v !== 1) r.fail(where === obj ? `${kp}${k}` : `${tp}${k}`, `is ${JSON.stringify(v)}; only a rotary embedding over the whole head (1.0) is implemented`);
  }
  let theta: number;
  if (obj.rope_theta !== undefined) {
    if (typeof obj.rope_theta !== 'number' || !Number.isFinite(obj.rope_theta) || !(obj.rope_theta > 0)) r.fail(`${kp}rope_theta`, `must be a positive number, got ${JSON.stringify(obj.rope_theta)}`);
    theta = obj.rope_theta;
  } else {
    theta = r.num(t, tp, 'rope_theta', { rope_theta: 10000 });
  }
  if (type !== 'llama3') return { type: 'default', theta };
  const need = (k: string): number => r.num(obj, kp, k, {});
  const factor = need('factor');
  const lowFreqFactor = need('low_freq_factor');
  const highFreqFactor = need('high_freq_factor');
  if (!(highFreqFactor > lowFreqFactor)) r.fail(`${kp}high_freq_factor`, `${highFreqFactor} must be greater than ${kp}low_freq_factor ${lowFreqFactor}`);
  const fallback = t.original_max_position_embeddings ?? opts.maxPositionEmbeddings;
  const originalMaxPositionEmbeddings =
    obj.original_max_position_embeddings === undefined && fallback !== undefined
      ? r.int({}, kp, 'original_max_position_embeddings', { original_max_position_embeddings: fallback })
      : r.int(obj, kp, 'original_max_position_embeddings', {});
  return { type: 'llama3', theta, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings };
}

/** rope_theta from transformers 4.x (`rope_theta`, `rope_scaling`) or 5.x (`rope_parameters`); unscaled RoPE only. */
export function ropeTheta(r: ConfigReader, t: Json, tp: string, note = ''): number {
  return ropeConfig(r, t, tp, { note }).theta;
}
