/**
 * The options of the 'idefics2' backbone: this one schema validates run configs, fills defaults,
 * documents the options (--help, the published README), and gives their TypeScript type and the
 * DEFAULT_BACKBONE_OPTIONS constant, so an option or a default is written once, here.
 */
import { PATH_FORMAT, optionDefaults, type OptionsOf } from '@userpref/core';
import { PAPER_TARGET_MODULES } from './lora';

export const idefics2OptionsSchema = {
  type: 'object',
  properties: {
    path: { type: 'string', format: PATH_FORMAT, description: 'Checkpoint directory (config.json, model.safetensors or shards, tokenizer and processor files), relative to the config file.' },
    lora: {
      type: 'object',
      description: 'LoRA of the paper (PEFT semantics: scale alpha/r, dropout on the input in training only, B = 0 at init).',
      properties: {
        r: { type: 'integer', minimum: 1, default: 8, description: 'Rank.' },
        alpha: { type: 'number', exclusiveMinimum: 0, default: 8, description: 'lora_alpha; scale = alpha / r.' },
        dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.1, description: 'lora_dropout (training only).' },
        targetModules: { type: 'string', default: PAPER_TARGET_MODULES, description: 'Regex that must match a whole Hugging Face module name (re.fullmatch, as PEFT).' },
        init: { enum: ['gaussian', 'zeros'], default: 'gaussian', description: "'gaussian': A ~ N(0, std 1/r), B = 0 (PEFT init_lora_weights='gaussian')." },
      },
      default: {},
      additionalProperties: false,
    },
    adapterPath: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'PEFT adapter directory to load at init (e.g. the stage-1 LoRA for stage 2).' },
    mergeAdapter: { type: 'boolean', default: false, description: 'Fold the adapter into the weights after loading (inference only: no trainable LoRA remains).' },
    usePrompt: { type: 'boolean', default: true, description: "Put \"The prompt is '...'\" in the user turns (the original's --use_prompt, parsed as a real boolean)." },
    maxPromptLen: { type: ['integer', 'null'], minimum: 0, default: 100, description: 'Cut prompts to this many characters (code points, as the original); null keeps them whole.' },
    dtype: { enum: ['float32'], default: 'float32', description: 'Compute dtype (weights in bf16/f16/f32 files are converted on load).' },
    imageCacheBytes: { type: 'integer', minimum: 0, default: 2 ** 30, description: 'Memory budget in bytes of the vision-tower output cache (LRU by content hash, outside the wasm heap; 0 = no memory cache).' },
    imageCacheDir: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'Directory of an on-disk vision-output cache (safetensors per image, named by content hash + a fingerprint of the vision weights), reused across runs; relative to the config file. null = memory only.' },
    sharedPrefix: { type: 'boolean', default: true, description: 'Run the reference history shared by the liked- and disliked-target sequences once (KV prefix) and only the two target turns separately; false runs two full sequences (same logits, slower).' },
    baseBits: { enum: [32, 8, 4], default: 32, description: 'Frozen base precision: 32 = float32; 8 = int8 absmax per output channel; 4 = NF4 with blocks of 64 (QLoRA). Every Linear but the LM head is held packed (codes in float32 words) and unpacked one layer at a time; LoRA stays float32.' },
    doubleQuant: { type: 'boolean', default: false, description: "4-bit base: quantize the NF4 block absmaxes again (QLoRA's double quantization; int8 blocks of 256 here)." },
    checkpointing: { type: 'boolean', default: false, description: 'Activation checkpointing in training: each decoder, connector and vision layer keeps only its input and is recomputed in the backward (less memory, one more forward).' },
  },
  required: ['path'],
  additionalProperties: false,
} as const;

/**
 * The options after validation: `path` (checkpoint directory, relative to the run's baseDir),
 * `lora` (r, alpha, dropout, targetModules, init), `adapterPath` and `imageCacheDir` (or null),
 * `mergeAdapter`, `usePrompt`, `maxPromptLen` (or null), `dtype`, `imageCacheBytes`,
 * `sharedPrefix`, `baseBits` (32, 8 or 4), `doubleQuant`, `checkpointing`.
 */
export type Idefics2BackboneOptions = OptionsOf<typeof idefics2OptionsSchema>;

/** Every option but `path`, as the schema's defaults give it. */
export const DEFAULT_BACKBONE_OPTIONS = optionDefaults(idefics2OptionsSchema) as Omit<Idefics2BackboneOptions, 'path'>;
