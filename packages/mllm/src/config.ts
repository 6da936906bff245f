/**
 * The parts of a vision-language config.json both backbone families read the same way: the SigLIP
 * vision_config, the Llama / Mistral text_config (GQA, head_dim, unscaled RoPE from transformers
 * 4.x or 5.x keys) and the reader that gives them the meaning transformers gives the file. A key the
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
  readonly ropeTheta: number;
  /** Mistral's sliding window (null = none, as Llama); the forward pass checks sequences fit inside it. */
  readonly slidingWindow: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  /** std of the random initialisation (transformers' initializer_range; 0.02 when absent). */
  readonly initializerRange: number;
}

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

  /** A flag this implementation computes only when false (`what` names the feature). */
  falseOnly(json: Json, prefix: string, key: string, defaults: Json, what: string): void {
    const v = this.raw(json, prefix, key, defaults);
    if (v !== false) this.fail(`${prefix}${key}`, `is ${JSON.stringify(v)}; ${what} is not implemented`);
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
  /** Checks after the head sizes (e.g. Llama's attention_bias / mlp_bias must be false). */
  readonly check?: (r: ConfigReader, t: Json, tp: string) => void;
  /** Appended to the refusal of a scaled RoPE. */
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
  family.check?.(r, t, tp);
  return {
    vocabSize: r.int(t, tp, 'vocab_size', d),
    hiddenSize: tHidden,
    intermediateSize: r.int(t, tp, 'intermediate_size', d),
    numLayers: r.int(t, tp, 'num_hidden_layers', d, 0),
    numHeads: tHeads,
    numKvHeads: tKv,
    headDim,
    hiddenAct: r.act(t, tp, 'hidden_act', d),
    maxPositionEmbeddings: r.int(t, tp, 'max_position_embeddings', d),
    rmsNormEps: r.num(t, tp, 'rms_norm_eps', d),
    ropeTheta: ropeTheta(r, t, tp, family.ropeNote ?? ''),
    slidingWindow: family.slidingWindow ? r.intOrNull(t, tp, 'sliding_window', d) : null,
    padTokenId: r.intOrNull(t, tp, 'pad_token_id', d),
    bosTokenId: r.intOrNull(t, tp, 'bos_token_id', d),
    initializerRange: r.initializerRange(t, tp),
  };
}

/** rope_theta from transformers 4.x (`rope_theta`, `rope_scaling`) or 5.x (`rope_parameters`); unscaled RoPE only. */
export function ropeTheta(r: ConfigReader, t: Json, tp: string, note = ''): number {
  const params = t.rope_parameters as Json | null | undefined;
  for (const key of ['rope_parameters', 'rope_scaling'] as const) {
    const obj = t[key] as Json | null | undefined;
    if (obj === undefined || obj === null) continue;
    if (typeof obj !== 'object') r.fail(`${tp}${key}`, `must be an object, got ${JSON.stringify(obj)}`);
    const type = obj.rope_type ?? obj.type ?? 'default';
    if (type !== 'default') r.fail(`${tp}${key}.rope_type`, `is ${JSON.stringify(type)}; only the default (unscaled) RoPE is implemented${note}`);
  }
  if (params && params.rope_theta !== undefined) {
    if (typeof params.rope_theta !== 'number' || !(params.rope_theta > 0)) r.fail(`${tp}rope_parameters.rope_theta`, `must be a positive number, got ${JSON.stringify(params.rope_theta)}`);
    return params.rope_theta;
  }
  return r.num(t, tp, 'rope_theta', { rope_theta: 10000 });
}
