/**
 * The training loop of both stages (SPEC §3-§5): micro-batches of `batchSize` examples, gradients
 * accumulated over `gradAccum` micro-batches, AdamW with linear decay, evaluation on the
 * VALIDATION split every `evalSteps` updates (the original evaluated stage 2 on its training set,
 * SPEC §8), atomic checkpoints every `saveSteps`, exact resume, and a stop on a non-finite loss that
 * names the step and the batch. Metrics go to metrics.jsonl and, mirrored, to a TensorBoard event
 * file in the run directory (tensorboard.ts).
 *
 * Stage 1 trains the backbone's adapter; stage 2 prepends the preference tokens and trains them
 * (and optionally the adapter too).
 *
 * The steps live apart: schedule.ts (updates, data position), resume.ts (where a run starts),
 * trainables.ts (what a stage trains, saves and restores), update.ts (one optimizer update),
 * validation.ts, training-log.ts (metrics.jsonl, TensorBoard, progress) and checkpoint.ts.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { AdamW } from './adamw';
import { latestCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint';
import type { TrainComponents, TrainOptions, TrainResult, ValidationResult } from './options';
import { startingPoint } from './resume';
import { EpochCursor, isDue, trainingSchedule } from './schedule';
import { KeyedTrainables, TrainedParts } from './trainables';
import { TrainingLog } from './training-log';
import { NonFiniteLoss, TrainingUpdate } from './update';
import { validationAccuracy } from './validation';

export type { TrainComponents, TrainOptions, TrainResult } from './options';

export class TrainingDivergedError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

/** A run ready to loop: its state (fresh or resumed) and the steps that advance it. */
interface PreparedRun {
  state: TrainerState;
  totalSteps: number;
  update: TrainingUpdate;
  optimizer: AdamW;
  parts: TrainedParts;
  log: TrainingLog;
}

export class Trainer {
  constructor(
    private readonly c: TrainComponents,
    private readonly o: TrainOptions,
  ) {
    for (const [k, v] of Object.entries({ batchSize: o.batchSize, gradAccum: o.gradAccum, epochs: o.epochs, evalBatchSize: o.evalBatchSize })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
    }
    if (!(o.lr > 0)) throw new Error(`lr must be positive, got ${o.lr}`);
    if (o.stage === 2 && !c.tokens) throw new Error('stage 2 needs preference tokens: configure plugins.tokens');
  }

  get runDir(): string {
    return path.join(this.o.outDir, this.o.expName);
  }

  async run(): Promise<TrainResult> {
    const { state, totalSteps, update, optimizer, parts, log } = await this.prepare();
    let lastLoss = NaN;
    let lastCheckpoint = '';
    let validation: ValidationResult | undefined;
    try {
      // The untrained model's validation accuracy: the learning curve's first point (a resumed run has it already).
      if (this.o.evalOnStart && state.step === 0) await this.validate(state, log);
      while (state.step < totalSteps) {
        lastLoss = (await this.trainUpdate(update, state, log)).loss;
        const last = state.step === totalSteps;
        if (isDue(state.step, this.o.evalSteps, last)) {
          const val = await this.validate(state, log);
          if (last) validation = val;
        }
        if (isDue(state.step, this.o.saveSteps, last)) lastCheckpoint = await saveCheckpoint(this.runDir, state, optimizer.state(), parts.writers());
        await this.o.onStep?.(state);
      }
    } catch (err) {
      throw err instanceof NonFiniteLoss ? await this.diverged(err, lastCheckpoint) : err;
    } finally {
      log.stop();
    }
    if (!lastCheckpoint) lastCheckpoint = (await latestCheckpoint(this.runDir)) ?? '';
    return { runDir: this.runDir, steps: state.step, finalCheckpoint: lastCheckpoint, lastLoss, ...(validation && { validation }) };
  }

  /** Attaches the stage's parts, resumes or starts fresh, and restores the optimizer. */
  private async prepare(): Promise<PreparedRun> {
    const { backbone, dataset, tokens, logger } = this.c;
    const o = this.o;
    if (o.stage === 2) {
      tokens!.build(backbone.textHiddenSize);
      backbone.setPrefixProvider(tokens!);
    }
    const train = dataset.split('train');
    if (train.size === 0) throw new Error('the training split is empty');
    const { microPerEpoch, stepsPerEpoch, totalSteps } = trainingSchedule(train.size, o);
    await fs.mkdir(this.runDir, { recursive: true });
    const parts = new TrainedParts(this.c, o);
    const start = await startingPoint(o, this.runDir, totalSteps, parts, logger);
    const trainables = new KeyedTrainables(parts.variables(), o.stage);
    const optimizer = new AdamW({ lr: o.lr, weightDecay: o.weightDecay, totalSteps });
    if (start.optimizer) trainables.restoreOptimizer(optimizer, start.optimizer);
    const log = new TrainingLog(this.runDir, o.stage, start.state, logger);
    const update = new TrainingUpdate(this.c, trainables, optimizer, new EpochCursor(train, o.seed, o.batchSize, microPerEpoch, start.state), o);
    log.start(start.state, { examples: train.size, stepsPerEpoch, totalSteps, trainable: trainables.size, runDir: this.runDir });
    return { state: start.state, totalSteps, update, optimizer, parts, log };
  }

  /** One optimizer update, logged. */
  private async trainUpdate(update: TrainingUpdate, state: TrainerState, log: TrainingLog) {
    const stats = await update.apply(state);
    await log.update(state, stats);
    return stats;
  }

  /** Validation accuracy, recorded and logged; the trainer state keeps the best so far. */
  private async validate(state: TrainerState, log: TrainingLog): Promise<ValidationResult | undefined> {
    const val = await validationAccuracy(this.c.backbone, this.c.dataset, this.o);
    if (!val) return undefined;
    await log.validation(state, val);
    state.bestValAccuracy = Math.max(state.bestValAccuracy ?? 0, val.accuracy);
    return val;
  }

  /** The stop on a non-finite loss: logged, naming the last good checkpoint. */
  private async diverged(err: NonFiniteLoss, lastCheckpoint: string): Promise<TrainingDivergedError> {
    const msg = `${err.message}; stopping. Last good checkpoint: ${lastCheckpoint || (await latestCheckpoint(this.runDir)) || 'none'}`;
    this.c.logger.error(msg);
    return new TrainingDivergedError(msg);
  }
}
