/**
 * The numeric building blocks shared by the three IDEFICS2 towers, written for the wasm backend:
 * plain (untransposed) matMuls, all heads of all sequences in one batched matMul, grouped-query
 * attention without materialising repeated K/V (queries are grouped per KV head instead), and
 * additive masks that broadcast rather than being built per row.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from './config';

/** Large negative instead of -inf: a fully masked row stays finite (no NaN in gradients). */
export const MASKED = -1e9;

export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
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
 * Rotary position embedding tables for the given positions (Mistral's default RoPE,
 * rotate_half convention): cos [T, hd] and a sign-folded sin [T, hd] whose first half is negated,
 * so that rope(x) = x * cos + swapHalves(x) * sinSigned.
 */
export function ropeTables(positions: ArrayLike<number>, headDim: number, theta: number): { cos: Float32Array; sinSigned: Float32Array } {
  const half = headDim / 2;
  const T = positions.length;
  const cos = new Float32Array(T * headDim);
  const sin = new Float32Array(T * headDim);
  const invFreq = new Float64Array(half);
  // transformers: inv_freq = 1 / theta ** (arange(0, dim, 2, dtype=int64).float() / dim), in float32.
  for (let i = 0; i < half; i++) invFreq[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim))));
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
 * Applies RoPE to x [B*T, heads*hd] laid out as [B, T, heads, hd]; cos / sinSigned are tensors
 * [1, T, 1, hd] (shared positions) or [B, T, 1, hd].
 */
export function applyRope(x: tf.Tensor, B: number, T: number, heads: number, hd: number, cos: tf.Tensor, sinSigned: tf.Tensor): tf.Tensor {
  const x4 = tf.reshape(x, [B, T, heads, hd]);
  const swapped = tf.reshape(tf.reverse(tf.reshape(x4, [B, T, heads, 2, hd / 2]), 3), [B, T, heads, hd]);
  return tf.reshape(tf.add(tf.mul(x4, cos), tf.mul(swapped, sinSigned)), [B * T, heads * hd]);
}
