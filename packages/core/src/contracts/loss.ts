import type * as tf from '@tensorflow/tfjs-core';
import type { PairLogits, ReadoutTokens } from './backbone';

/**
 * One term of the training objective (SPEC §4). The runner sums the configured terms, each with
 * its weight from config, plus any auxiliary terms of the forward pass.
 */
export const PreferenceLoss = Symbol.for('userpref.PreferenceLoss');
export interface PreferenceLoss {
  /** Name used in config and in logged metrics. */
  readonly name: string;
  /** Batch-averaged loss value. */
  compute(logits: PairLogits, readout: ReadoutTokens): tf.Scalar;
}

/** A configured loss with its weight. */
export interface WeightedLoss {
  readonly loss: PreferenceLoss;
  readonly weight: number;
}
