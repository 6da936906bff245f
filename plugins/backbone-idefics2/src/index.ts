/**
 * @userpref/backbone-idefics2: the paper's backbone, IDEFICS2 (SigLIP vision tower -> SwiGLU
 * projection + perceiver resampler -> Mistral), loaded from a Hugging Face checkpoint directory
 * (e.g. a local download of HuggingFaceM4/idefics2-8b, or a random one written by writeIdefics2Checkpoint / apps/checkpoint),
 * with PEFT-compatible LoRA, as the 'idefics2' Backbone contribution. It also offers the optional
 * attention-probe capability (Idefics2AttentionProbe) that similar-user mining reads.
 */
import { ContainerModule, inject, injectable, named } from 'inversify';
import { Backbone, Logger, PATH_FORMAT, PluginOptions, RunContext, optionsName, type Contribution, type UserprefPlugin } from '@userpref/core';
import { DEFAULT_BACKBONE_OPTIONS, Idefics2Backbone, type Idefics2BackboneOptions } from './backbone';

export { Idefics2Backbone, DEFAULT_BACKBONE_OPTIONS, historyLength } from './backbone';
export type { Idefics2BackboneOptions } from './backbone';
export { Idefics2Model } from './model/idefics2';
export type { ForwardInputs, EmbeddedBatch } from './model/idefics2';
export { parseIdefics2Config, Idefics2ConfigError } from './model/config';
export type { Idefics2Config, VisionConfig, PerceiverConfig, TextConfig, Activation } from './model/config';
export { Idefics2WeightsError, TENSOR_NAME_ALIASES } from './model/weights';
export type { LoadReport, LoadWeightsOptions } from './model/weights';
export { exportIdefics2Weights, saveIdefics2Checkpoint, Idefics2ExportError } from './model/export';
export type { ExportedTensor, ExportDtype, SaveCheckpointOptions } from './model/export';
export { makeBaseTrainable, fanInReinit } from './model/trainable';
export type { TrainableBaseOptions, TrainableWeight } from './model/trainable';
export { PAPER_LORA, PAPER_TARGET_MODULES } from './lora';
export { Idefics2Processor } from './processor';
export { Idefics2AttentionProbe } from './probe/probe';
export type { ProbeForward } from './probe/probe';
export { targetToPrefixAttention } from './probe/attention';
export type { TargetRows } from './probe/attention';
export type { Idefics2Params, PerceiverLayerParams } from './model/weights';
// The shared building blocks (vision tower, decoder, LoRA, caches) live in @userpref/mllm; these
// names are re-exported from there for code written against this plugin's earlier exports.
export { Linear, EVAL, LoraAdapter, LoraAdapterError, parseAdapterConfig, ADAPTER_CONFIG, ADAPTER_WEIGHTS, LoraModule, targetMatcher, loraScale } from '@userpref/mllm';
export { visionTower, patchLayout, textForward, textForwardPacked, mergeInputEmbeddings, rowContext, lastRealIndex, runPrefix, runAfterPrefix, PrefixKv, VisionCache } from '@userpref/mllm';
export type { RunContext as ForwardContext, LoraSettings, LoraInit, TextForwardOptions, TextForwardResult, VisionOutput, VisionLayerParams, TextLayerParams, Norm } from '@userpref/mllm';
export type { PackedTextInput, PackedTextOptions, PackedTextResult, AttentionSegment, RowRange, VisionEntry, VisionCacheStats, VisionCacheOptions } from '@userpref/mllm';
export { processImage, resizeBilinearPil } from './processor/image';
export type { ImageProcessorConfig } from './processor/image';
export { writeIdefics2Checkpoint, countParameters, presetConfig, PRESETS, buildTokenizer, IDEFICS2_CHAT_TEMPLATE } from './checkpoint';
export type { PresetName, WeightDtype, Idefics2Sizes, WriteCheckpointOptions, WrittenCheckpoint } from './checkpoint';

const d = DEFAULT_BACKBONE_OPTIONS;

