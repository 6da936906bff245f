/** What a training run is given and what it returns (the Trainer's public face, trainer.ts). */
import type { Backbone, Logger, PreferenceDataset, PreferenceTokens, WeightedLoss } from '@userpref/core';
import type { TrainerState } from './checkpoint';

export interface TrainOptions {
  stage: 1 | 2;
  batchSize: number;
  gradAccum: number;
  epochs: number;
  lr: number;
  weightDecay: number;
  /** Validate every N optimizer updates (0 = only at the end). */
  evalSteps: number;
  /** Also validate before the first update (a fresh run's step 0), as transformers' eval_on_start. */
  evalOnStart?: boolean;
  /** Checkpoint every N optimizer updates (0 = only at the end). */
  saveSteps: number;
  evalBatchSize: number;
  /** Validation examples per evaluation (all when undefined). */
  evalLimit?: number;
  outDir: string;
  expName: string;
  seed: number;
  /** Continue from the newest checkpoint in the run directory (or the given one). */
  resume?: boolean | string;
  /** Stop after this many updates (for smoke runs); default: the epochs' worth. */
  maxSteps?: number;
  /** Stage 2: also train the adapter. */
  trainAdapter?: boolean;
  /** Called after every update; tests use it to kill or inspect a run. */
  onStep?: (state: TrainerState) => void | Promise<void>;
}

export interface TrainComponents {
  backbone: Backbone;
  losses: readonly WeightedLoss[];
  dataset: PreferenceDataset;
  tokens?: PreferenceTokens;
  logger: Logger;
}

/** Pairwise accuracy on the validation split (SPEC §7), with its 95% bootstrap interval. */
export interface ValidationResult {
  accuracy: number;
  ci95: [number, number];
  n: number;
}

export interface TrainResult {
  runDir: string;
  steps: number;
  finalCheckpoint: string;
  lastLoss: number;
  validation?: ValidationResult;
}
