/**
 * The two forward paths of Idefics2Backbone.pairLogits (sync, differentiable) on a prepared batch
 * (batch-layout.ts). Both run the LoRA-adapted connector once per unique image of the batch (the
 * liked and disliked sequences share 16 of 17 images), then the text model.
 *
 * - `sharedPath` (default, option sharedPrefix): the liked- and disliked-target sequences of an
 *   example have the same tokens and images up to the target image, so that prefix runs once and
 *   only the two target turns run separately, attending to the prefix's keys (@userpref/mllm's
 *   attention.ts); gradients of both target turns flow back through the one prefix.
 * - `fullPath` (sharedPrefix: false): two complete sequences per example; gives the same logits.
 * With LoRA dropout in training the shared prefix draws one dropout mask for both sequences (it is
 * one computation), the full path two.
 *
 * Preference tokens (stage 2): the provider's [B, P, d] embeddings are prepended before BOS of both
 * sequences of each example (in the shared path: of the prefix); positions and read index follow.
 * PrefixContext.historyMean is the mean input embedding (image features included) of each example's
 * reference history: the tokens up to and including the last <end_of_utterance> before the target
 * image (BOS + "User:" when there are no references).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ForwardOptions, PairLogits, PrefixProvider } from '@userpref/core';
import { pairLogits, prefixTokens, prefixTurnsLayout, rowContext, sharedPairLogits, takeRows, textForwardPacked, type ReadAt, type RunContext } from '@userpref/mllm';
import type { Idefics2PreparedBatch } from './batch-layout';
import type { Idefics2Model } from './model/idefics2';

/** Two complete sequences per example (the reference path for the shared prefix). */
export function fullPath(m: Idefics2Model, prepared: Idefics2PreparedBatch, options: ForwardOptions, provider: PrefixProvider | null, checkpointing: boolean): PairLogits {
  const B = prepared.size;
  const T = prepared.seqLen;
  const ctx: RunContext = { training: options.training, seed: options.seed, checkpoint: checkpointing };
  return tf.tidy(() => {
    const feats = m.connector(prepared.context, prepared.contextValid, ctx);
    const perSlot = takeRows(feats, prepared.slotImages);
    const ids = new Int32Array(2 * B * T);
    ids.set(prepared.inputIds, 0);
    ids.set(prepared.inputIds, B * T);
    const mask = new Uint8Array(2 * B * T);
    mask.set(prepared.attentionMask, 0);
    mask.set(prepared.attentionMask, B * T);
    let prefix: tf.Tensor3D | undefined;
    let auxLoss: tf.Scalar | undefined;
    if (provider) {
      const base = m.embed(ids.subarray(0, B * T), B, T, tf.slice(perSlot, [0, 0, 0], [prepared.likedSlots, -1, -1]) as tf.Tensor3D, mask.subarray(0, B * T));
      const out = prefixTokens(provider, prepared.historyWeights, base.embeds, B, options.training);
      prefix = tf.concat([out.embeddings, out.embeddings], 0) as tf.Tensor3D;
      auxLoss = out.auxLoss;
    }
    const emb = m.embed(ids, 2 * B, T, perSlot, mask, prefix);
    const { logits } = m.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx });
    const [liked, disliked] = tf.split(logits, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
    return pairLogits(liked, disliked, auxLoss);
  });
}

/**
 * The reference prefix of each example once, then its liked and disliked target turns (RoPE
 * positions continuing after the prefix, keys = the prefix's real keys + the turn's own), packed
 * without padding into one row matrix per unique prefix.
 */
export function sharedPath(m: Idefics2Model, prepared: Idefics2PreparedBatch, options: ForwardOptions, provider: PrefixProvider | null, checkpointing: boolean): PairLogits {
  const B = prepared.size;
  const s = prepared.shared;
  const d = m.config.text.hiddenSize;
  const ctx: RunContext = { training: options.training, seed: options.seed, checkpoint: checkpointing };
  const Up = s.prefixLengths.length;
  return tf.tidy(() => {
    const feats = m.connector(prepared.context, prepared.contextValid, ctx);
    const refFeats = s.refImages.length > 0 ? takeRows(feats, s.refImages) : null;
    const pre = m.embed(s.prefixIds, Up, s.prefixLen, refFeats, s.prefixMask);
    let prefixEmb = pre.embeds;
    let P = 0;
    let auxLoss: tf.Scalar | undefined;
    if (provider) {
      if (Up !== B) throw new Error('backbone idefics2: a batch prepared without a prefix provider cannot run with one (prepare() again after setPrefixProvider)');
      const out = prefixTokens(provider, s.historyWeights, pre.embeds, B, options.training);
      P = out.embeddings.shape[1];
      prefixEmb = tf.concat([out.embeddings, pre.embeds], 1) as tf.Tensor3D;
      auxLoss = out.auxLoss;
    }
    const targets = takeRows(feats, [...s.likedTarget, ...s.dislikedTarget]);
    const sufIds = new Int32Array(2 * s.suffixIds.length);
    sufIds.set(s.suffixIds, 0);
    sufIds.set(s.suffixIds, s.suffixIds.length);
    const sufMask = new Uint8Array(2 * s.suffixMask.length);
    sufMask.set(s.suffixMask, 0);
    sufMask.set(s.suffixMask, s.suffixMask.length);
    const suf = m.embed(sufIds, 2 * B, s.suffixLen, targets, sufMask).embeds;
    // One packed forward per unique prefix: the prefix, then the liked and the disliked turns of
    // its examples. (Per group rather than the whole batch: on wasm every row slice copies its
    // whole source tensor, so one big packed matrix would cost O(batch^2) in slicing.)
    const take = (t: tf.Tensor3D, r: number, len: number) => tf.reshape(t.shape[0] === 1 && t.shape[1] === len ? t : tf.slice(t, [r, 0, 0], [1, len, d]), [len, d]) as tf.Tensor2D;
    const rowOf: ReadAt = [];
    const groupLogits: tf.Tensor2D[] = [];
    for (let u = 0; u < Up; u++) {
      const members = [...Array(B).keys()].filter((b) => s.prefixOf[b] === u);
      const len = P + s.prefixLengths[u];
      const pieces: tf.Tensor2D[] = [take(prefixEmb, u, len)];
      const turns: number[] = [];
      for (const which of ['liked', 'disliked'] as const) {
        for (const b of members) {
          const sl = s.suffixLengths[b];
          pieces.push(take(suf, (which === 'liked' ? 0 : B) + b, sl));
          rowOf[b] ??= { liked: [0, 0], disliked: [0, 0] };
          rowOf[b][which] = [u, turns.push(sl) - 1];
        }
      }
      const layout = prefixTurnsLayout(len, turns);
      const packed = tf.concat(pieces, 0) as tf.Tensor2D;
      groupLogits.push(textForwardPacked(m.params, m.config, { embeds: packed, ...layout }, { ctx: rowContext(ctx, u) }).logits);
    }
    return sharedPairLogits(groupLogits, rowOf, auxLoss);
  });
}
