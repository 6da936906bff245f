/**
 * Host-side quantizers of a frozen weight in the Hugging Face layout [out, in] (row-major), in
 * float32 arithmetic (every product and quotient rounded to float32 with Math.fround, which is
 * exactly IEEE float32 for one operation on float32 operands):
 *
 * - int8 absmax per output channel (LLM.int8()'s vector-wise weight quantization):
 *   scale_o = absmax_o / 127, q = rint(w / scale_o) (half to even) in [-127, 127], code = q + 128;
 *   dequantized w' = q * scale_o. An all-zero row has scale 0 and q 0.
 * - NF4 (QLoRA): blocks of `blockSize` (64) consecutive values of the flattened weight; c = absmax
 *   of the block; x is normalised as x * float32(1 / c) and takes the NF4 level it is nearest to,
 *   a value exactly on a midpoint going to the lower level (code = number of midpoints below it);
 *   w' = level[code] * c. An all-zero block has absmax 0 and codes 7 (level 0).
 * - Double quantization (QLoRA §3, optional): the block absmaxes minus their mean, quantized in
 *   blocks of 256 with int8 absmax (the paper uses 8-bit floats there).
 *
 * goldens/make_quant_goldens.py is an independent numpy implementation of the same
 * definitions; test/quant.spec.ts checks these functions against it bit for bit.
 */

const f = Math.fround;

/**
 * The 16 NF4 levels of the QLoRA paper (appendix E; bitsandbytes' NF4 map): quantiles of N(0, 1)
 * normalised to [-1, 1], with an exact 0. make_quant_goldens.py rebuilds them from the paper's
 * construction and checks they are these float32 values.
 */
export const NF4_LEVELS: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
  0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Decision thresholds: float32 midpoints of consecutive levels (computed in double). */
export const NF4_MIDPOINTS: Float32Array = Float32Array.from({ length: 15 }, (_, i) => (NF4_LEVELS[i] + NF4_LEVELS[i + 1]) / 2);

/** Code of the NF4 level 0.0. */
export const NF4_ZERO_CODE = 7;

/** numpy's rint: round half to even (v is a float32 value held in a double). */
export function rint(v: number): number {
  const fl = Math.floor(v);
  const d = v - fl;
  if (d > 0.5) return fl + 1;
  if (d < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

export interface Int8Quantized {
  /** q + 128 per element, [out, in] row-major. */
  readonly codes: Uint8Array;
  /** float32 absmax / 127 per output row. */
  readonly scales: Float32Array;
}

/** int8 absmax per output channel of w [out, in] (row-major). */
export function quantizeInt8(w: Float32Array, out: number, inF: number): Int8Quantized {
  if (w.length !== out * inF) throw new Error(`quantizeInt8: ${w.length} values for [${out}, ${inF}]`);
  const codes = new Uint8Array(out * inF);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const row = o * inF;
    let m = 0;
    for (let i = 0; i < inF; i++) {
      const a = Math.abs(w[row + i]);
      if (a > m) m = a;
    }
    if (!Number.isFinite(m)) throw new Error(`quantizeInt8: row ${o} has a non-finite value`);
    const s = f(m / 127);
    scales[o] = s;
    for (let i = 0; i < inF; i++) {
      let q = s === 0 ? 0 : rint(f(w[row + i] / s));
      if (q > 127) q = 127;
      else if (q < -127) q = -127;
      codes[row + i] = q + 128;
    }
  }
  return { codes, scales };
}

export function dequantizeInt8(q: Int8Quantized, out: number, inF: number): Float32Array {
  const w = new Float32Array(out * inF);
  for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) w[o * inF + i] = (q.codes[o * inF + i] - 128) * q.scales[o];
  return w;
}

export interface Nf4Quantized {
  /** NF4 level index per element (flattened order). */
  readonly codes: Uint8Array;
  /** float32 absmax per block. */
  readonly absmax: Float32Array;
  readonly blockSize: number;
}

/** NF4 code of a normalised value: the number of midpoints strictly below it. */
export function nf4Code(x: number): number {
  // Binary search over the 15 sorted midpoints.
  let lo = 0;
  let hi = 15;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x > NF4_MIDPOINTS[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** NF4 with blockwise absmax over the flattened values (QLoRA: blockSize 64). */
export function quantizeNf4(w: Float32Array, blockSize = 64): Nf4Quantized {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`quantizeNf4: block size must be a positive integer, got ${blockSize}`);
  const n = w.length;
  const nb = Math.ceil(n / blockSize);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const lo = b * blockSize;
    const hi = Math.min(n, lo + blockSize);
    let m = 0;
    for (let i = lo; i < hi; i++) {
      const a = Math.abs(w[i]);
      if (a > m) m = a;
    }
    if (!Number.isFinite(m)) throw new Error(`quantizeNf4: block ${b} has a non-finite value`);
    absmax[b] = m;
    if (m === 0) {
      codes.fill(NF4_ZERO_CODE, lo, hi);
      continue;
    }
    const inv = f(1 / m);
    for (let i = lo; i < hi; i++) codes[i] = nf4Code(f(w[i] * inv));
  }
  return { codes, absmax, blockSize };
}

export function dequantizeNf4(q: Nf4Quantized, absmax: Float32Array = q.absmax): Float32Array {
  const w = new Float32Array(q.codes.length);
  for (let i = 0; i < w.length; i++) w[i] = NF4_LEVELS[q.codes[i]] * absmax[Math.floor(i / q.blockSize)];
  return w;
}

export interface DoubleQuantized {
  /** int8 codes (q + 128) of absmax - mean. */
  readonly codes: Uint8Array;
  /** float32 mean of the absmaxes (accumulated in float64, rounded once). */
  readonly mean: number;
  /** float32 absmax / 127 per block of `blockSize` absmaxes. */
  readonly scales: Float32Array;
  readonly blockSize: number;
}

/** Second quantization of the NF4 block absmaxes (QLoRA §3), blocks of 256, int8 absmax. */
export function doubleQuantize(absmax: Float32Array, blockSize = 256): DoubleQuantized {
  let sum = 0;
  for (let i = 0; i < absmax.length; i++) sum += absmax[i];
  const mean = f(absmax.length ? sum / absmax.length : 0);
  const n = absmax.length;
  const nb = Math.ceil(n / blockSize);
  const codes = new Uint8Array(n);
  const scales = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const lo = b * blockSize;
    const hi = Math.min(n, lo + blockSize);
    let m = 0;
    for (let i = lo; i < hi; i++) {
      const a = Math.abs(f(absmax[i] - mean));
      if (a > m) m = a;
    }
    const s = f(m / 127);
    scales[b] = s;
    for (let i = lo; i < hi; i++) {
      let q = s === 0 ? 0 : rint(f(f(absmax[i] - mean) / s));
      if (q > 127) q = 127;
      else if (q < -127) q = -127;
      codes[i] = q + 128;
    }
  }
  return { codes, mean, scales, blockSize };
}

/** The absmaxes a double-quantized set stands for: (code - 128) * scale + mean, in float32. */
export function doubleDequantize(q: DoubleQuantized): Float32Array {
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = f(f((q.codes[i] - 128) * q.scales[Math.floor(i / q.blockSize)]) + q.mean);
  return out;
}
