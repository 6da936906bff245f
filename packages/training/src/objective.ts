/** The training objective: the configured losses, each with its weight, plus auxiliary terms. */
import * as tf from '@tensorflow/tfjs-core';
import type { PairLogits, ReadoutTokens, WeightedLoss } from '@userpref/core';

export interface ObjectiveParts {
  total: tf.Scalar;
  /** Each named term before weighting (kept tensors: the caller reads and disposes them). */
  terms: Record<string, tf.Scalar>;
}

export function objective(logits: PairLogits, readout: ReadoutTokens, losses: readonly WeightedLoss[]): ObjectiveParts {
  if (!losses.length) throw new Error('no loss configured: plugins.losses must name at least one loss');
  const terms: Record<string, tf.Scalar> = {};
  let total = tf.scalar(0);
  for (const { loss, weight } of losses) {
    const v = loss.compute(logits, readout);
    terms[loss.name] = v;
    total = tf.add(total, tf.mul(v, weight));
  }
  for (const aux of logits.auxLosses ?? []) {
    terms[aux.name] = aux.value;
    total = tf.add(total, aux.value);
  }
  return { total: total as tf.Scalar, terms };
}

/** score = P("+") = exp(z+) / (exp(z+) + exp(z-)) per row of [batch, vocab] logits. */
export function plusProbability(logits: tf.Tensor2D, readout: ReadoutTokens): tf.Tensor1D {
  return tf.tidy(() => {
    const zp = tf.squeeze(tf.slice(logits, [0, readout.positive], [-1, 1]), [1]);
    const zn = tf.squeeze(tf.slice(logits, [0, readout.negative], [-1, 1]), [1]);
    return tf.sigmoid(tf.sub(zp, zn)) as tf.Tensor1D;
  });
}
