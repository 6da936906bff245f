import type { PreferenceExample, SplitName } from './types';

/** Random access to the examples of one split. */
export interface PreferenceSplit {
  readonly name: SplitName;
  readonly size: number;
  /**
   * Example `index`. `epoch` lets a dataset redraw references per epoch when so configured; the
   * paper draws them once (seed 42).
   */
  get(index: number, epoch?: number): Promise<PreferenceExample>;
}

export interface SplitStats {
  readonly examples: number;
  readonly users: number;
  /** Bayes-optimal accuracy where the data is synthetic and the truth known. */
  readonly bayesOptimalAccuracy?: number;
}

/** Source of training and evaluation examples (e.g. `@userpref/dataset-pickapic`). */
export const PreferenceDataset = Symbol.for('userpref.PreferenceDataset');
export interface PreferenceDataset {
  /** Opens / prepares the data; called once before `split`. */
  init(): Promise<void>;
  split(name: SplitName): PreferenceSplit;
  stats(name: SplitName): SplitStats;
}
