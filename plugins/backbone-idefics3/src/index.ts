/**
 * @userpref/backbone-idefics3: a second backbone family for the same preference method,
 * Idefics3ForConditionalGeneration (SigLIP vision tower -> pixel-shuffle connector -> Llama) and
 * the SmolVLM models built on it (256M / 500M / 2.2B), loaded from a Hugging Face checkpoint
 * directory with its tokenizer, chat template and tiling image processor, with PEFT LoRA, as the
 * 'idefics3' Backbone contribution. Swapping it in for IDEFICS2 is a run-config change
 * (`plugins.backbone`). The SigLIP tower, the decoder, LoRA and the caches are @userpref/mllm's,
 * shared with the IDEFICS2 backbone.
 */
import { ContainerModule, inject, injectable, named } from 'inversify';
import { Backbone, Logger, PATH_FORMAT, PluginOptions, RunContext, optionsName, type Contribution, type UserprefPlugin } from '@userpref/core';
import { DEFAULT_IDEFICS3_OPTIONS, Idefics3Backbone, type Idefics3BackboneOptions } from './backbone';

export { Idefics3Backbone, DEFAULT_IDEFICS3_OPTIONS, IDEFICS3_TARGET_MODULES } from './backbone';
export type { Idefics3BackboneOptions } from './backbone';
export { Idefics3Model, pixelShuffle } from './model/idefics3';
export type { EmbeddedBatch } from './model/idefics3';
export { parseIdefics3Config, Idefics3ConfigError } from './model/config';
export type { Idefics3Config } from './model/config';
export { loadIdefics3Weights, Idefics3WeightsError } from './model/weights';
export type { Idefics3Params, LoadReport } from './model/weights';
export { Idefics3Processor } from './processor/processor';
export type { Idefics3ProcessorOptions, TileLayout, Idefics3SpecialTokens, Idefics3Encoding } from './processor/processor';
export { processIdefics3Image, tileLayout, longestEdgeSize, tileGridSize, parseIdefics3ImageConfig } from './processor/image';
export type { Idefics3ImageConfig, ProcessedImage } from './processor/image';

const d = DEFAULT_IDEFICS3_OPTIONS;

export const contributions: Contribution[] = [
  {
    kind: 'backbone',
    name: 'idefics3',
    description:
      'Idefics3 / SmolVLM (SigLIP + pixel-shuffle connector + Llama, Idefics3ForConditionalGeneration) in tfjs, float32, from a Hugging Face checkpoint directory, with PEFT LoRA on the text model and the modality projection. Images are split into tiles plus a global image as the checkpoint\'s processor does; vision outputs are cached per image; the shared reference prefix runs once; prefix tokens before the first token.',
    optionsSchema: {
      type: 'object',
      properties: {
        path: { type: 'string', format: PATH_FORMAT, description: 'Checkpoint directory (config.json, model.safetensors or shards, tokenizer, chat template and processor files), relative to the config file.' },
        lora: {
          type: 'object',
          description: 'LoRA (PEFT semantics: scale alpha/r, dropout on the input in training only, B = 0 at init).',
          properties: {
            r: { type: 'integer', minimum: 1, default: d.lora.r, description: 'Rank.' },
            alpha: { type: 'number', exclusiveMinimum: 0, default: d.lora.alpha, description: 'lora_alpha; scale = alpha / r.' },
            dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: d.lora.dropout, description: 'lora_dropout (training only).' },
            targetModules: { type: 'string', default: d.lora.targetModules, description: "Regex that must match a whole Hugging Face module name (re.fullmatch, as PEFT); the default is the paper's targets on this architecture (text-model attention and MLP projections, the connector's modality projection)." },
            init: { enum: ['gaussian', 'zeros'], default: d.lora.init, description: "'gaussian': A ~ N(0, std 1/r), B = 0 (PEFT init_lora_weights='gaussian')." },
          },
          default: {},
          additionalProperties: false,
        },
        adapterPath: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'PEFT adapter directory to load at init (e.g. the stage-1 LoRA for stage 2).' },
        mergeAdapter: { type: 'boolean', default: false, description: 'Fold the adapter into the weights after loading (inference only).' },
        usePrompt: { type: 'boolean', default: d.usePrompt, description: "Put \"The prompt is '...'\" in the user turns." },
        maxPromptLen: { type: ['integer', 'null'], minimum: 0, default: d.maxPromptLen, description: 'Cut prompts to this many characters (code points); null keeps them whole.' },
        imageSplitting: { type: ['boolean', 'null'], default: null, description: "Override the checkpoint's do_image_splitting: false gives every image one tile (image_seq_len tokens) instead of up to (longest_edge / tile)^2 + 1; null keeps the checkpoint's setting." },
        dtype: { enum: ['float32'], default: d.dtype, description: 'Compute dtype (bf16/f16/f32 files are converted on load).' },
        imageCacheBytes: { type: 'integer', minimum: 0, default: d.imageCacheBytes, description: 'Memory budget in bytes of the vision-tower output cache (LRU by content hash; 0 = no memory cache).' },
        imageCacheDir: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'Directory of an on-disk vision-output cache reused across runs; relative to the config file. null = memory only.' },
        sharedPrefix: { type: 'boolean', default: d.sharedPrefix, description: 'Run the reference history shared by the liked- and disliked-target sequences once; false runs two full sequences (same logits, slower).' },
      },
      required: ['path'],
      additionalProperties: false,
    },
  },
];

@injectable()
class Idefics3BackboneFromOptions extends Idefics3Backbone {
  constructor(
    @inject(PluginOptions) @named(optionsName('backbone', 'idefics3')) options: Idefics3BackboneOptions,
    @inject(RunContext) run: RunContext,
    @inject(Logger) logger: Logger,
  ) {
    super(options, run, logger);
  }
}

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/backbone-idefics3',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    bind<Backbone>(Backbone).to(Idefics3BackboneFromOptions).whenNamed('idefics3');
  }),
};
