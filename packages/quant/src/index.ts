/**
 * @userpref/quant: low-bit frozen weights for a float32-only tensor runtime (tfjs has no int8,
 * float16 or bfloat16 tensors). absmax int8 per output channel and QLoRA's NF4 (blockwise absmax
 * of 64, optional double quantization), codes packed into float32 words as exact integers (3 of 8
 * bits or 6 of 4 bits a word) and unpacked with tfjs ops on any backend, one matrix at a time.
 */
export { NF4_LEVELS, NF4_MIDPOINTS, NF4_ZERO_CODE, rint, nf4Code, quantizeInt8, dequantizeInt8, quantizeNf4, dequantizeNf4, doubleQuantize, doubleDequantize } from './quantize';
export type { Int8Quantized, Nf4Quantized, DoubleQuantized } from './quantize';
export { packCodes, unpackCodes, unpackCodesHost, codesPerWord } from './pack';
export type { CodeBits } from './pack';
export { PackedMatrix, packedBytes } from './packed';
export type { BaseBits, PackOptions } from './packed';
export { checkpointed, checkpointedMulti, recordingGradients } from './remat';
