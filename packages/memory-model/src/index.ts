/**
 * @userpref/memory-model: how many tensor bytes IDEFICS2 LoRA training needs in tfjs, predicted
 * from the config (src/model.ts), and a meter of live tensor bytes to check it (src/meter.ts).
 */
export { predictTrainingStep, weightBytes, loraParameters } from './model';
export type { ModelShape, Workload, MemoryOptions, MemoryPrediction } from './model';
export { BufferMeter } from './meter';
