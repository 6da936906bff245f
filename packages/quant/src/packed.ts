/**
 * A frozen weight matrix held packed on the device and unpacked to float32 only when a layer runs.
 *
 * The source is a Hugging Face Linear weight [out, in] (or several, fused along `out`); what
 * `materialize()` returns is the [in, out] float32 matrix a Linear multiplies by (the layout of
 * @userpref/backbone-idefics2's Linear), built with tfjs ops only. The caller disposes it.
 *
 * Storage (all float32 tensors, the only compact type tfjs offers):
 * - 8 bits: int8 codes (q + 128) in [in, out] order, 3 a word; scales [out].
 * - 4 bits: NF4 codes, 6 a word; absmax per block of 64 of the flattened [out, in] weight (the
 *   blocks bitsandbytes and QLoRA use), float32 or double-quantized (int8 codes 3 a word, a scale
 *   per 256, the mean). When `in` is a multiple of the block size a block lies inside one output
 *   row, so codes are kept in [in, out] order and the absmax broadcasts; otherwise codes are kept
 *   in [out, in] order and the result is transposed.
 *
 * The values are exactly those of the host quantizers (./quantize.ts): materialize() equals
 * dequantize*() of the same codes bit for bit on CPU and wasm (IEEE float32 products).
 */
import * as tf from '@tensorflow/tfjs-core';
import { codesPerWord, packCodes, unpackCodes, type CodeBits } from './pack';
import { dequantizeInt8, dequantizeNf4, doubleDequantize, doubleQuantize, NF4_LEVELS, quantizeInt8, quantizeNf4 } from './quantize';

export type BaseBits = 32 | 8 | 4;

export interface PackOptions {
  readonly bits: 8 | 4;
  /** NF4 block size (64). */
  readonly blockSize?: number;
  /** 4 bits: quantize the block absmaxes again (blocks of 256, int8). */
  readonly doubleQuant?: boolean;
}

