/**
 * The run config of the train / train2 / eval runners: one JSON file naming the plugins (validated
 * by core against each plugin's schema) plus the runner's own sections, validated here against
 * RUN_CONFIG_SCHEMA. The same schema gives the defaults.
 */
import type { Device } from '@userpref/runtime';
import type { PluginsConfig } from '@userpref/core';
import type { OptionsSchema } from '@userpref/core';
import { PATH_FORMAT } from '@userpref/core';

export interface TrainSection {
  /** Examples per micro-batch (--train_bz). */
  train_bz: number;
  /** Micro-batches per optimizer update (--grad_acc_step). */
  grad_acc_step: number;
  epoch: number;
  lr: number;
  weight_decay: number;
  eval_steps: number;
  /** Validate before the first update too (step 0 of a fresh run). */
  eval_on_start: boolean;
  save_steps: number;
  eval_bz: number;
  /** Validation examples per evaluation during training (all when absent). */
  eval_limit?: number;
  /** Stop after this many updates (smoke runs). */
  max_steps?: number;
  /** Stage 2: train the LoRA adapter together with the tokens. */
  train_lora: boolean;
}

export interface EvalSection {
  eval_bz: number;
  split: 'validation' | 'test';
  limit?: number;
  tie_policy: 'drop' | 'pickscore';
  tie_threshold: number;
  bootstrap_samples: number;
  /** Evaluate with the first k reference pairs for each k in this list ("all" = 0..ref_pair_num). */
  ref_counts: 'all' | 'none' | number[];
  /** Adapters / tokens / zero-shot scorers (plugins.scorers, by name) to evaluate, by label; the first is the headline. */
  models: Array<{ label: string; adapter?: string; tokens?: string; reference_pairs?: number; curve?: boolean; scorer?: string; group?: 'zero-shot' | 'in-context' | 'trained' | 'baseline' }>;
  baselines: Array<'random' | 'nearest-reference' | 'bayes-optimal'>;
  /** Row label pairs [a, b] compared on the same comparisons; default the first model against the rest. */
  paired?: Array<[string, string]>;
}

export interface RunConfig {
  seed: number;
  device: Device;
  out: string;
  exp_name: string;
  plugins: PluginsConfig;
  train?: TrainSection;
  eval?: EvalSection;
  /** Directory that relative paths in this config resolve against (the config file's folder). */
  baseDir: string;
}

const int = (description: string, def?: number, minimum = 0) => ({ type: 'integer', minimum, description, ...(def !== undefined ? { default: def } : {}) });
const num = (description: string, def?: number) => ({ type: 'number', description, ...(def !== undefined ? { default: def } : {}) });

export const TRAIN_SCHEMA: OptionsSchema = {
  type: 'object',
  properties: {
    train_bz: int('Training batch size (examples per micro-batch).', 2, 1),
    grad_acc_step: int('Gradient accumulation steps per optimizer update.', 4, 1),
    epoch: int('Training epochs.', 2, 1),
    lr: num('Peak learning rate (AdamW, linear decay, no warm-up).', 1e-5),
    weight_decay: num('AdamW decoupled weight decay.', 0.01),
    eval_steps: int('Validate every N updates (0 = only at the end).', 1),
    eval_on_start: { type: 'boolean', default: false, description: "Validate before the first update too (a fresh run's step 0: the learning curve's starting point), as transformers' eval_on_start." },
    save_steps: int('Checkpoint every N updates (0 = only at the end).', 1000),
    eval_bz: int('Evaluation batch size.', 1, 1),
    eval_limit: int('Validation examples per evaluation (all when absent).', undefined, 1),
    max_steps: int('Stop after this many updates.', undefined, 1),
    train_lora: { type: 'boolean', default: false, description: 'Stage 2: train the LoRA adapter together with the preference tokens.' },
  },
};

export const EVAL_SCHEMA: OptionsSchema = {
  type: 'object',
  properties: {
    eval_bz: int('Evaluation batch size.', 1, 1),
    split: { enum: ['validation', 'test'], default: 'test', description: 'Split to evaluate.' },
    limit: int('Evaluate at most this many comparisons.', undefined, 1),
    tie_policy: { enum: ['drop', 'pickscore'], default: 'drop', description: "Tie handling: drop tie labels, or Pick-a-Pic's 0.5 credit for tie labels and |p0-p1| <= tie_threshold." },
    tie_threshold: num('Score gap counted as a predicted tie under tie_policy pickscore.', 0),
    bootstrap_samples: int('Bootstrap resamples for the 95% interval.', 1000, 10),
    ref_counts: { default: 'all', description: "Accuracy against the number of reference pairs: 'all' (0..ref_pair_num), 'none', or a list." },
    models: {
      type: 'array',
      default: [{ label: 'model' }],
      description:
        "Rows to evaluate: models (label, adapter dir, tokens dir, reference_pairs, curve: draw the reference-pairs curve for this one; default the first that is not a scorer; models without an adapter come first) and zero-shot scorers (label, scorer: a name in plugins.scorers). group (zero-shot, in-context, trained, baseline) places a row in the report's Table 1 layout; default: zero-shot for a scorer, trained with an adapter or tokens, else in-context.",
      items: {
        type: 'object',
        properties: {
          label: { type: 'string' },
          adapter: { type: 'string', format: PATH_FORMAT },
          tokens: { type: 'string', format: PATH_FORMAT },
          reference_pairs: { type: 'integer', minimum: 0 },
          curve: { type: 'boolean' },
          scorer: { type: 'string' },
          group: { enum: ['zero-shot', 'in-context', 'trained', 'baseline'] },
        },
        required: ['label'],
        additionalProperties: false,
      },
    },
    baselines: {
      type: 'array',
      items: { enum: ['random', 'nearest-reference', 'bayes-optimal'] },
      default: ['random', 'nearest-reference', 'bayes-optimal'],
      description: 'Baselines scored on the same split.',
    },
    paired: {
      type: 'array',
      items: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 },
      description: 'Row labels [a, b] to compare on the same comparisons: a minus b with a paired bootstrap interval and an exact sign test. Default: the first model against every other row with scores; [] for none.',
    },
  },
};

export const RUN_CONFIG_SCHEMA: OptionsSchema = {
  type: 'object',
  properties: {
    seed: int('Seed of every random draw of the run.', 42),
    device: { enum: ['auto', 'gpu', 'cpu'], default: 'auto', description: 'Tensor device: gpu needs @tensorflow/tfjs-node-gpu.' },
    out: { type: 'string', format: PATH_FORMAT, default: 'runs', description: 'Output directory.' },
    exp_name: { type: 'string', default: 'exp', description: 'Run name: outputs go to <out>/<exp_name>.' },
    plugins: { type: 'object', description: 'Plugin selections (backbone, losses, tokens, dataset).' },
    train: { type: 'object', description: 'Training options.' },
    eval: { type: 'object', description: 'Evaluation options.' },
    $schema: { type: 'string', description: 'Editor hint, ignored.' },
    description: { type: 'string', description: 'Free text, ignored.' },
  },
  required: ['plugins'],
};
