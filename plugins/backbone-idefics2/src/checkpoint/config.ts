/**
 * Presets and the JSON configuration files of a random IDEFICS2 checkpoint, shaped like
 * HuggingFaceM4/idefics2-8b's: config.json (Idefics2Config with vision_config / perceiver_config /
 * text_config), preprocessor_config.json (Idefics2ImageProcessor) and processor_config.json
 * (Idefics2Processor). Field names and nesting follow transformers' configuration_idefics2.py;
 * sub-config model types are the ones current transformers writes ("idefics2_vision",
 * "idefics2_perceiver", "mistral"). Model code must read every size from these files.
 */
import { IDEFICS2_CHAT_TEMPLATE } from './tokenizer';
import { TORCH_DTYPE, type WeightDtype } from '@userpref/safetensors';

export type PresetName = 'tiny' | 'small';
export type { WeightDtype } from '@userpref/safetensors';

export interface Idefics2Sizes {
  vision: { hiddenSize: number; intermediateSize: number; layers: number; heads: number; patchSize: number };
  perceiver: { latents: number; depth: number; heads: number; headDim: number; kvHeads: number };
  text: { hiddenSize: number; intermediateSize: number; layers: number; heads: number; kvHeads: number; maxPositions: number };
  /** Base BPE vocabulary; the three IDEFICS2 added tokens come on top. */
  baseVocabSize: number;
  /** Image processor: resize so the longer side is <= longestEdge and each side >= shortestEdge. */
  image: { shortestEdge: number; longestEdge: number };
}

/**
 * See the table at the top of cli.ts. idefics2-8b for comparison: vision 1152 x 27 layers
 * (patch 14, image_size 980), perceiver 64 latents x 3 layers (16 heads x 96, 4 KV heads),
 * Mistral 4096 x 32 layers (32 heads / 8 KV), intermediate 14336, vocab 32003, images 378..980.
 */
export const PRESETS: Record<PresetName, Idefics2Sizes> = {
  tiny: {
    vision: { hiddenSize: 32, intermediateSize: 64, layers: 2, heads: 2, patchSize: 4 },
    perceiver: { latents: 8, depth: 2, heads: 4, headDim: 16, kvHeads: 2 },
    text: { hiddenSize: 64, intermediateSize: 128, layers: 2, heads: 4, kvHeads: 2, maxPositions: 4096 },
    baseVocabSize: 397,
    image: { shortestEdge: 28, longestEdge: 32 },
  },
  small: {
    vision: { hiddenSize: 64, intermediateSize: 256, layers: 2, heads: 4, patchSize: 8 },
    perceiver: { latents: 16, depth: 2, heads: 4, headDim: 32, kvHeads: 2 },
    text: { hiddenSize: 128, intermediateSize: 384, layers: 2, heads: 4, kvHeads: 2, maxPositions: 4096 },
    baseVocabSize: 397,
    image: { shortestEdge: 56, longestEdge: 64 },
  },
};


/** initializer_range of every sub-config (as idefics2-8b); also the std of the random weights. */
export const INITIALIZER_RANGE = 0.02;

export interface ConfigIds {
  vocabSize: number;
  imageTokenId: number;
  bos: number;
  eos: number;
  pad: number;
}

/** config.json: Idefics2Config. */
export function modelConfig(preset: PresetName, sizes: Idefics2Sizes, ids: ConfigIds, dtype: WeightDtype): Record<string, unknown> {
  const { vision, perceiver, text } = sizes;
  if (text.hiddenSize % text.heads !== 0) throw new Error(`preset ${preset}: text hidden ${text.hiddenSize} not divisible by ${text.heads} heads`);
  if (vision.hiddenSize % vision.heads !== 0) throw new Error(`preset ${preset}: vision hidden ${vision.hiddenSize} not divisible by ${vision.heads} heads`);
  if (sizes.image.longestEdge % vision.patchSize !== 0) throw new Error(`preset ${preset}: longest edge ${sizes.image.longestEdge} is not a multiple of patch ${vision.patchSize}`);
  return {
    _name_or_path: `userpref/idefics2-random-${preset}`,
    architectures: ['Idefics2ForConditionalGeneration'],
    image_token_id: ids.imageTokenId,
    model_type: 'idefics2',
    perceiver_config: {
      attention_dropout: 0.0,
      hidden_act: 'silu',
      // Must equal text_config.hidden_size (the resampler runs in the text width).
      hidden_size: text.hiddenSize,
      initializer_range: INITIALIZER_RANGE,
      model_type: 'idefics2_perceiver',
      num_key_value_heads: perceiver.kvHeads,
      resampler_depth: perceiver.depth,
      resampler_head_dim: perceiver.headDim,
      resampler_n_heads: perceiver.heads,
      resampler_n_latents: perceiver.latents,
      // idefics2-8b leaves the perceiver at its default 1e-6 while the text model uses 1e-5.
      rms_norm_eps: 1e-6,
    },
    text_config: {
      attention_dropout: 0.0,
      bos_token_id: ids.bos,
      eos_token_id: ids.eos,
      head_dim: text.hiddenSize / text.heads,
      hidden_act: 'silu',
      hidden_size: text.hiddenSize,
      initializer_range: INITIALIZER_RANGE,
      intermediate_size: text.intermediateSize,
      max_position_embeddings: text.maxPositions,
      model_type: 'mistral',
      num_attention_heads: text.heads,
      num_hidden_layers: text.layers,
      num_key_value_heads: text.kvHeads,
      pad_token_id: ids.pad,
      rms_norm_eps: 1e-5,
      rope_theta: 10000.0,
      sliding_window: 4096,
      tie_word_embeddings: false,
      torch_dtype: TORCH_DTYPE[dtype],
      use_cache: true,
      vocab_size: ids.vocabSize,
    },
    tie_word_embeddings: false,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
    vision_config: {
      attention_dropout: 0.0,
      hidden_act: 'gelu_pytorch_tanh',
      hidden_size: vision.hiddenSize,
      // Largest side the position-embedding grid covers (image_size / patch_size per side).
      image_size: sizes.image.longestEdge,
      initializer_range: INITIALIZER_RANGE,
      intermediate_size: vision.intermediateSize,
      layer_norm_eps: 1e-6,
      model_type: 'idefics2_vision',
      num_attention_heads: vision.heads,
      num_channels: 3,
      num_hidden_layers: vision.layers,
      patch_size: vision.patchSize,
    },
  };
}

/** preprocessor_config.json: Idefics2ImageProcessor without image splitting, SigLIP normalisation. */
export function preprocessorConfig(sizes: Idefics2Sizes): Record<string, unknown> {
  return {
    do_convert_rgb: true,
    do_image_splitting: false,
    do_normalize: true,
    do_pad: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'Idefics2ImageProcessor',
    image_std: [0.5, 0.5, 0.5],
    processor_class: 'Idefics2Processor',
    resample: 2, // PIL BILINEAR
    rescale_factor: 1 / 255,
    size: { longest_edge: sizes.image.longestEdge, shortest_edge: sizes.image.shortestEdge },
  };
}

/** processor_config.json: Idefics2Processor (image_seq_len = perceiver latents). */
export function processorConfig(sizes: Idefics2Sizes): Record<string, unknown> {
  return {
    chat_template: IDEFICS2_CHAT_TEMPLATE,
    image_seq_len: sizes.perceiver.latents,
    processor_class: 'Idefics2Processor',
  };
}
