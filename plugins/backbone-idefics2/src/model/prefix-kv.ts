/**
 * The text model in two steps around one shared prefix, for scoring many candidates after one
 * history (Backbone.openHistory):
 *
 * - `runPrefix` runs the prefix rows (preference tokens, BOS, the reference turns, the target's
 *   opening <fake_token_around_image>) once and keeps, per layer, its RoPE-rotated keys and its
 *   values: the key-value state of the history.
 * - `runAfterPrefix` runs any number of independent suffixes (each candidate's target turn) packed
 *   in one row matrix on top of that state: suffix i attends to the whole prefix and causally to
 *   its own rows, never to another suffix, with RoPE positions continuing after the prefix.
 *
 * This is the computation of textForwardPacked (./text.ts) with segments [prefix] and [suffix i:
 * keys = prefix rows + its own rows], split where the prefix ends; the decoder layer below is that
 * file's layer, written once more because the keys and values of the prefix have to leave it. Tests
 * (test/history.spec.ts) hold both to the same logits. Inference only: no gradient is kept.
 */
import * as tf from '@tensorflow/tfjs-core';
import { planSegments, segmentAttention, type AttentionSegment } from './attention';
import type { Idefics2Config } from './config';
import { EVAL } from './linear';
import { applyRope, gatedActivation, halfSwapMatrix, ropeTables, rmsNorm } from './ops';
import type { Idefics2Params } from './weights';

/** Per-layer rotated keys and values of a prefix of `length` rows (owned; dispose when done). */
export class PrefixKv {
  constructor(
    readonly length: number,
    /** Per layer [length, kvHeads * headDim], RoPE applied. */
    readonly keys: readonly tf.Tensor2D[],
    /** Per layer [length, kvHeads * headDim]. */
    readonly values: readonly tf.Tensor2D[],
  ) {}

  get bytes(): number {
    return this.keys.concat(this.values).reduce((s, t) => s + t.size * 4, 0);
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
  }
}

/**
 * The decoder layers over packed rows h [N, d]. With `past`, layer l's keys and values are
 * past.keys[l] / past.values[l] followed by the rows' own (the segments' key ranges index that
 * concatenation). With `capture`, each layer's rotated keys and values are kept and returned.
 */
function decoderLayers(
  params: Idefics2Params,
  config: Idefics2Config,
  input: tf.Tensor2D,
  positions: ArrayLike<number>,
  segments: readonly AttentionSegment[],
  past: PrefixKv | null,
  capture: boolean,
): { h: tf.Tensor2D; keys: tf.Tensor2D[]; values: tf.Tensor2D[] } {
  const tc = config.text;
  const N = input.shape[0];
  const keys: tf.Tensor2D[] = [];
  const values: tf.Tensor2D[] = [];
  const dims = { heads: tc.numHeads, kvHeads: tc.numKvHeads, headDim: tc.headDim };
  const h = tf.tidy(() => {
    const { cos, sinSigned } = ropeTables(positions, tc.headDim, tc.ropeTheta);
    const cosT = tf.tensor(cos, [1, N, 1, tc.headDim]);
    const sinT = tf.tensor(sinSigned, [1, N, 1, tc.headDim]);
    const swap = halfSwapMatrix(tc.headDim);
    const plan = planSegments(segments.map((s) => ({ ...s, window: s.window ?? tc.slidingWindow })));
    let h = input;
    params.text.layers.forEach((layer, l) => {
      h = tf.tidy(() => {
        const a = rmsNorm(h, layer.inputNorm.w, tc.rmsNormEps) as tf.Tensor2D;
        const [q, k, v] = layer.qkv.apply(a, EVAL);
        const qr = applyRope(q, 1, N, tc.numHeads, tc.headDim, cosT, sinT, swap) as tf.Tensor2D;
        const kr = applyRope(k, 1, N, tc.numKvHeads, tc.headDim, cosT, sinT, swap) as tf.Tensor2D;
        if (capture) {
          keys.push(tf.keep(kr));
          values.push(tf.keep(v));
        }
        const kAll = past ? (tf.concat([past.keys[l], kr], 0) as tf.Tensor2D) : kr;
        const vAll = past ? (tf.concat([past.values[l], v], 0) as tf.Tensor2D) : v;
        const att = segmentAttention(qr, kAll, vAll, plan, dims);
        const h1 = tf.add(h, layer.o.apply1(att.out, EVAL));
        const m = rmsNorm(h1, layer.postNorm.w, tc.rmsNormEps) as tf.Tensor2D;
        const [g, u] = layer.gateUp.apply(m, EVAL);
        return tf.add(h1, layer.down.apply1(gatedActivation(g, u, tc.hiddenAct) as tf.Tensor2D, EVAL)) as tf.Tensor2D;
      });
    });
    return h;
  });
  return { h, keys, values };
}

/** Runs prefix embeddings [L, d] (positions 0..L-1, causal) and keeps their key-value state. */
export function runPrefix(params: Idefics2Params, config: Idefics2Config, embeds: tf.Tensor2D): PrefixKv {
  const L = embeds.shape[0];
  if (embeds.shape[1] !== config.text.hiddenSize) throw new Error(`prefix embeddings have width ${embeds.shape[1]}; text_config.hidden_size is ${config.text.hiddenSize}`);
  if (L === 0) throw new Error('the prefix has no rows');
  const positions = Int32Array.from({ length: L }, (_, t) => t);
  const out = decoderLayers(params, config, embeds, positions, [{ query: { start: 0, len: L }, keys: [{ start: 0, len: L }], causalOffset: 0 }], null, true);
  out.h.dispose();
  return new PrefixKv(L, out.keys, out.values);
}

/**
 * Logits [suffixes, vocab] at the last row of each suffix. `embeds` [sum(lengths), d] holds the
 * suffixes one after another; suffix i has `lengths[i]` rows.
 */
export function runAfterPrefix(params: Idefics2Params, config: Idefics2Config, kv: PrefixKv, embeds: tf.Tensor2D, lengths: readonly number[]): tf.Tensor2D {
  const tc = config.text;
  const N = embeds.shape[0];
  const total = lengths.reduce((s, n) => s + n, 0);
  if (total !== N) throw new Error(`suffix lengths add up to ${total} rows; the embeddings have ${N}`);
  if (kv.keys.length !== tc.numLayers) throw new Error(`the key-value state has ${kv.keys.length} layers; the model has ${tc.numLayers}`);
  const L = kv.length;
  const positions = new Int32Array(N);
  const segments: AttentionSegment[] = [];
  const readRows: number[] = [];
  let row = 0;
  for (const len of lengths) {
    if (!(len > 0)) throw new Error(`a suffix has ${len} rows`);
    for (let t = 0; t < len; t++) positions[row + t] = L + t;
    segments.push({ query: { start: row, len }, keys: [{ start: 0, len: L }, { start: L + row, len }], causalOffset: L });
    readRows.push(row + len - 1);
    row += len;
  }
  const { h } = decoderLayers(params, config, embeds, positions, segments, kv, false);
  return tf.tidy(() => {
    const rows = tf.concat(readRows.map((r) => tf.slice(h, [r, 0], [1, -1])), 0) as tf.Tensor2D;
    h.dispose();
    return params.text.lmHead.apply1(rmsNorm(rows, params.text.norm.w, tc.rmsNormEps) as tf.Tensor2D, EVAL);
  });
}