export const contributions: Contribution[] = [
  {
    kind: 'backbone',
    name: 'idefics2',
    description:
      'IDEFICS2 (SigLIP + perceiver resampler + Mistral, Idefics2ForConditionalGeneration) in tfjs, float32, from a Hugging Face checkpoint directory, with PEFT LoRA (SPEC §3). Vision-tower outputs are cached per image (memory budget, optional disk); the shared reference prefix of the two target sequences runs once; right padding; prefix tokens before BOS.',
    optionsSchema: {
      type: 'object',
      properties: {
        path: { type: 'string', format: PATH_FORMAT, description: 'Checkpoint directory (config.json, model.safetensors or shards, tokenizer and processor files), relative to the config file.' },
        lora: {
          type: 'object',
          description: 'LoRA of the paper (PEFT semantics: scale alpha/r, dropout on the input in training only, B = 0 at init).',
          properties: {
            r: { type: 'integer', minimum: 1, default: d.lora.r, description: 'Rank.' },
            alpha: { type: 'number', exclusiveMinimum: 0, default: d.lora.alpha, description: 'lora_alpha; scale = alpha / r.' },
            dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: d.lora.dropout, description: 'lora_dropout (training only).' },
            targetModules: { type: 'string', default: d.lora.targetModules, description: 'Regex that must match a whole Hugging Face module name (re.fullmatch, as PEFT).' },
            init: { enum: ['gaussian', 'zeros'], default: d.lora.init, description: "'gaussian': A ~ N(0, std 1/r), B = 0 (PEFT init_lora_weights='gaussian')." },
          },
          default: {},
          additionalProperties: false,
        },
        adapterPath: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'PEFT adapter directory to load at init (e.g. the stage-1 LoRA for stage 2).' },
        mergeAdapter: { type: 'boolean', default: false, description: 'Fold the adapter into the weights after loading (inference only: no trainable LoRA remains).' },
        usePrompt: { type: 'boolean', default: d.usePrompt, description: "Put \"The prompt is '...'\" in the user turns (the original's --use_prompt, parsed as a real boolean)." },
        maxPromptLen: { type: ['integer', 'null'], minimum: 0, default: d.maxPromptLen, description: 'Cut prompts to this many characters (code points, as the original); null keeps them whole.' },
        dtype: { enum: ['float32'], default: d.dtype, description: 'Compute dtype (weights in bf16/f16/f32 files are converted on load).' },
        imageCacheBytes: { type: 'integer', minimum: 0, default: d.imageCacheBytes, description: 'Memory budget in bytes of the vision-tower output cache (LRU by content hash, outside the wasm heap; 0 = no memory cache).' },
        imageCacheDir: { type: ['string', 'null'], format: PATH_FORMAT, default: null, description: 'Directory of an on-disk vision-output cache (safetensors per image, named by content hash + a fingerprint of the vision weights), reused across runs; relative to the config file. null = memory only.' },
        sharedPrefix: { type: 'boolean', default: d.sharedPrefix, description: 'Run the reference history shared by the liked- and disliked-target sequences once (KV prefix) and only the two target turns separately; false runs two full sequences (same logits, slower).' },
        baseBits: { enum: [32, 8, 4], default: d.baseBits, description: 'Frozen base precision: 32 = float32; 8 = int8 absmax per output channel; 4 = NF4 with blocks of 64 (QLoRA). Every Linear but the LM head is held packed (codes in float32 words) and unpacked one layer at a time; LoRA stays float32.' },
        doubleQuant: { type: 'boolean', default: d.doubleQuant, description: "4-bit base: quantize the NF4 block absmaxes again (QLoRA's double quantization; int8 blocks of 256 here)." },
        checkpointing: { type: 'boolean', default: d.checkpointing, description: 'Activation checkpointing in training: each decoder, connector and vision layer keeps only its input and is recomputed in the backward (less memory, one more forward).' },
      },
      required: ['path'],
      additionalProperties: false,
    },
  },
];

@injectable()
class Idefics2BackboneFromOptions extends Idefics2Backbone {
  constructor(
    @inject(PluginOptions) @named(optionsName('backbone', 'idefics2')) options: Idefics2BackboneOptions,
    @inject(RunContext) run: RunContext,
    @inject(Logger) logger: Logger,
  ) {
    super(options, run, logger);
  }
}

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/backbone-idefics2',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    bind<Backbone>(Backbone).to(Idefics2BackboneFromOptions).whenNamed('idefics2');
  }),
};
