/**
 * @userpref/backbone-idefics3: a second backbone family for the same preference method,
 * Idefics3ForConditionalGeneration (SigLIP vision tower -> pixel-shuffle connector -> Llama) and
 * the SmolVLM models built on it (256M / 500M / 2.2B), loaded from a Hugging Face checkpoint
 * directory with its tokenizer, chat template and tiling image processor, with PEFT LoRA, as the
 * 'idefics3' Backbone contribution. Swapping it in for IDEFICS2 is a run-config change
 * (`plugins.backbone`). The SigLIP tower, the decoder, LoRA and the caches are @userpref/mllm's,
 * shared with the IDEFICS2 backbone.
 */
import { defineContribution, definePlugin } from '@userpref/core';
import { Idefics3Backbone } from './backbone';
import { idefics3OptionsSchema } from './options';

export { Idefics3Backbone, DEFAULT_IDEFICS3_OPTIONS, IDEFICS3_TARGET_MODULES } from './backbone';
export type { Idefics3BackboneOptions } from './backbone';
export { idefics3OptionsSchema } from './options';
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

export const userprefPlugin = definePlugin('@userpref/backbone-idefics3', [
  defineContribution({
    kind: 'backbone',
    name: 'idefics3',
    description:
      'Idefics3 / SmolVLM (SigLIP + pixel-shuffle connector + Llama, Idefics3ForConditionalGeneration) in tfjs, float32, from a Hugging Face checkpoint directory, with PEFT LoRA on the text model and the modality projection. Images are split into tiles plus a global image as the checkpoint\'s processor does; vision outputs are cached per image; the shared reference prefix runs once; prefix tokens before the first token.',
    optionsSchema: idefics3OptionsSchema,
    create: (options, { run, logger }) => new Idefics3Backbone(options, run, logger),
  }),
]);

export const { contributions } = userprefPlugin;
