/**
 * @userpref/mllm: what the vision-language backbones (IDEFICS2, Idefics3 / SmolVLM) share, in
 * tfjs, so each fact lives once and no backbone plugin imports another: the SigLIP vision tower,
 * the Llama / Mistral decoder (RoPE, GQA, RMSNorm, SwiGLU) on padded or packed rows with per-segment
 * attention, the key-value prefix, the vision-output cache, Linear layers with PEFT LoRA and the
 * adapter's files, the config.json and checkpoint readers of the parts they share, the image
 * rescale / normalise step, the preference chat of SPEC §2, and the batch layout helpers of a
 * Backbone. Each family's connector, processor specifics and plugin wiring stay in its plugin.
 */
export { Linear, EVAL, loraVariables } from './linear';
export type { LinearPart, RunContext } from './linear';
export { MASKED, rmsNorm, gatedActivation, layerNorm, activate, attention, keyPaddingMask, ropeTables, halfSwapMatrix, applyRope, matMulThin, dropoutMask } from './ops';
export type { AttentionShape } from './ops';
export { planSegments, disposePlan, segmentAttention } from './attention';
export type { AttentionSegment, RowRange, PlannedSegment, SegmentAttentionResult } from './attention';
export { visionTower, patchLayout, bucketPosition, positionBoundaries } from './vision';
export type { VisionOutput } from './vision';
export { textForward, textForwardPacked, mergeInputEmbeddings, embedSequences, rowContext, lastRealIndex } from './text';
export type { EmbeddedBatch, TextForwardOptions, TextForwardResult, PackedTextInput, PackedTextOptions, PackedTextResult } from './text';
export { runPrefix, runAfterPrefix, suffixAttention, PrefixKv } from './prefix-kv';
export { VisionCache } from './vision-cache';
export type { VisionEntry, VisionCacheStats, VisionCacheOptions } from './vision-cache';
export { LoraModule, targetMatcher, loraScale, validateLoraSettings } from './lora';
export type { LoraSettings, LoraInit } from './lora';
export { LoraAdapter, LoraAdapterError, parseAdapterConfig, parsePeftKey, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './adapter';
export type { LoraTarget } from './adapter';
export { PEFT_LORA_CONFIG, PeftConfigError, loraConfigToJson, loraSettingsFromJson } from './peft-config';
export type { PeftWriteContext } from './peft-config';
export { ConfigReader, parseVisionConfig, parseTextConfig, ropeTheta, ACTIVATIONS } from './config';
export type { Activation, VisionConfig, TextConfig, VisionModelConfig, DecoderModelConfig, TextFamily, Json } from './config';
export { SpecListBuilder, visionTowerSpecs, decoderSpecs, inSpecOrder, numel } from './specs';
export type { TensorSpec, TensorInit } from './specs';
export { WeightSource, TENSOR_NAME_ALIASES, readVisionTower, readDecoder, visionLinears, decoderLinears, visionNorms, decoderNorms, disposeNorms, visionTensorCount, decoderTensorCount } from './weights';
export type { Norm, VisionLayerParams, TextLayerParams, VisionTowerParams, DecoderParams, VisionModelParams, DecoderModelParams, LoadReport, WeightSourceOptions } from './weights';
export { rescaleNormalize, checkImageSize, preprocessorKeys } from './image';
export type { RescaleNormalizeConfig } from './image';
export { historyLength, historyWeights, fillHistoryWeights, stackHistoryWeights, UniqueImages, targetImages, takeRows, padRows, prefixTokens, prefixTurnsLayout, pickTurnLogits, pairLogits, sharedPairLogits, historyState, readCandidates, historySession, meanOverPatches, visionTowerTensors, saveAttachedAdapter, loadAttachedAdapter } from './backbone';
export type { HistoryWeights } from './backbone';
export type { ReadAt, PairLogitsResult } from './backbone';
export { checkChatOptions, userText, preferenceChat, renderChat, readoutTokens, loadTokenizer, singleTokenId, readJson, readJsonIfExists, imageProcessorSettings } from './chat';
export type { ChatMessage, PreferenceChatOptions, Tokenizer } from './chat';
export { VisionLanguageBackbone } from './vision-language-backbone';
export type { VisionLanguageModel, VisionLanguageProcessor } from './vision-language-backbone';
