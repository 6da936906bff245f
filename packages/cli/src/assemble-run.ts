/** Maps a validated run config onto the training and evaluation options of @userpref/training. */
import type { Assembly } from '@userpref/core';
import { ConfigError } from '@userpref/core';
import type { RunConfig } from './run-config';

export function requireParts<K extends 'backbone' | 'dataset' | 'tokens'>(assembly: Assembly, parts: K[], app: string): Required<Pick<Assembly, K>> & Assembly {
  for (const p of parts) {
    if (!assembly[p]) throw new ConfigError(`${app} needs plugins.${p} in its run config`);
  }
  return assembly as Required<Pick<Assembly, K>> & Assembly;
}

export function trainOptionsFrom(config: RunConfig, stage: 1 | 2, resume: boolean | string) {
  const t = config.train;
  if (!t) throw new ConfigError("the run config has no 'train' section");
  return {
    stage,
    batchSize: t.train_bz,
    gradAccum: t.grad_acc_step,
    epochs: t.epoch,
    lr: t.lr,
    weightDecay: t.weight_decay,
    evalSteps: t.eval_steps,
    evalOnStart: t.eval_on_start,
    saveSteps: t.save_steps,
    evalBatchSize: t.eval_bz,
    evalLimit: t.eval_limit,
    maxSteps: t.max_steps,
    trainAdapter: t.train_lora,
    outDir: config.out,
    expName: config.exp_name,
    seed: config.seed,
    resume,
  };
}
