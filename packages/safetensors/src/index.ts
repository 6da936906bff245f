export { SafetensorsFile, SafetensorsError, writeSafetensors } from './file';
export type { TensorEntry, TensorToWrite } from './file';
export { CheckpointReader, writeShardedCheckpoint } from './checkpoint';
export { decodeToFloat32, encodeFromFloat32, halfToFloat, floatToHalf, bf16ToFloat, floatToBf16, BYTES_PER, TORCH_DTYPE } from './dtype';
export type { Dtype, WeightDtype } from './dtype';
