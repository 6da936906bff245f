/**
 * The numeric building blocks shared by the three IDEFICS2 towers, written for the wasm backend:
 * plain (untransposed) matMuls, all heads of all sequences in one batched matMul, grouped-query
 * attention without materialising repeated K/V (queries are grouped per KV head instead), and
 * additive masks that broadcast rather than being built per row.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation, RopeConfig } from './config';

/** Large negative instead of -inf: a fully masked row stays finite (no NaN in gradients). */
export const MASKED = -1e9;

/**
 * RMSNorm x * rsqrt(mean(x^2) + eps) * weight over the last axis. One custom-gradient op: the tape
 * keeps x and the [.., 1] inverse RMS instead of the five [.., d] intermediates of the plain ops
 * (training memory), and the backward is four elementwise passes. The forward is the plain ops'.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const f = tf.customGrad((xx, ww, save) => {
    const xt = xx as tf.Tensor;
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xt), -1, true), eps));
    (save as tf.GradSaveFunc)([xt, ww as tf.Tensor, r]);
    return {
      value: tf.mul(tf.mul(xt, r), ww as tf.Tensor),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sx, sw, sr] = saved;
          const gw = tf.mul(dy, sw);
          // d/dx: r * g - x * r^3 * mean(g * x)
          const dx = tf.sub(tf.mul(gw, sr), tf.mul(sx, tf.mul(tf.pow(sr, 3), tf.mean(tf.mul(gw, sx), -1, true))));
          const d = sw.shape[0];
          const dw = tf.sum(tf.reshape(tf.mul(dy, tf.mul(sx, sr)), [-1, d]), 0);
          return [dx, dw];
        }),
    };
  });
  return f(x, weight);
}

/**
 * act(g) * u (the gated MLP of SwiGLU layers). For silu one custom-gradient op keeping only g and u
 * for the backward; other activations use the plain ops. Same forward numbers either way.
 */
export function gatedActivation(g: tf.Tensor, u: tf.Tensor, act: Activation): tf.Tensor {
  if (act !== 'silu') return tf.mul(activate(g, act), u);
  const f = tf.customGrad((gg, uu, save) => {
    (save as tf.GradSaveFunc)([gg as tf.Tensor, uu as tf.Tensor]);
    return {
      value: tf.mul(tf.mul(gg as tf.Tensor, tf.sigmoid(gg as tf.Tensor)), uu as tf.Tensor),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sg, su] = saved;
          const sig = tf.sigmoid(sg);
          // silu'(g) = s * (1 + g * (1 - s))
          const dsilu = tf.mul(sig, tf.add(tf.mul(sg, tf.sub(1, sig)), 1));
          return [tf.mul(tf.mul(dy, su), dsilu), tf.mul(dy, tf.mul(sg, sig))];
        }),
    };
  });
  return f(g, u);
}

export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function activate(x: tf.Tensor, act: Activation): tf.Tensor {
  switch (act) {
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
    case 'relu':
      return tf.relu(x);
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case 'gelu_pytorch_tanh':
    case 'gelu_new': {
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
    }
  }
}

