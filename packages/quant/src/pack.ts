/**
 * Codes packed into float32 words as exact integers: K = 24 / bits codes a word (3 of 8 bits, 6 of
 * 4 bits), word j = sum_k code[jK + k] * 2^(bits k) < 2^24, which float32 holds exactly. tfjs has no
 * integer storage smaller than int32, so this is how a float32-only runtime keeps 8-bit codes in
 * 1.33 bytes and 4-bit codes in 0.67 bytes.
 *
 * Unpacking on the device (`unpackCodes`) uses only multiplications by powers of two, floor and
 * subtraction on integers below 2^24: every step is exact in float32 on any backend.
 */
import * as tf from '@tensorflow/tfjs-core';

export type CodeBits = 4 | 8;

export function codesPerWord(bits: CodeBits): number {
  if (bits !== 4 && bits !== 8) throw new Error(`code width must be 4 or 8 bits, got ${bits}`);
  return 24 / bits;
}

/** Packs codes (each < 2^bits) into ceil(n / K) float32 words; the last word is zero padded. */
export function packCodes(codes: ArrayLike<number>, bits: CodeBits): Float32Array {
  const K = codesPerWord(bits);
  const limit = 1 << bits;
  const words = new Float32Array(Math.ceil(codes.length / K));
  for (let j = 0; j < words.length; j++) {
    let w = 0;
    for (let k = 0; k < K; k++) {
      const i = j * K + k;
      if (i >= codes.length) break;
      const c = codes[i];
      if (!(Number.isInteger(c) && c >= 0 && c < limit)) throw new Error(`code ${c} at ${i} does not fit ${bits} bits`);
      w += c * 2 ** (bits * k);
    }
    words[j] = w;
  }
  return words;
}

/** Host inverse of packCodes. */
export function unpackCodesHost(words: Float32Array, bits: CodeBits, count: number): Uint8Array {
  const K = codesPerWord(bits);
  if (count > words.length * K) throw new Error(`${words.length} words hold at most ${words.length * K} codes, asked for ${count}`);
  const out = new Uint8Array(count);
  const base = 1 << bits;
  for (let i = 0; i < count; i++) {
    const w = words[Math.floor(i / K)];
    out[i] = Math.floor(w / 2 ** (bits * (i % K))) % base;
  }
  return out;
}

/**
 * Device unpack: words [W] -> codes [count] as float32 integers, with tfjs ops (exact on every
 * backend). Intermediates are freed as soon as they are used: the peak is the K digit planes
 * (count floats) plus their interleaved copy.
 */
export function unpackCodes(words: tf.Tensor1D, bits: CodeBits, count: number): tf.Tensor1D {
  const K = codesPerWord(bits);
  const W = words.shape[0];
  if (count > W * K) throw new Error(`${W} words hold at most ${W * K} codes, asked for ${count}`);
  const base = 2 ** bits;
  const digits: tf.Tensor1D[] = [];
  let cur: tf.Tensor1D = words;
  for (let k = 0; k < K; k++) {
    if (k === K - 1) {
      // The top digit is what is left (words < 2^24).
      digits.push(cur === words ? tf.clone(words) : cur);
      break;
    }
    const next = tf.tidy(() => tf.floor(tf.mul(cur, 1 / base))) as tf.Tensor1D;
    digits.push(tf.tidy(() => tf.sub(cur, tf.mul(next, base))) as tf.Tensor1D);
    if (cur !== words) cur.dispose();
    cur = next;
  }
  const stacked = tf.stack(digits, 1);
  tf.dispose(digits);
  const flat = tf.reshape(stacked, [W * K]) as tf.Tensor1D;
  stacked.dispose();
  if (count === W * K) return flat;
  const cut = tf.slice(flat, 0, count);
  flat.dispose();
  return cut;
}
