/** @userpref/dataset-pickapic: Pick-a-Pic v2 and the paper's release to per-user preference examples; the synthpick benchmark. */
export { userprefPlugin, contributions } from './plugin';
export { PickapicDataset, pickapicOptionsSchema } from './dataset';
export type { PickapicOptions, PickapicSplitStats } from './dataset';
export { importDataset, SKIP_REASONS } from './import';
export type { ImportOptions, ImportResult, SkipReason } from './import';
export { openPickapicShard, checkPickapicSchema, PICKAPIC_COLUMNS } from './pickapic-parquet';
export type { PickapicRow, PickapicShard } from './pickapic-parquet';
export { readPaperPickle } from './paper-pickle';
export { ProcessedStore, FORMAT_NAME, FORMAT_VERSION } from './store';
export type { Manifest, SplitIndex, StoredComparison, Reconciliation } from './store';
export { buildSplits, SPLIT_PROTOCOLS } from './splits';
export type { SplitProtocol } from './splits';
export { generateSynthpick, simulateSynthpick, synthpickParams, renderImage, SynthpickParamsError, PRESETS as SYNTHPICK_PRESETS, ATTRIBUTES as SYNTHPICK_ATTRIBUTES, TRUTH_FILE } from './synthpick';
export type { SynthpickParams, SynthpickPreset, SynthpickSummary, SynthpickTruth, GenerateOptions, GenerateResult } from './synthpick';
export { PickapicFormatError } from './parquet-io';
export { imageId, decodeRgb } from './images';
export { clustersFromProcessed, clustersFromTruth } from './clusters';