export interface AttentionShape {
  readonly batch: number;
  readonly queryLen: number;
  readonly keyLen: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

/**
 * Scaled dot-product attention. q [B*Tq, H*hd] (already rotated, not yet scaled), k and v
 * [B*Tk, K*hd]; `mask` is additive and broadcastable to [B, K, G, Tq, Tk] (G = H/K), e.g.
 * [1,1,1,Tq,Tk] for causal or [B,1,1,1,Tk] for key padding. Head h reads KV head floor(h / G), as
 * transformers' repeat_kv. Returns [B*Tq, H*hd] and, on request, the probabilities [B, H, Tq, Tk].
 */
export function attention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  s: AttentionShape,
  masks: readonly tf.Tensor[],
  wantProbs: boolean,
): { out: tf.Tensor2D; probs?: tf.Tensor4D } {
  const { batch: B, queryLen: Tq, keyLen: Tk, heads: H, kvHeads: K, headDim: hd } = s;
  const G = H / K;
  const qh = tf.reshape(tf.transpose(tf.reshape(tf.mul(q, 1 / Math.sqrt(hd)), [B, Tq, K, G, hd]), [0, 2, 3, 1, 4]), [B * K, G * Tq, hd]);
  const kh = tf.reshape(tf.transpose(tf.reshape(k, [B, Tk, K, hd]), [0, 2, 3, 1]), [B * K, hd, Tk]);
  const vh = tf.reshape(tf.transpose(tf.reshape(v, [B, Tk, K, hd]), [0, 2, 1, 3]), [B * K, Tk, hd]);
  let scores: tf.Tensor = tf.matMul(qh, kh);
  if (masks.length > 0) {
    scores = tf.reshape(scores, [B, K, G, Tq, Tk]);
    for (const m of masks) scores = tf.add(scores, m);
    scores = tf.reshape(scores, [B * K, G * Tq, Tk]);
  }
  const probs = tf.softmax(scores, -1);
  const ctx = tf.matMul(probs as tf.Tensor3D, vh);
  const out = tf.reshape(tf.transpose(tf.reshape(ctx, [B, K, G, Tq, hd]), [0, 3, 1, 2, 4]), [B * Tq, H * hd]) as tf.Tensor2D;
  return wantProbs ? { out, probs: tf.reshape(probs, [B, H, Tq, Tk]) as tf.Tensor4D } : { out };
}

/** Additive key mask [n, 1, 1, 1, Tk] from a 0/1 validity array [n, Tk], or null if nothing is masked. */
export function keyPaddingMask(valid: ArrayLike<number>, n: number, tk: number): tf.Tensor | null {
  let any = false;
  const data = new Float32Array(n * tk);
  for (let i = 0; i < n * tk; i++) {
    if (!valid[i]) {
      data[i] = MASKED;
      any = true;
    }
  }
  return any ? tf.tensor(data, [n, 1, 1, 1, tk]) : null;
}

/**
 * RoPE inverse frequencies [hd / 2] as transformers computes them, in float32 (each step rounded as
 * torch rounds it). Default: inv_freq = 1 / theta ** (arange(0, dim, 2, int64).float() / dim).
 * "llama3" (_compute_llama3_parameters, Llama 3.1): with wavelen = 2 pi / inv_freq,
 * low_freq_wavelen = original_max_position_embeddings / low_freq_factor and high_freq_wavelen =
 * original_max_position_embeddings / high_freq_factor, wavelengths above low_freq_wavelen get
 * inv_freq / factor, those below high_freq_wavelen keep inv_freq, and the band between is
 * interpolated: s = (original_max_position_embeddings / wavelen - low_freq_factor) /
 * (high_freq_factor - low_freq_factor), (1 - s) * inv_freq / factor + s * inv_freq. torch evaluates
 * `c / x` as reciprocal(x) * c and casts the Python scalars to float32, so this does the same.
 */
export function ropeInvFreq(headDim: number, rope: number | RopeConfig): Float32Array {
  const f = Math.fround;
  const half = headDim / 2;
  const theta = typeof rope === 'number' ? rope : rope.theta;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
  if (typeof rope === 'number' || rope.type === 'default') return inv;
  const old = rope.originalMaxPositionEmbeddings;
  const factor = f(rope.factor);
  const lowFreqFactor = f(rope.lowFreqFactor);
  const lowWavelen = f(old / rope.lowFreqFactor);
  const highWavelen = f(old / rope.highFreqFactor);
  const twoPi = f(2 * Math.PI);
  const oldF = f(old);
  const span = f(rope.highFreqFactor - rope.lowFreqFactor);
  for (let i = 0; i < half; i++) {
    const x = inv[i];
    const wavelen = f(f(1 / x) * twoPi);
    let y = wavelen > lowWavelen ? f(x / factor) : x;
    if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
      const s = f(f(f(f(1 / wavelen) * oldF) - lowFreqFactor) / span);
      y = f(f(f(f(1 - s) * y) / factor) + f(s * y));
    }
    inv[i] = y;
  }
  return inv;
}

/**
 * Rotary position embedding tables for the given positions (rotate_half convention, the inverse
 * frequencies of ropeInvFreq: a number is the base of the default RoPE): cos [T, hd] and a
 * sign-folded sin [T, hd] whose first half is negated, so that rope(x) = x * cos + swapHalves(x) * sinSigned.
 */