/** Transposes a row-major [rows, cols] array. */
function transposeHost(a: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

function transposeCodes(a: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

interface DoubleQuantTensors {
  readonly words: tf.Tensor1D;
  readonly count: number;
  readonly scales: tf.Tensor2D;
  readonly mean: number;
  readonly blockSize: number;
}

export class PackedMatrix {
  private constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly bits: 8 | 4,
    readonly blockSize: number,
    /** Codes in [in, out] order (true) or [out, in] order (false). */
    readonly inOutOrder: boolean,
    private readonly words: tf.Tensor1D,
    /** 8 bits: [out]; 4 bits: absmax [out, in / block] (inOutOrder) or [blocks] (float32), or null when double-quantized. */
    private readonly scales: tf.Tensor | null,
    private readonly dq: DoubleQuantTensors | null,
    /** Host copies for error reports and tests (codes and scales as quantized). */
    readonly host: { readonly codesOutIn: Uint8Array; readonly scales: Float32Array },
  ) {}

  /** Quantizes a Hugging Face weight [out, in] (row-major; fused modules stacked along out). */
  static quantize(hf: Float32Array, out: number, inF: number, options: PackOptions): PackedMatrix {
    if (hf.length !== out * inF) throw new Error(`PackedMatrix: ${hf.length} values for [${out}, ${inF}]`);
    const bits = options.bits;
    if (bits === 8) {
      const q = quantizeInt8(hf, out, inF);
      const words = tf.tensor1d(packCodes(transposeCodes(q.codes, out, inF), 8));
      return new PackedMatrix(inF, out, 8, 0, true, words, tf.tensor1d(q.scales), null, { codesOutIn: q.codes, scales: q.scales });
    }
    if (bits !== 4) throw new Error(`PackedMatrix: bits must be 8 or 4, got ${bits}`);
    const block = options.blockSize ?? 64;
    const q = quantizeNf4(hf, block);
    const inOut = inF % block === 0;
    const words = tf.tensor1d(packCodes(inOut ? transposeCodes(q.codes, out, inF) : q.codes, 4));
    let scales: tf.Tensor | null = null;
    let dq: DoubleQuantTensors | null = null;
    if (options.doubleQuant) {
      const d = doubleQuantize(q.absmax);
      const nb2 = d.scales.length;
      dq = { words: tf.tensor1d(packCodes(d.codes, 8)), count: d.codes.length, scales: tf.tensor2d(d.scales, [nb2, 1]), mean: d.mean, blockSize: d.blockSize };
    } else {
      scales = inOut ? tf.tensor2d(q.absmax, [out, inF / block]) : tf.tensor1d(q.absmax);
    }
    return new PackedMatrix(inF, out, 4, block, inOut, words, scales, dq, { codesOutIn: q.codes, scales: options.doubleQuant ? doubleDequantize(doubleQuantize(q.absmax)) : q.absmax });
  }

  /** Quantizes a matrix given in the Linear layout [in, out]. */
  static quantizeInOut(w: Float32Array, inF: number, out: number, options: PackOptions): PackedMatrix {
    return PackedMatrix.quantize(transposeHost(w, inF, out), out, inF, options);
  }

  get shape(): [number, number] {
    return [this.inFeatures, this.outFeatures];
  }

  /** Bytes held on the device (codes, scales, double-quantization state). */
  get bytes(): number {
    let n = this.words.size;
    if (this.scales) n += this.scales.size;
    if (this.dq) n += this.dq.words.size + this.dq.scales.size;
    return n * 4;
  }

  /** The device tensors holding the packed weight (fingerprints, accounting). */
  tensors(): tf.Tensor[] {
    const out: tf.Tensor[] = [this.words];
    if (this.scales) out.push(this.scales);
    if (this.dq) out.push(this.dq.words, this.dq.scales);
    return out;
  }

  /** The float32 block absmaxes, [blocks] in the order of the flattened [out, in] weight. */
  private absmaxTensor(): tf.Tensor1D {
    if (this.scales) return tf.reshape(this.scales, [-1]) as tf.Tensor1D;
    const d = this.dq!;
    return tf.tidy(() => {
      const codes = unpackCodes(d.words, 8, d.count);
      const nb2 = d.scales.shape[0];
      const padded = nb2 * d.blockSize === d.count ? codes : tf.pad(codes, [[0, nb2 * d.blockSize - d.count]], 128);
      const v = tf.add(tf.mul(tf.reshape(tf.sub(padded, 128), [nb2, d.blockSize]), d.scales), d.mean);
      return tf.slice(tf.reshape(v, [-1]), 0, d.count) as tf.Tensor1D;
    });
  }

  /** The dequantized weight [in, out] float32 (a new tensor; dispose it). */
  materialize(): tf.Tensor2D {
    const inF = this.inFeatures;
    const out = this.outFeatures;
    const n = inF * out;
    const codes = unpackCodes(this.words, this.bits, n);
    if (this.bits === 8) {
      const q = tf.tidy(() => tf.sub(codes, 128));
      codes.dispose();
      const w = tf.tidy(() => tf.mul(tf.reshape(q, [inF, out]), this.scales!)) as tf.Tensor2D;
      q.dispose();
      return w;
    }
    const idx = tf.cast(codes, 'int32');
    codes.dispose();
    const levels = tf.tidy(() => tf.gather(tf.tensor1d(NF4_LEVELS), idx));
    idx.dispose();
    const B = this.blockSize;
    const absmax = this.absmaxTensor();
    try {
      if (this.inOutOrder) {
        // Element (i, o) belongs to block o * (in / B) + floor(i / B).
        const a = tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(absmax, [out, inF / B])), [inF / B, 1, out]));
        const w = tf.tidy(() => tf.reshape(tf.mul(tf.reshape(levels, [inF / B, B, out]), a), [inF, out])) as tf.Tensor2D;
        a.dispose();
        levels.dispose();
        return w;
      }
      const nb = absmax.shape[0];
      const w = tf.tidy(() => {
        const padded = nb * B === n ? levels : tf.pad(levels, [[0, nb * B - n]]);
        const v = tf.reshape(tf.mul(tf.reshape(padded, [nb, B]), tf.reshape(absmax, [nb, 1])), [-1]);
        return tf.transpose(tf.reshape(nb * B === n ? v : tf.slice(v, 0, n), [out, inF])) as tf.Tensor2D;
      });
      levels.dispose();
      return w;
    } finally {
      if (absmax !== this.scales) absmax.dispose();
    }
  }

  /** The same values computed on the host, [in, out] (tests, error reports). */
  dequantizeHost(): Float32Array {
    const inF = this.inFeatures;
    const out = this.outFeatures;
    const hf = this.bits === 8 ? dequantizeInt8({ codes: this.host.codesOutIn, scales: this.host.scales }, out, inF) : dequantizeNf4({ codes: this.host.codesOutIn, absmax: this.host.scales, blockSize: this.blockSize });
    return transposeHost(hf, out, inF);
  }

  dispose(): void {
    this.words.dispose();
    this.scales?.dispose();
    if (this.dq) {
      this.dq.words.dispose();
      this.dq.scales.dispose();
    }
  }
}

/** Device bytes per weight of a packed [in, out] matrix (codes + scales), without building one. */
export function packedBytes(inF: number, out: number, options: PackOptions | { bits: 32 }): number {
  const n = inF * out;
  if (options.bits === 32) return 4 * n;
  const words = Math.ceil(n / codesPerWord(options.bits as CodeBits));
  if (options.bits === 8) return 4 * (words + out);
  const B = (options as PackOptions).blockSize ?? 64;
  const nb = Math.ceil(n / B);
  if (!(options as PackOptions).doubleQuant) return 4 * (words + nb);
  return 4 * (words + Math.ceil(nb / 3) + Math.ceil(nb / 256));
}
