/**
 * Idefics2Config from a checkpoint's config.json, with the meaning transformers gives the file:
 * a key the file omits takes the default of its transformers config class (Idefics2VisionConfig,
 * Idefics2PerceiverConfig, MistralConfig), because that is what every other reader of the same
 * file does (the released idefics2-8b config.json leaves many Mistral sizes at their defaults).
 * What has no such default (model_type, the three sub-configs) must be present; a value of the
 * wrong type, an architecture this implementation does not compute (model_type, activation, RoPE
 * scaling) or inconsistent sizes fail with the key named. `defaulted` lists the keys filled in.
 */

import { ConfigReader, parseTextConfig, parseVisionConfig, type Activation, type Json, type TextConfig, type VisionConfig } from '@userpref/mllm';

export type { Activation, TextConfig, VisionConfig } from '@userpref/mllm';

export interface PerceiverConfig {
  readonly hiddenSize: number;
  readonly hiddenAct: Activation;
  readonly numLatents: number;
  readonly depth: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly numKvHeads: number;
  readonly rmsNormEps: number;
  /** std of the random initialisation (initializer_range; 0.02 when absent). */
  readonly initializerRange: number;
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

/**
 * The Mistral text model of IDEFICS2 in config.json. Unscaled RoPE only: the shared decoder would
 * compute Llama 3.1's "llama3" scaling for Mistral too (transformers' MistralModel uses the same
 * ROPE_INIT_FUNCTIONS), but no IDEFICS2 checkpoint uses it and no golden checks it through
 * MistralModel, so a scaled rope_type stays refused, naming the key (ropeTypes left empty).
 */
const MISTRAL = { modelType: 'mistral', name: 'Mistral', defaults: MISTRAL_DEFAULTS, slidingWindow: true } as const;

/** Parses a config.json object; `file` names it in errors. */
export function parseIdefics2Config(json: unknown, file = 'config.json'): Idefics2Config {
  const r = new ConfigReader(file, (message) => new Idefics2ConfigError(message));
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Idefics2ConfigError(`${file}: not a JSON object`);
  const top = json as Json;
  if (top.model_type === undefined) r.fail('model_type', "is missing (expected 'idefics2')");
  if (top.model_type !== 'idefics2') r.fail('model_type', `is ${JSON.stringify(top.model_type)}; this backbone implements 'idefics2' (Idefics2ForConditionalGeneration) only`);

  const missing = 'an IDEFICS2 config.json has vision_config, perceiver_config and text_config';
  const v = r.section(top, 'vision_config', missing);
  const p = r.section(top, 'perceiver_config', missing);
  const t = r.section(top, 'text_config', missing);
  const vision = parseVisionConfig(r, v, VISION_DEFAULTS);
  const text = parseTextConfig(r, t, MISTRAL);

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
    initializerRange: r.initializerRange(p, pp),
  };

  const imageTokenId = r.int(top, '', 'image_token_id', { image_token_id: 32001 }, 0);
  if (imageTokenId >= text.vocabSize) r.fail('image_token_id', `${imageTokenId} is outside the vocabulary (text_config.vocab_size ${text.vocabSize})`);
  const tie = r.bool(top, '', 'tie_word_embeddings', { tie_word_embeddings: false });
  return { vision, perceiver, text, imageTokenId, tieWordEmbeddings: tie, defaulted: r.defaulted };
}