export function ropeTables(positions: ArrayLike<number>, headDim: number, rope: number | RopeConfig): { cos: Float32Array; sinSigned: Float32Array } {
  const half = headDim / 2;
  const T = positions.length;
  const cos = new Float32Array(T * headDim);
  const sin = new Float32Array(T * headDim);
  const invFreq = ropeInvFreq(headDim, rope);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[t] * invFreq[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * headDim + i] = c;
      cos[t * headDim + half + i] = c;
      sin[t * headDim + i] = -s;
      sin[t * headDim + half + i] = s;
    }
  }
  return { cos, sinSigned: sin };
}

/**
 * The permutation matrix R [hd, hd] with x R = [x2, x1] (the halves of x swapped). RoPE uses it
 * instead of tf.reverse: on wasm a tiny plain matMul is several times faster than Reverse, and it
 * is exact (one product by 1 plus zeros per output).
 */
export function halfSwapMatrix(hd: number): tf.Tensor2D {
  const half = hd / 2;
  const data = new Float32Array(hd * hd);
  for (let i = 0; i < half; i++) {
    data[(half + i) * hd + i] = 1;
    data[i * hd + half + i] = 1;
  }
  return tf.tensor2d(data, [hd, hd]);
}

/**
 * Applies RoPE to x [B*T, heads*hd] laid out as [B, T, heads, hd]; cos / sinSigned are tensors
 * [1, T, 1, hd] (shared positions) or [B, T, 1, hd]. `swap` = halfSwapMatrix(hd) (made here if
 * omitted; pass it to reuse one across layers).
 */
export function applyRope(x: tf.Tensor, B: number, T: number, heads: number, hd: number, cos: tf.Tensor, sinSigned: tf.Tensor, swap?: tf.Tensor2D): tf.Tensor {
  const x4 = tf.reshape(x, [B, T, heads, hd]);
  const r = swap ?? halfSwapMatrix(hd);
  const swapped = tf.reshape(tf.matMul(tf.reshape(x, [B * T * heads, hd]) as tf.Tensor2D, r), [B, T, heads, hd]);
  if (!swap) r.dispose();
  return tf.reshape(tf.add(tf.mul(x4, cos), tf.mul(swapped, sinSigned)), [B * T, heads * hd]);
}

/**
 * a [M, K] x b [K, N] for a thin a (K small, e.g. a LoRA rank) and both inputs trainable. tfjs'
 * gradient db = a^T g makes the large g [M, N] the second operand, which XNNPACK re-packs on every
 * call (slow on wasm); db = (g^T a)^T gives the same numbers with a small second operand.
 */
export const matMulThin = tf.customGrad((a, b, save) => {
  (save as tf.GradSaveFunc)([a as tf.Tensor, b as tf.Tensor]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [sa, sb] = saved as tf.Tensor2D[];
        const g = dy as tf.Tensor2D;
        return [tf.matMul(g, tf.transpose(sb) as tf.Tensor2D), tf.transpose(tf.matMul(tf.transpose(g) as tf.Tensor2D, sa))];
      }),
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * Inverted-dropout multiplier [rows, cols] (0 or 1/(1-rate)) from a 32-bit seed (from element
 * `offset` of the sequence that seed draws), drawn in
 * JavaScript with a small counter-based generator: tf.dropout's per-element seeded RNG costs ~30 ns
 * an element on this CPU, this ~2.
 */
export function dropoutMask(rows: number, cols: number, rate: number, seed: number, offset = 0): tf.Tensor2D {
  const n = rows * cols;
  const data = new Float32Array(n);
  const keep = 1 - rate;
  const scale = 1 / keep;
  // 24-bit threshold: an element is kept when its uniform draw u in [0, 1) is < keep.
  const threshold = Math.floor(keep * 16777216);
  // Starting `offset` elements in: the rows of a larger mask drawn with the same seed (a chunk).
  let state = (seed + Math.imul(offset, 0x9e3779b9)) | 0;
  for (let i = 0; i < n; i++) {
    // splitmix32
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z = (z ^ (z >>> 15)) >>> 8;
    if (z < threshold) data[i] = scale;
  }
  return tf.tensor2d(data, [rows, cols]);
}
