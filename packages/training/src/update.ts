/**
 * One optimizer update (SPEC §3): up to `gradAccum` micro-batches, each a forward pass (dropout
 * seeded by seed, step and micro-batch) through the objective (objective.ts) and its gradients,
 * summed; AdamW then applies their mean over the micro-batches (HF divides each micro loss by the
 * count). A non-finite loss stops the update before any weight changes (NonFiniteLoss).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng, type Backbone, type PreferenceExample, type WeightedLoss } from '@userpref/core';
import type { AdamW } from './adamw';
import type { TrainerState } from './checkpoint';
import { objective, plusProbability } from './objective';
import type { EpochCursor, MicroBatch } from './schedule';
import type { KeyedTrainables } from './trainables';

export interface UpdateStats {
  /** The loss, a mean over the update's micro-batches. */
  loss: number;
  /** Share of the update's comparisons ranked right: P("+") of the liked candidate above the disliked's. */
  accuracy: number;
  /** Each term of the objective, a mean over the micro-batches. */
  terms: Record<string, number>;
  /** The learning rate the update used. */
  lr: number;
}

/** A micro-batch's loss is NaN or infinite; the message names the step and the batch. */
export class NonFiniteLoss extends Error {}

interface MicroBatchResult {
  loss: number;
  /** By variable name; the caller owns them. */
  grads: tf.NamedTensorMap;
  terms: Record<string, number>;
  /** Comparisons ranked right. */
  right: number;
}

export class TrainingUpdate {
  constructor(
    private readonly c: { backbone: Backbone; losses: readonly WeightedLoss[] },
    private readonly trainables: KeyedTrainables,
    private readonly optimizer: AdamW,
    private readonly data: EpochCursor,
    private readonly o: { gradAccum: number; seed: number },
  ) {}

  /** Trains one update from the data position in `state`, then counts it there (step, examplesSeen). */
  async apply(state: TrainerState): Promise<UpdateStats> {
    const sum = new GradientSum();
    const termSums: Record<string, number> = {};
    let micro = 0;
    let lossSum = 0;
    let correct = 0;
    let seen = 0;
    for (; micro < this.o.gradAccum; micro++) {
      const batch = await this.data.next(micro === 0);
      if (!batch) break;
      const r = await this.microBatch(batch.examples, Rng.stream(this.o.seed, `dropout-${state.step}-${micro}`).seed());
      if (!Number.isFinite(r.loss)) {
        Object.values(r.grads).forEach((g) => g.dispose());
        sum.dispose();
        throw new NonFiniteLoss(nonFiniteMessage(r.loss, state, batch));
      }
      sum.add(r.grads);
      for (const [k, v] of Object.entries(r.terms)) termSums[k] = (termSums[k] ?? 0) + v;
      correct += r.right;
      lossSum += r.loss;
      seen += batch.examples.length;
      this.data.advance();
    }
    const mean = sum.mean(micro, (name) => this.trainables.key(name));
    const lr = this.optimizer.currentLr();
    this.optimizer.apply(this.trainables.keyed, mean);
    Object.values(mean).forEach((g) => g.dispose());
    state.step += 1;
    state.examplesSeen += seen;
    return { loss: lossSum / micro, accuracy: correct / seen, terms: Object.fromEntries(Object.entries(termSums).map(([k, v]) => [k, v / micro])), lr };
  }

  /** Forward pass, objective and gradients of one micro-batch. */
  private async microBatch(examples: PreferenceExample[], dropoutSeed: number): Promise<MicroBatchResult> {
    const { backbone, losses } = this.c;
    const prepared = await backbone.prepare(examples);
    let parts: { terms: Record<string, tf.Scalar>; right: tf.Scalar } | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const logits = backbone.pairLogits(prepared, { training: true, seed: dropoutSeed });
      const obj = objective(logits, backbone.readout, losses);
      const right = tf.sum(tf.cast(tf.greater(plusProbability(logits.liked, backbone.readout), plusProbability(logits.disliked, backbone.readout)), 'float32')) as tf.Scalar;
      parts = { terms: Object.fromEntries(Object.entries(obj.terms).map(([k, v]) => [k, tf.keep(v)])), right: tf.keep(right) };
      return obj.total;
    }, this.trainables.keyed.map(({ v }) => v));
    prepared.dispose();
    const loss = (await value.data())[0];
    value.dispose();
    const terms: Record<string, number> = {};
    for (const [k, v] of Object.entries(parts!.terms)) {
      terms[k] = (await v.data())[0];
      v.dispose();
    }
    const right = (await parts!.right.data())[0];
    parts!.right.dispose();
    return { loss, grads, terms, right };
  }
}

function nonFiniteMessage(loss: number, state: TrainerState, batch: MicroBatch): string {
  const users = batch.examples.map((e) => e.userId).join(', ');
  return `loss is ${loss} at step ${state.step + 1} (epoch ${state.epoch}, micro-batch ${state.micro}, examples ${batch.indices.join(', ')}, users ${users})`;
}

/** Gradients summed over an update's micro-batches, by variable name. */
class GradientSum {
  private readonly sum: Record<string, tf.Tensor> = {};

  /** Adds a micro-batch's gradients (taking ownership of them). */
  add(grads: tf.NamedTensorMap): void {
    for (const [name, g] of Object.entries(grads)) {
      const acc = this.sum[name];
      if (acc) {
        this.sum[name] = tf.add(acc, g);
        acc.dispose();
        g.dispose();
      } else this.sum[name] = g;
    }
  }

  /** The mean over `count` micro-batches, keyed by optimizer key; the sums are disposed. */
  mean(count: number, key: (name: string) => string): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, g] of Object.entries(this.sum)) {
      out[key(name)] = tf.div(g, count);
      g.dispose();
    }
    return out;
  }

  dispose(): void {
    Object.values(this.sum).forEach((g) => g.dispose());
  }
}
