/**
 * The two forward paths of Idefics3Backbone.pairLogits (sync, differentiable) on a prepared batch
 * (batch-layout.ts): the LoRA-adapted connector on the batch's tiles, then the text model.
 *
 * - `sharedPath` (default, option sharedPrefix): the reference history of an example runs once and
 *   the liked and disliked target turns run on its keys (packed rows, per-segment attention);
 * - `fullPath` (sharedPrefix: false): two complete sequences per example; gives the same logits.
 *
 * Preference tokens go before the first token of both sequences; PrefixContext.historyMean is the
 * mean input embedding of the reference history (up to the last <end_of_utterance> before the
 * target image).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ForwardOptions, PairLogits, PrefixProvider } from '@userpref/core';
import { pairLogits, prefixTokens, stackHistoryWeights, prefixTurnsLayout, rowContext, sharedPairLogits, takeRows, textForwardPacked, type ReadAt, type RunContext as ForwardContext } from '@userpref/mllm';
import { tileIndices, type Idefics3PreparedBatch } from './batch-layout';
import type { Idefics3Model } from './model/idefics3';

const concatIds = (a: Int32Array, b: Int32Array) => {
  const out = new Int32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
};

/** Two complete sequences per example (the reference path for the shared prefix), right padded with `pad`. */
export function fullPath(m: Idefics3Model, prepared: Idefics3PreparedBatch, options: ForwardOptions, provider: PrefixProvider | null, pad: number): PairLogits {
  const B = prepared.size;
  const ctx: ForwardContext = { training: options.training, seed: options.seed };
  return tf.tidy(() => {
    const feats = m.connector(prepared.context, ctx);
    const seqs = [...prepared.rows.map((r) => concatIds(r.prefix, r.likedSuffix)), ...prepared.rows.map((r) => concatIds(r.prefix, r.dislikedSuffix))];
    const images = [...prepared.rows.map((r) => [...r.refs, r.liked]), ...prepared.rows.map((r) => [...r.refs, r.disliked])];
    const T = Math.max(...seqs.map((s) => s.length));
    const ids = new Int32Array(2 * B * T).fill(pad);
    const mask = new Uint8Array(2 * B * T);
    seqs.forEach((s, i) => {
      ids.set(s, i * T);
      mask.fill(1, i * T, i * T + s.length);
    });
    const perSeq = takeRows(feats, tileIndices(prepared.tileRanges, images.flat()));
    let prefix: tf.Tensor3D | undefined;
    let auxLoss: tf.Scalar | undefined;
    if (provider) {
      const likedTiles = tileIndices(prepared.tileRanges, images.slice(0, B).flat()).length;
      const base = m.embed(ids.subarray(0, B * T), B, T, tf.slice(perSeq, [0, 0, 0], [likedTiles, -1, -1]), mask.subarray(0, B * T));
      const out = prefixTokens(provider, stackHistoryWeights(prepared.rows.map((r) => r.history), T), base.embeds, B, options.training);
      prefix = tf.concat([out.embeddings, out.embeddings], 0) as tf.Tensor3D;
      auxLoss = out.auxLoss;
    }
    const emb = m.embed(ids, 2 * B, T, perSeq, mask, prefix);
    const { logits } = m.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx });
    const [liked, disliked] = tf.split(logits, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
    return pairLogits(liked, disliked, auxLoss);
  });
}

/** Each unique reference prefix once, then the liked and disliked target turns of its examples on its keys. */
export function sharedPath(m: Idefics3Model, prepared: Idefics3PreparedBatch, options: ForwardOptions, provider: PrefixProvider | null): PairLogits {
  const B = prepared.size;
  const d = m.config.text.hiddenSize;
  const ctx: ForwardContext = { training: options.training, seed: options.seed };
  const Up = prepared.prefixCount;
  if (provider && Up !== B) throw new Error('backbone idefics3: a batch prepared without a prefix provider cannot run with one (prepare() again after setPrefixProvider)');
  return tf.tidy(() => {
    const feats = m.connector(prepared.context, ctx);
    const embedRow = (ids: Int32Array, images: number[]) => {
      const t = images.length > 0 ? takeRows(feats, tileIndices(prepared.tileRanges, images)) : null;
      return tf.reshape(m.embed(ids, 1, ids.length, t).embeds, [ids.length, d]) as tf.Tensor2D;
    };
    const readAt: ReadAt = [];
    const groupLogits: tf.Tensor2D[] = [];
    let auxLoss: tf.Scalar | undefined;
    const auxTerms: tf.Scalar[] = [];
    for (let u = 0; u < Up; u++) {
      const members = [...Array(B).keys()].filter((b) => prepared.prefixOf[b] === u);
      const first = prepared.rows[members[0]];
      let prefixRows = embedRow(first.prefix, first.refs);
      if (provider) {
        const out = prefixTokens(provider, first.history, tf.expandDims(prefixRows, 0) as tf.Tensor3D, 1, options.training);
        prefixRows = tf.concat([tf.reshape(out.embeddings, [out.embeddings.shape[1], d]), prefixRows], 0) as tf.Tensor2D;
        if (out.auxLoss) auxTerms.push(out.auxLoss);
      }
      const pieces: tf.Tensor2D[] = [prefixRows];
      const turns: number[] = [];
      for (const which of ['liked', 'disliked'] as const) {
        for (const b of members) {
          const r = prepared.rows[b];
          const suffix = which === 'liked' ? r.likedSuffix : r.dislikedSuffix;
          pieces.push(embedRow(suffix, [which === 'liked' ? r.liked : r.disliked]));
          readAt[b] ??= { liked: [0, 0], disliked: [0, 0] };
          readAt[b][which] = [u, turns.push(suffix.length) - 1];
        }
      }
      const layout = prefixTurnsLayout(prefixRows.shape[0], turns);
      const packed = tf.concat(pieces, 0) as tf.Tensor2D;
      groupLogits.push(textForwardPacked(m.params, m.config, { embeds: packed, ...layout }, { ctx: rowContext(ctx, u) }).logits);
    }
    if (auxTerms.length > 0) auxLoss = (auxTerms.length === 1 ? auxTerms[0] : tf.div(tf.addN(auxTerms), auxTerms.length)) as tf.Scalar;
    return sharedPairLogits(groupLogits, readAt, auxLoss);
  });
}
