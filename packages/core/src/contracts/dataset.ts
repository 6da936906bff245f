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

/**
 * Groups of users known from outside the model, e.g. the hidden taste clusters of a synthetic
 * benchmark: what similar-user mining measures its neighbour lists against.
 */
export interface UserGroups {
  /** Where the groups were read from (a file, a manifest key), for reports. */
  readonly source: string;
  /** user id -> group id; users not in the map have no known group. */
  readonly groups: ReadonlyMap<string, number>;
}

/** A dataset that knows groups of its users (synthetic data with recorded clusters). */
export interface UserGroupsProvider {
  /** The known groups of the dataset's users, or null when none are recorded (e.g. real data). */
  knownUserGroups(): Promise<UserGroups | null>;
}

/** True when the dataset offers the known-user-groups capability (an optional capability of a PreferenceDataset). */
export function hasKnownUserGroups(dataset: PreferenceDataset): dataset is PreferenceDataset & UserGroupsProvider {
  return typeof (dataset as Partial<UserGroupsProvider>).knownUserGroups === 'function';
}

/** Source of training and evaluation examples (e.g. `@userpref/dataset-pickapic`). */
export const PreferenceDataset = Symbol.for('userpref.PreferenceDataset');
export interface PreferenceDataset {
  /** Opens / prepares the data; called once before `split`. */
  init(): Promise<void>;
  split(name: SplitName): PreferenceSplit;
  stats(name: SplitName): SplitStats;
}
