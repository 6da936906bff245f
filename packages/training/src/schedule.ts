/**
 * The training schedule (SPEC §3): how many micro-batches and optimizer updates the training split
 * makes, which updates evaluate or checkpoint, and the data position — each epoch a shuffle seeded
 * by (seed, epoch), read `batchSize` examples at a time. The position lives in TrainerState
 * (epoch, micro), so a resumed run reads exactly the micro-batches the interrupted one would have.
 */
import { Rng, type PreferenceExample, type PreferenceSplit } from '@userpref/core';
import type { TrainerState } from './checkpoint';

export interface Schedule {
  microPerEpoch: number;
  stepsPerEpoch: number;
  /** Updates of the whole run: the epochs' worth, or maxSteps when fewer. */
  totalSteps: number;
}

export function trainingSchedule(examples: number, o: { batchSize: number; gradAccum: number; epochs: number; maxSteps?: number }): Schedule {
  const microPerEpoch = Math.ceil(examples / o.batchSize);
  const stepsPerEpoch = Math.ceil(microPerEpoch / o.gradAccum);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, stepsPerEpoch * o.epochs);
  return { microPerEpoch, stepsPerEpoch, totalSteps };
}

/** Whether an every-N-updates event (validation, checkpoint) falls on this update: N = 0 means only the last. */
export function isDue(step: number, every: number, last: boolean): boolean {
  return (every > 0 && step % every === 0) || last;
}

/** The order in which an epoch reads the training split. */
export function epochOrder(seed: number, epoch: number, size: number): number[] {
  return Rng.stream(seed, `order-${epoch}`).shuffle([...Array(size).keys()]);
}

export interface MicroBatch {
  /** Positions in the training split. */
  indices: number[];
  examples: PreferenceExample[];
}

/** Reads micro-batches from the data position in `state` (epoch, micro), which it advances. */
export class EpochCursor {
  private order: number[];

  constructor(
    private readonly split: PreferenceSplit,
    private readonly seed: number,
    private readonly batchSize: number,
    private readonly microPerEpoch: number,
    private readonly state: TrainerState,
  ) {
    this.order = epochOrder(seed, state.epoch, split.size);
  }

  /**
   * The micro-batch at the data position, or null when the epoch ends inside an update (the
   * epoch's last update takes fewer micro-batches); an update's first micro-batch starts the next
   * epoch instead.
   */
  async next(firstOfUpdate: boolean): Promise<MicroBatch | null> {
    const s = this.state;
    if (s.micro >= this.microPerEpoch) {
      if (!firstOfUpdate) return null;
      s.epoch += 1;
      s.micro = 0;
      this.order = epochOrder(this.seed, s.epoch, this.split.size);
    }
    const indices = this.order.slice(s.micro * this.batchSize, (s.micro + 1) * this.batchSize);
    const examples = await Promise.all(indices.map((i) => this.split.get(i, s.epoch)));
    return { indices, examples };
  }

  /** Moves past the micro-batch `next` returned, once it has been trained on. */
  advance(): void {
    this.state.micro += 1;
  }
}
