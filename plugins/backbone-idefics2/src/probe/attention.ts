/**
 * Reading the preference-token attention out of the text model's attention probabilities.
 *
 * Direction: the text model is causal and the preference tokens sit before BOS, so a preference
 * token (query) can never see the later target image: its row over the target-image columns is
 * exactly zero. The attention "between the preference tokens and the target image tokens" that
 * varies from user to user is therefore the other direction: the target image's `<image>` tokens
 * (queries, rows) attending to the preference tokens (keys, columns). For each preference token p
 * this module averages probs[b, h, q, p] over the selected heads h and over the target-image rows
 * q, giving one number per token (per layer).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Where one sequence's target image sits in the (prefix-grown) sequence. */
export interface TargetRows {
  /** Sequence index in the batch. */
  readonly batchIndex: number;
  /** Position of the first `<image>` token of the target image, counting the prefix. */
  readonly queryStart: number;
  /** Number of `<image>` tokens of the target image. */
  readonly queryCount: number;
}

/**
 * probs: [B, H, T, T] attention probabilities of one layer (queries on axis 2, keys on axis 3).
 * Returns, per requested sequence, the [prefixLength] mean over `heads` (all when null) and over
 * the target-image query rows of the attention to keys 0 .. prefixLength-1.
 */
export function targetToPrefixAttention(probs: tf.Tensor4D, rows: readonly TargetRows[], prefixLength: number, heads: readonly number[] | null = null): Float32Array[] {
  const [B, H, Tq, Tk] = probs.shape;
  if (!(Number.isInteger(prefixLength) && prefixLength >= 1 && prefixLength <= Tk)) throw new Error(`prefix length ${prefixLength} does not fit ${Tk} keys`);
  const hs = heads ?? [...Array(H).keys()];
  if (hs.length === 0) throw new Error('attention: no heads selected');
  for (const h of hs) if (!(Number.isInteger(h) && h >= 0 && h < H)) throw new Error(`attention: head ${h} is outside [0, ${H})`);
  return rows.map((r) => {
    if (!(r.batchIndex >= 0 && r.batchIndex < B)) throw new Error(`attention: sequence ${r.batchIndex} is outside the batch of ${B}`);
    if (!(r.queryCount >= 1 && r.queryStart >= prefixLength && r.queryStart + r.queryCount <= Tq)) {
      throw new Error(`attention: target rows [${r.queryStart}, ${r.queryStart + r.queryCount}) of sequence ${r.batchIndex} are not inside [${prefixLength}, ${Tq}) (after the prefix)`);
    }
    return tf.tidy(() => {
      let block: tf.Tensor = tf.slice(probs, [r.batchIndex, 0, r.queryStart, 0], [1, H, r.queryCount, prefixLength]);
      if (heads) block = tf.gather(block, tf.tensor1d([...hs], 'int32'), 1);
      return tf.mean(block, [0, 1, 2]).dataSync() as Float32Array;
    });
  });
}
