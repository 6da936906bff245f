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
import { disposePlan, planSegments, segmentAttention, type AttentionSegment, type PlannedSegment } from './attention';
import type { DecoderModelConfig } from './config';
import { EVAL } from './linear';
import { MASKED, applyRope, gatedActivation, halfSwapMatrix, ropeTables, rmsNorm } from './ops';
import type { DecoderModelParams } from './weights';

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
 * Attention of layer `layer`: queries q (all rows, or only the kept rows in a pruned last layer),
 * keys and values k, v of all rows; returns [q rows, H*hd].
 */
type Attend = (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, layer: number, pruned: boolean) => tf.Tensor2D;

/**
 * The decoder layers over packed rows h [N, d]. With `capture`, each layer's rotated keys and
 * values are kept and returned. With `keepRows`, the last layer computes keys and values for every
 * row but queries, attention output and MLP only for those rows (nothing else is read): h is then
 * [keepRows, d].
 */
function decoderLayers(params: DecoderModelParams, config: DecoderModelConfig, input: tf.Tensor2D, positions: ArrayLike<number>, attend: Attend, capture: boolean, keepRows?: readonly number[]): { h: tf.Tensor2D; keys: tf.Tensor2D[]; values: tf.Tensor2D[] } {
  const tc = config.text;
  const N = input.shape[0];
  const keys: tf.Tensor2D[] = [];
  const values: tf.Tensor2D[] = [];
  const h = tf.tidy(() => {
    const { cos, sinSigned } = ropeTables(positions, tc.headDim, tc.rope);
    const cosT = tf.tensor(cos, [1, N, 1, tc.headDim]);
    const sinT = tf.tensor(sinSigned, [1, N, 1, tc.headDim]);
    const swap = halfSwapMatrix(tc.headDim);
    let h = input;
    const last = params.text.layers.length - 1;
    params.text.layers.forEach((layer, l) => {
      h = tf.tidy(() => {
        const a = rmsNorm(h, layer.inputNorm.w, tc.rmsNormEps) as tf.Tensor2D;
        const [q, k, v] = layer.qkv.apply(a, EVAL);
        let qr = applyRope(q, 1, N, tc.numHeads, tc.headDim, cosT, sinT, swap) as tf.Tensor2D;
        const kr = applyRope(k, 1, N, tc.numKvHeads, tc.headDim, cosT, sinT, swap) as tf.Tensor2D;
        if (capture) {
          keys.push(tf.keep(kr));
          values.push(tf.keep(v));
        }
        const pruned = keepRows !== undefined && l === last;
        let rows = h;
        if (pruned) {
          const idx = tf.tensor1d(keepRows as number[], 'int32');
          qr = tf.gather(qr, idx);
          rows = tf.gather(h, idx);
        }
        const h1 = tf.add(rows, layer.o.apply1(attend(qr, kr, v, l, pruned), EVAL));
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
export function runPrefix(params: DecoderModelParams, config: DecoderModelConfig, embeds: tf.Tensor2D): PrefixKv {
  const L = embeds.shape[0];
  if (embeds.shape[1] !== config.text.hiddenSize) throw new Error(`prefix embeddings have width ${embeds.shape[1]}; text_config.hidden_size is ${config.text.hiddenSize}`);
  if (L === 0) throw new Error('the prefix has no rows');
  const positions = Int32Array.from({ length: L }, (_, t) => t);
  const planned = plan(config, [{ query: { start: 0, len: L }, keys: [{ start: 0, len: L }], causalOffset: 0 }]);
  const out = decoderLayers(params, config, embeds, positions, segmentAttend(config, planned, null), true);
  disposePlan(planned);
  out.h.dispose();
  return new PrefixKv(L, out.keys, out.values);
}

/**
 * Logits [suffixes, vocab] at the last row of each suffix. `embeds` [sum(lengths), d] holds the
 * suffixes one after another; suffix i has `lengths[i]` rows.
 */
export function runAfterPrefix(params: DecoderModelParams, config: DecoderModelConfig, kv: PrefixKv, embeds: tf.Tensor2D, lengths: readonly number[]): tf.Tensor2D {
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
  // Equal suffixes that the sliding window cannot cut: all queries against the prefix in one
  // product per KV head (./prefix-kv suffixAttention); otherwise one attention segment per suffix.
  const equal = lengths.every((n) => n === lengths[0]);
  const windowed = tc.slidingWindow !== null && L + Math.max(...lengths) > tc.slidingWindow;
  if (equal && !windowed) {
    // The last layer runs only each suffix's last row (the one read).
    const s = lengths[0];
    const attend: Attend = (q, k, v, l, pruned) => suffixAttention(q, k, v, kv.keys[l], kv.values[l], lengths.length, s, pruned ? 1 : s, tc);
    const { h } = decoderLayers(params, config, embeds, positions, attend, false, readRows);
    return tf.tidy(() => {
      const logits = params.text.lmHead.apply1(rmsNorm(h, params.text.norm.w, tc.rmsNormEps) as tf.Tensor2D, EVAL);
      h.dispose();
      return logits;
    });
  }
  const planned = plan(config, segments);
  const { h } = decoderLayers(params, config, embeds, positions, segmentAttend(config, planned, kv), false);
  disposePlan(planned);
  return tf.tidy(() => {
    const rows = tf.concat(readRows.map((r) => tf.slice(h, [r, 0], [1, -1])), 0) as tf.Tensor2D;
    h.dispose();
    return params.text.lmHead.apply1(rmsNorm(rows, params.text.norm.w, tc.rmsNormEps) as tf.Tensor2D, EVAL);
  });
}

/** Attention through planned segments (./attention.ts); with `past`, the keys and values are past's rows then the layer's own. */
function segmentAttend(config: DecoderModelConfig, plan: readonly PlannedSegment[], past: PrefixKv | null): Attend {
  const tc = config.text;
  const dims = { heads: tc.numHeads, kvHeads: tc.numKvHeads, headDim: tc.headDim };
  return (q, k, v, l) => {
    const kAll = past ? (tf.concat([past.keys[l], k], 0) as tf.Tensor2D) : k;
    const vAll = past ? (tf.concat([past.values[l], v], 0) as tf.Tensor2D) : v;
    return segmentAttention(q, kAll, vAll, plan, dims).out;
  };
}

/** Segments with the text model's sliding window, planned (masks are tensors: disposePlan them). */
function plan(config: DecoderModelConfig, segments: readonly AttentionSegment[]): PlannedSegment[] {
  return planSegments(segments.map((s) => ({ ...s, window: s.window ?? config.text.slidingWindow })));
}

/**
 * Causal attention of n suffixes of s rows each over a shared prefix (pk, pv [L, K*hd]) and,
 * causally, their own rows (k, v [n*s, K*hd]). The queries q [n*sq, H*hd] (rotated, not scaled)
 * are the last sq rows of each suffix (sq = s: all of them). Per KV head, the scores against the
 * prefix of ALL suffixes are one [n*sq*G, hd] x [hd, L] product; the scores against the own rows
 * a batched [sq*G, hd] x [hd, s] per suffix; the softmax runs over both parts (one max, one sum),
 * as a softmax over the concatenated keys would.
 */
export function suffixAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, pk: tf.Tensor2D, pv: tf.Tensor2D, n: number, s: number, sq: number, tc: { numHeads: number; numKvHeads: number; headDim: number }): tf.Tensor2D {
  const H = tc.numHeads;
  const K = tc.numKvHeads;
  const hd = tc.headDim;
  const G = H / K;
  const L = pk.shape[0];
  return tf.tidy(() => {
    // Query row i of a suffix is its row s - sq + i: it sees its own rows 0 .. s - sq + i.
    const causal = new Float32Array(sq * G * s);
    for (let i = 0; i < sq; i++) for (let g = 0; g < G; g++) causal.fill(MASKED, (i * G + g) * s + s - sq + i + 1, (i * G + g + 1) * s);
    const mask = sq === 1 ? null : tf.tensor3d(causal, [1, sq * G, s]);
    // [n*sq, K, G, hd] -> per KV head [n*sq*G, hd] (rows: suffix, token, group member).
    const qh = tf.unstack(tf.reshape(tf.mul(q, 1 / Math.sqrt(hd)), [n * sq, K, G * hd]), 1).map((x) => tf.reshape(x, [n * sq * G, hd]) as tf.Tensor2D);
    const kh = tf.unstack(tf.reshape(k, [n * s, K, hd]), 1);
    const vh = tf.unstack(tf.reshape(v, [n * s, K, hd]), 1);
    const pkh = tf.unstack(tf.reshape(pk, [L, K, hd]), 1) as tf.Tensor2D[];
    const pvh = tf.unstack(tf.reshape(pv, [L, K, hd]), 1) as tf.Tensor2D[];
    const outs: tf.Tensor[] = [];
    for (let h = 0; h < K; h++) {
      const sp = tf.matMul(qh[h], pkh[h], false, true); // [n*sq*G, L]
      const own = tf.matMul(tf.reshape(qh[h], [n, sq * G, hd]), tf.reshape(kh[h], [n, s, hd]), false, true); // [n, sq*G, s]
      const so = mask ? tf.add(own, mask) : own;
      const spr = tf.reshape(sp, [n, sq * G, L]);
      const m = tf.maximum(tf.max(spr, -1, true), tf.max(so, -1, true));
      const ep = tf.exp(tf.sub(spr, m));
      const eo = tf.exp(tf.sub(so, m));
      const denom = tf.add(tf.sum(ep, -1, true), tf.sum(eo, -1, true));
      const num = tf.add(tf.reshape(tf.matMul(tf.reshape(ep, [n * sq * G, L]), pvh[h]), [n, sq * G, hd]), tf.matMul(eo, tf.reshape(vh[h], [n, s, hd])));
      outs.push(tf.reshape(tf.div(num, denom), [n * sq, G * hd]));
    }
    return (K === 1 ? outs[0] : tf.reshape(tf.stack(outs, 1), [n * sq, H * hd])) as tf.Tensor2D;
  });
}
