/**
 * The options of the 'idefics3' backbone: this one schema validates run configs, fills defaults,
 * documents the options (--help, the published README), and gives their TypeScript type and the
 * DEFAULT_IDEFICS3_OPTIONS constant, so an option or a default is written once, here.
 */
import { PATH_FORMAT, optionDefaults, type OptionsOf } from '@userpref/core';

/**
 * The paper's LoRA targets on this architecture: the attention and MLP projections of the text
 * model (as on IDEFICS2's Mistral) and the connector's modality projection (IDEFICS2's connector is
 * its SwiGLU projection + perceiver; here it is the one `proj` Linear). The vision tower stays frozen.
 */
export const IDEFICS3_TARGET_MODULES = '.*(text_model.*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj)|modality_projection\\.proj)$';

export const idefics3OptionsSchema = {
  type: 'object',
  properties: {
    path: { type: 'string', format: PATH_FORMAT, description: 'Checkpoint directory (config.json, model.safetensors or shards, tokenizer, chat template and processor files), relative to the config file.' },
    lora: {
      type: 'object',
      description: 'LoRA (PEFT semantics: scale alpha/r, dropout on the input in training only, B = 0 at init).',
      properties: {
        r: { type: 'integer', minimum: 1, default: 8, description: 'Rank.' },
        alpha: { type: 'number', exclusiveMinimum: 0, default: 8, description: 'lora_alpha; scale = alpha / r.' },
        dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.1, description: 'lora_dropout (training only).' },
        targetModules: { type: 'string', default: IDEFICS3_TARGET_MODULES, description: "Regex that must match a whole Hugging Face module name (re.fullmatch, as PEFT); the default is the paper's targets on this architecture (text-model attention and MLP projections, the connector's modality projection)." },
        init: { enum: ['gaussian', 'zeros'], default: 'gaussian', description: "'gaussian': A ~ N(0, std 1/r), B = 0 (PEFT init_lora_weights='gaussian')." },
      },
      default: {},
      additionalProperties: false,
    },
    adapterPath: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'PEFT adapter directory to load at init (e.g. the stage-1 LoRA for stage 2).' },
    mergeAdapter: { type: 'boolean', default: false, description: 'Fold the adapter into the weights after loading (inference only).' },
    usePrompt: { type: 'boolean', default: true, description: "Put \"The prompt is '...'\" in the user turns." },
    maxPromptLen: { type: ['integer', 'null'], minimum: 0, default: 100, description: 'Cut prompts to this many characters (code points); null keeps them whole.' },
    imageSplitting: { type: ['boolean', 'null'], default: null, description: "Override the checkpoint's do_image_splitting: false gives every image one tile (image_seq_len tokens) instead of up to (longest_edge / tile)^2 + 1; null keeps the checkpoint's setting." },
    dtype: { enum: ['float32'], default: 'float32', description: 'Compute dtype (bf16/f16/f32 files are converted on load).' },
    imageCacheBytes: { type: 'integer', minimum: 0, default: 2 ** 30, description: 'Memory budget in bytes of the vision-tower output cache (LRU by content hash; 0 = no memory cache).' },
    imageCacheDir: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'Directory of an on-disk vision-output cache reused across runs; relative to the config file. null = memory only.' },
    sharedPrefix: { type: 'boolean', default: true, description: 'Run the reference history shared by the liked- and disliked-target sequences once; false runs two full sequences (same logits, slower).' },
  },
  required: ['path'],
  additionalProperties: false,
} as const;

/**
 * The options after validation: `path` (checkpoint directory, relative to the run's baseDir),
 * `lora` (r, alpha, dropout, targetModules, init), `adapterPath` and `imageCacheDir` (or null),
 * `mergeAdapter`, `usePrompt`, `maxPromptLen` (or null), `imageSplitting` (override of the
 * checkpoint's do_image_splitting; null keeps it), `dtype`, `imageCacheBytes`, `sharedPrefix`.
 */
export type Idefics3BackboneOptions = OptionsOf<typeof idefics3OptionsSchema>;

/** Every option but `path`, as the schema's defaults give it. */
export const DEFAULT_IDEFICS3_OPTIONS = optionDefaults(idefics3OptionsSchema) as Omit<Idefics3BackboneOptions, 'path'>;
