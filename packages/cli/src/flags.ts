/**
 * The runners' command-line flags: the original project's names (--train_bz, --use_prompt 0/1,
 * ...) mapped onto run-config paths. A flag overrides the config value at its path; --help shows
 * each flag with the value the loaded config gives it.
 */
export type FlagType = 'int' | 'float' | 'bool01' | 'string' | 'path';

export interface FlagSpec {
  /** Flag name without dashes, e.g. 'train_bz'. */
  name: string;
  /** Dotted path in the run config. */
  path: string;
  type: FlagType;
  description: string;
  /**
   * A path to a trained output: a run directory or a checkpoint resolves to its (newest) adapter or
   * tokens directory (resolveTrainedPath in @userpref/training).
   */
  trained?: 'adapter' | 'tokens';
}

export const COMMON_FLAGS: FlagSpec[] = [
  { name: 'seed', path: 'seed', type: 'int', description: 'Seed of every random draw.' },
  { name: 'device', path: 'device', type: 'string', description: 'auto | gpu | cpu (gpu needs @tensorflow/tfjs-node-gpu).' },
  { name: 'out', path: 'out', type: 'path', description: 'Output directory.' },
  { name: 'exp_name', path: 'exp_name', type: 'string', description: 'Experiment name: outputs go to <out>/<exp_name>.' },
  { name: 'data', path: 'plugins.dataset.options.path', type: 'path', description: 'Processed dataset directory (see dataset-pickapic import).' },
  { name: 'ref_pair_num', path: 'plugins.dataset.options.refPairNum', type: 'int', description: 'Reference pairs per user.' },
  { name: 'use_prompt', path: 'plugins.backbone.options.usePrompt', type: 'bool01', description: 'Include prompts in the sequence: 1 = yes, 0 = no (read as a number, unlike the original).' },
  { name: 'max_prompt_len', path: 'plugins.backbone.options.maxPromptLen', type: 'int', description: 'Truncate prompts to this many characters (as the original).' },
  { name: 'checkpoint', path: 'plugins.backbone.options.path', type: 'path', description: 'Backbone checkpoint directory (Hugging Face layout).' },
  { name: 'base_bits', path: 'plugins.backbone.options.baseBits', type: 'int', description: 'Frozen base precision: 32 (float32), 8 (int8 per output channel) or 4 (NF4, as QLoRA); LoRA stays float32.' },
];

export const TRAIN_FLAGS: FlagSpec[] = [
  { name: 'train_bz', path: 'train.train_bz', type: 'int', description: 'Training batch size per step.' },
  { name: 'eval_bz', path: 'train.eval_bz', type: 'int', description: 'Evaluation batch size.' },
  { name: 'eval_steps', path: 'train.eval_steps', type: 'int', description: 'Validate every N updates.' },
  { name: 'eval_on_start', path: 'train.eval_on_start', type: 'bool01', description: 'Validate before the first update too: 1 = yes, 0 = no.' },
  { name: 'save_steps', path: 'train.save_steps', type: 'int', description: 'Checkpoint every N updates.' },
  { name: 'grad_acc_step', path: 'train.grad_acc_step', type: 'int', description: 'Gradient accumulation steps.' },
  { name: 'epoch', path: 'train.epoch', type: 'int', description: 'Training epochs.' },
  { name: 'lr', path: 'train.lr', type: 'float', description: 'Learning rate.' },
  { name: 'max_steps', path: 'train.max_steps', type: 'int', description: 'Stop after this many updates.' },
  { name: 'eval_limit', path: 'train.eval_limit', type: 'int', description: 'Validation examples per evaluation.' },
  { name: 'gradient_checkpointing', path: 'plugins.backbone.options.checkpointing', type: 'bool01', description: 'Activation checkpointing per layer: 1 = recompute each layer in the backward (less memory), 0 = keep activations.' },
];

export const STAGE2_FLAGS: FlagSpec[] = [
  { name: 'length', path: 'plugins.tokens.options.length', type: 'int', description: 'Preference tokens length.' },
  { name: 'lora_path', path: 'plugins.backbone.options.adapterPath', type: 'path', trained: 'adapter', description: 'Stage-1 LoRA adapter: a PEFT directory, a checkpoint-N directory or a run directory (its newest checkpoint).' },
];

export const EVAL_FLAGS: FlagSpec[] = [
  { name: 'eval_bz', path: 'eval.eval_bz', type: 'int', description: 'Evaluation batch size.' },
  { name: 'split', path: 'eval.split', type: 'string', description: 'validation | test.' },
  { name: 'limit', path: 'eval.limit', type: 'int', description: 'Evaluate at most this many comparisons.' },
  { name: 'lora_path', path: 'plugins.backbone.options.adapterPath', type: 'path', trained: 'adapter', description: 'LoRA adapter to evaluate: a PEFT directory, a checkpoint-N directory or a run directory (its newest checkpoint).' },
  { name: 'tokens_path', path: 'eval.models.0.tokens', type: 'path', trained: 'tokens', description: 'Preference tokens to evaluate with the adapter: a tokens directory, a checkpoint-N directory or a stage-2 run directory (its newest checkpoint).' },
];

export function parseFlagValue(spec: FlagSpec, raw: string, cwd: string): unknown {
  switch (spec.type) {
    case 'int': {
      const v = Number(raw);
      if (!Number.isInteger(v)) throw new Error(`--${spec.name} expects an integer, got '${raw}'`);
      return v;
    }
    case 'float': {
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new Error(`--${spec.name} expects a number, got '${raw}'`);
      return v;
    }
    case 'bool01': {
      // The original parsed --use_prompt with type=bool, so '0' meant True (SPEC §8). Here 0/1 are numbers.
      if (raw === '1' || raw === 'true') return true;
      if (raw === '0' || raw === 'false') return false;
      throw new Error(`--${spec.name} expects 0 or 1, got '${raw}'`);
    }
    case 'path':
      return require('path').resolve(cwd, raw);
    default:
      return raw;
  }
}
