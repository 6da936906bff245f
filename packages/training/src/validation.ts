/**
 * Validation during training: pairwise accuracy on the VALIDATION split (the original evaluated
 * stage 2 on its training set, SPEC §8), ties dropped, with a 200-sample bootstrap interval.
 */
import type { Backbone, PreferenceDataset } from '@userpref/core';
import { scoreSplit } from './evaluate';
import { pairwiseAccuracy } from './metrics';
import type { ValidationResult } from './options';

/** Undefined when the validation split is empty. */
export async function validationAccuracy(backbone: Backbone, dataset: PreferenceDataset, o: { evalBatchSize: number; evalLimit?: number; seed: number }): Promise<ValidationResult | undefined> {
  const val = dataset.split('validation');
  if (val.size === 0) return undefined;
  const scores = await scoreSplit(backbone, val, { batchSize: o.evalBatchSize, limit: o.evalLimit });
  const r = pairwiseAccuracy(scores, { kind: 'drop' }, { samples: 200, seed: o.seed });
  return { accuracy: r.accuracy, ci95: r.ci95, n: r.n };
}
