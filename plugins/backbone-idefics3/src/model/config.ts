/**
 * Idefics3Config from a checkpoint's config.json (HuggingFaceM4/Idefics3-8B-Llama3 and SmolVLM
 * 256M / 500M / 2.2B, whose config.json says model_type "idefics3"; SmolVLM2's "smolvlm" has the
 * same computation for images), with the meaning transformers gives the file: a key the file
 * omits takes the default of its transformers config class (Idefics3VisionConfig, LlamaConfig).
 *
 * The vision and text parts are @userpref/mllm's VisionConfig / TextConfig, read by its shared
 * parsers (as IDEFICS2's are), so its SigLIP tower and decoder run them unchanged. What differs from Mistral is parameterised
 * there already: rope_theta (10000 for Llama defaults, 500000 Llama 3, 100000 / 273768 SmolLM2),
 * tied embeddings (SmolVLM 256M / 500M) and no sliding window (null). Llama 3.1's scaled RoPE
 * (rope_type "llama3", as in Idefics3-8B-Llama3) is computed as transformers does (ropeInvFreq in
 * @userpref/mllm); other scaled RoPE types (linear, dynamic, yarn, longrope, ...) fail naming the key.
 */
import { ConfigReader, parseTextConfig, parseVisionConfig, type Json, type TextConfig, type TextFamily, type VisionConfig } from '@userpref/mllm';

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

/** The Llama text model in config.json: no sliding window, projection biases as attention_bias / mlp_bias say, default or "llama3" RoPE. */
const LLAMA: TextFamily = {
  modelType: 'llama',
  name: 'Llama',
  defaults: LLAMA_DEFAULTS,
  kvHeadsDefaultsToHeads: true,
  slidingWindow: false,
  biases: true,
  ropeTypes: ['llama3'],
};

/** Parses a config.json object; `file` names it in errors. */
export function parseIdefics3Config(json: unknown, file = 'config.json'): Idefics3Config {
  const r = new ConfigReader(file, (message) => new Idefics3ConfigError(message));
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Idefics3ConfigError(`${file}: not a JSON object`);
  const top = json as Json;
  if (top.model_type !== 'idefics3' && top.model_type !== 'smolvlm') {
    r.fail('model_type', `is ${JSON.stringify(top.model_type)}; this backbone implements 'idefics3' (Idefics3ForConditionalGeneration, SmolVLM included) and 'smolvlm'`);
  }
  const missing = 'an Idefics3 config.json has vision_config and text_config';
  const v = r.section(top, 'vision_config', missing);
  const t = r.section(top, 'text_config', missing);
  const vision = parseVisionConfig(r, v, VISION_DEFAULTS);
  const text = parseTextConfig(r, t, LLAMA);
  const tp = 'text_config.';

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
