/**
 * The paper's training objective (SPEC §4) as separate terms, so a run config picks and weights
 * them: the base cross-entropy, the contrastive preference loss, and a Bradley-Terry alternative.
 * Every term reads only the last-position logits of the liked- and disliked-target sequences and
 * the readout token ids from the tokenizer; every log-probability goes through logSumExp so
 * logits of any magnitude stay finite. Each returns the batch mean.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PairLogits, PreferenceLoss, ReadoutTokens } from '@userpref/core';
import type { ContrastiveOptions } from './options';

/** Checks shapes and token ids before any arithmetic, naming what is wrong. */
export function checkPairLogits(loss: string, logits: PairLogits, readout: ReadoutTokens): void {
  const { liked, disliked } = logits;
  if (liked.rank !== 2 || disliked.rank !== 2) {
    throw new Error(`loss '${loss}': logits must be [batch, vocab]; got liked [${liked.shape}] and disliked [${disliked.shape}]`);
  }
  if (liked.shape[0] !== disliked.shape[0] || liked.shape[1] !== disliked.shape[1]) {
    throw new Error(`loss '${loss}': liked logits [${liked.shape}] and disliked logits [${disliked.shape}] differ in shape`);
  }
  if (liked.shape[0] === 0) throw new Error(`loss '${loss}': empty batch`);
  const vocab = liked.shape[1];
  for (const [label, id] of [
    ['positive', readout.positive],
    ['negative', readout.negative],
  ] as const) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new Error(`loss '${loss}': readout token ${label}=${id} is outside the vocabulary [0, ${vocab})`);
    }
  }
  if (readout.positive === readout.negative) {
    throw new Error(`loss '${loss}': readout tokens positive and negative are the same id ${readout.positive}`);
  }
}

/** Column `id` of a [batch, vocab] tensor as [batch, 1]. */
function column(z: tf.Tensor2D, id: number): tf.Tensor2D {
  return tf.slice(z, [0, id], [-1, 1]);
}

/** Full-vocabulary cross-entropy per row: logSumExp(z) - z[t], as [batch, 1]. */
export function crossEntropyAt(z: tf.Tensor2D, id: number): tf.Tensor2D {
  return tf.sub(tf.logSumExp(z, 1, true), column(z, id)) as tf.Tensor2D;
}

/**
 * -log softmax([x, y])[0] per row for [batch, 1] columns x, y, as logSumExp([0, y - x]): the gap
 * is taken first, so two large nearly equal logits (e.g. 1e4 and 1e4) do not lose the answer to
 * float32 rounding, and logSumExp keeps any gap finite.
 */
function negLogFirstOfTwo(x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
  const gap = tf.sub(y, x);
  return tf.logSumExp(tf.concat([tf.zerosLike(gap), gap], 1), 1, true) as tf.Tensor2D;
}

/** L_base = (CE(z(neg), "-") + CE(z(pos), "+")) / 2, batch mean. */
export class BasePreferenceLoss implements PreferenceLoss {
  readonly name = 'base';

  compute(logits: PairLogits, readout: ReadoutTokens): tf.Scalar {
    checkPairLogits(this.name, logits, readout);
    return tf.tidy(() => {
      const likedCe = crossEntropyAt(logits.liked, readout.positive);
      const dislikedCe = crossEntropyAt(logits.disliked, readout.negative);
      return tf.mean(tf.mul(tf.add(likedCe, dislikedCe), 0.5)) as tf.Scalar;
    });
  }
}

/**
 * L_cp = -log softmax([z(pos)[+], z(neg)[+]] / T)[0] - log softmax([z(pos)[-], z(neg)[-]] / T)[1],
 * batch mean: "+" should be higher on the liked candidate, "-" higher on the disliked one.
 */
export class ContrastivePreferenceLoss implements PreferenceLoss {
  readonly name = 'contrastive';
  private readonly temperature: number;

  constructor(options: Partial<ContrastiveOptions> = {}) {
    this.temperature = options.temperature ?? 1;
    if (!(this.temperature > 0) || !Number.isFinite(this.temperature)) {
      throw new Error(`loss 'contrastive': temperature must be a finite number > 0, got ${this.temperature}`);
    }
  }

  compute(logits: PairLogits, readout: ReadoutTokens): tf.Scalar {
    checkPairLogits(this.name, logits, readout);
    return tf.tidy(() => {
      const scale = (t: tf.Tensor2D) => (this.temperature === 1 ? t : (tf.div(t, this.temperature) as tf.Tensor2D));
      const likedPlus = scale(column(logits.liked, readout.positive));
      const dislikedPlus = scale(column(logits.disliked, readout.positive));
      const likedMinus = scale(column(logits.liked, readout.negative));
      const dislikedMinus = scale(column(logits.disliked, readout.negative));
      const plusTerm = negLogFirstOfTwo(likedPlus, dislikedPlus);
      // softmax([liked, disliked])[1] is the first entry of the swapped pair.
      const minusTerm = negLogFirstOfTwo(dislikedMinus, likedMinus);
      return tf.mean(tf.add(plusTerm, minusTerm)) as tf.Scalar;
    });
  }
}

/**
 * -log sigmoid(s(liked) - s(disliked)) with s = z[+] - z[-], the log-odds of the score
 * P("+") = exp(z+) / (exp(z+) + exp(z-)); batch mean. -log sigmoid(a - b) = logSumExp([a, b]) - a.
 */
export class BradleyTerryPreferenceLoss implements PreferenceLoss {
  readonly name = 'bradley-terry';

  compute(logits: PairLogits, readout: ReadoutTokens): tf.Scalar {
    checkPairLogits(this.name, logits, readout);
    return tf.tidy(() => {
      const likedOdds = tf.sub(column(logits.liked, readout.positive), column(logits.liked, readout.negative)) as tf.Tensor2D;
      const dislikedOdds = tf.sub(column(logits.disliked, readout.positive), column(logits.disliked, readout.negative)) as tf.Tensor2D;
      return tf.mean(negLogFirstOfTwo(likedOdds, dislikedOdds)) as tf.Scalar;
    });
  }
}
