/**
 * What a run reports while it trains: one metrics.jsonl line per update and per validation,
 * mirrored to a TensorBoard event file in the run directory (tensorboard.ts; never throws, and its
 * purge step hides a killed run's steps after this resume point), the progress bar on stderr, and
 * the logger's lines.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { Logger } from '@userpref/core';
import type { TrainerState } from './checkpoint';
import type { ValidationResult } from './options';
import { progressBar, type Progress } from './progress';
import { TensorBoardMetrics } from './tensorboard';
import type { UpdateStats } from './update';

export class TrainingLog {
  private readonly metricsFile: string;
  private readonly board: TensorBoardMetrics;
  private bar?: Progress;
  private started = 0;
  private startExamples = 0;

  /** `state` is where the run starts (fresh or resumed). */
  constructor(
    runDir: string,
    private readonly stage: 1 | 2,
    state: TrainerState,
    private readonly logger: Logger,
  ) {
    this.metricsFile = path.join(runDir, 'metrics.jsonl');
    this.board = new TensorBoardMetrics(runDir, { purgeStep: state.step + 1, logger });
  }

  /** The run's opening line; starts the progress bar and the throughput clock. */
  start(state: TrainerState, fields: { examples: number; stepsPerEpoch: number; totalSteps: number; trainable: number; runDir: string }): void {
    this.logger.info(`stage ${this.stage} training`, fields);
    this.bar = progressBar(`stage ${this.stage}`, fields.totalSteps, state.step);
    this.started = Date.now();
    this.startExamples = state.examplesSeen;
  }

  /** An update's metrics, after `state` counted it. */
  async update(state: TrainerState, u: UpdateStats): Promise<void> {
    const rate = (state.examplesSeen - this.startExamples) / ((Date.now() - this.started) / 1000);
    this.bar?.update(state.step, { loss: u.loss.toFixed(4), acc: u.accuracy.toFixed(3), rate: rate.toFixed(2) });
    const terms = Object.fromEntries(Object.entries(u.terms).map(([k, v]) => [`loss/${k}`, v]));
    await this.record({ stage: this.stage, step: state.step, epoch: state.epoch, loss: u.loss, accuracy: u.accuracy, lr: u.lr, examplesPerSecond: rate, ...terms });
  }

  async validation(state: TrainerState, val: ValidationResult): Promise<void> {
    await this.record({ stage: this.stage, step: state.step, split: 'validation', accuracy: val.accuracy, ci95: val.ci95, n: val.n });
    this.logger.info(`validation at step ${state.step}`, { accuracy: val.accuracy, n: val.n });
  }

  /** Stops the progress bar. */
  stop(): void {
    this.bar?.stop();
  }

  private async record(r: Record<string, unknown>): Promise<void> {
    const now = new Date();
    await fs.appendFile(this.metricsFile, JSON.stringify({ time: now.toISOString(), ...r }) + '\n');
    await this.board.record(r, now.getTime() / 1000);
  }
}
