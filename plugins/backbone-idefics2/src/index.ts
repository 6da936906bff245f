/**
 * @userpref/backbone-idefics2: the paper's backbone, IDEFICS2 (SigLIP vision tower -> SwiGLU
 * projection + perceiver resampler -> Mistral), loaded from a Hugging Face checkpoint directory
 * (e.g. a local download of HuggingFaceM4/idefics2-8b, or a random one written by writeIdefics2Checkpoint / apps/checkpoint),
 * with PEFT-compatible LoRA, as the 'idefics2' Backbone contribution. It also offers the optional
 * attention-probe capability (Idefics2AttentionProbe) that similar-user mining reads.
 */
import { defineContribution, definePlugin } from '@userpref/core';
import { Idefics2Backbone } from './backbone';
import { idefics2OptionsSchema } from './options';

export { Idefics2Backbone, DEFAULT_BACKBONE_OPTIONS, historyLength } from './backbone';
export type { Idefics2BackboneOptions } from './backbone';
export { idefics2OptionsSchema } from './options';
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

export const userprefPlugin = definePlugin('@userpref/backbone-idefics2', [
  defineContribution({
    kind: 'backbone',
    name: 'idefics2',
    description:
      'IDEFICS2 (SigLIP + perceiver resampler + Mistral, Idefics2ForConditionalGeneration) in tfjs, float32, from a Hugging Face checkpoint directory, with PEFT LoRA (SPEC §3). Vision-tower outputs are cached per image (memory budget, optional disk); the shared reference prefix of the two target sequences runs once; right padding; prefix tokens before BOS.',
    optionsSchema: idefics2OptionsSchema,
    create: (options, { run, logger }) => new Idefics2Backbone(options, run, logger),
  }),
]);

export const { contributions } = userprefPlugin;
