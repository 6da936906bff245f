/**
 * Where a run starts: from scratch, or (resume) from the newest complete checkpoint of the run
 * directory or the one given — its trained parts restored in place, its trainer state (step,
 * epoch, data position, seed) and its optimizer moments handed back for the loop to continue
 * exactly where the interrupted run was.
 */
import type { Logger } from '@userpref/core';
import type { AdamWState } from './adamw';
import { latestCheckpoint, loadCheckpoint, type TrainerState } from './checkpoint';
import type { TrainOptions } from './options';
import type { TrainedParts } from './trainables';

export interface StartingPoint {
  state: TrainerState;
  /** The optimizer moments to restore (a resumed run only). */
  optimizer?: AdamWState;
}

/** A fresh run's state: step 0 at the start of epoch 0. */
export function freshState(o: TrainOptions, totalSteps: number): TrainerState {
  return {
    stage: o.stage,
    step: 0,
    totalSteps,
    epoch: 0,
    micro: 0,
    seed: o.seed,
    examplesSeen: 0,
    options: { batchSize: o.batchSize, gradAccum: o.gradAccum, lr: o.lr, weightDecay: o.weightDecay, epochs: o.epochs },
  };
}

/** The checkpoint `resume` names: the given directory, or the run directory's newest complete one (null: none). */
export async function checkpointToResume(resume: true | string, runDir: string): Promise<string | null> {
  return typeof resume === 'string' ? resume : latestCheckpoint(runDir);
}

export async function startingPoint(o: TrainOptions, runDir: string, totalSteps: number, parts: TrainedParts, logger: Logger): Promise<StartingPoint> {
  if (!o.resume) return { state: freshState(o, totalSteps) };
  const dir = await checkpointToResume(o.resume, runDir);
  if (!dir) {
    logger.info('no checkpoint to resume from; starting fresh', { runDir });
    return { state: freshState(o, totalSteps) };
  }
  const loaded = await loadCheckpoint(dir);
  if (loaded.state.stage !== o.stage) throw new Error(`${dir} is a stage ${loaded.state.stage} checkpoint, this is stage ${o.stage}`);
  await parts.load(dir);
  const state = { ...loaded.state, totalSteps };
  logger.info(`resumed from ${dir}`, { step: state.step, epoch: state.epoch, micro: state.micro });
  return { state, optimizer: loaded.optimizer };
}
