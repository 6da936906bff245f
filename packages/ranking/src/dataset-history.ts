/**
 * The history of a user of an imported data set (e.g. Pick-a-Pic or synthpick through
 * @userpref/dataset-pickapic): the reference pairs of that user's first example in a split, in
 * the order and orientation the data set gives them (evaluation's: disliked first).
 */
import type { PreferenceExample, PreferenceHistory, PreferenceSplit } from '@userpref/core';
import { RankRequestError } from './rank';

export interface DatasetHistory {
  readonly history: PreferenceHistory;
  /** The example the references were taken from (its target comparison is the user's own). */
  readonly example: PreferenceExample;
  /** Examples of this user in the split. */
  readonly examples: number;
}

/** Finds `userId` in `split` (a scan of its examples); RankRequestError when the user is not there. */
export async function historyOfUser(split: PreferenceSplit, userId: string, referencePairs?: number): Promise<DatasetHistory> {
  let first: PreferenceExample | null = null;
  let examples = 0;
  const seen = new Set<string>();
  for (let i = 0; i < split.size; i++) {
    const ex = await split.get(i);
    seen.add(ex.userId);
    if (ex.userId !== userId) continue;
    examples++;
    first ??= ex;
  }
  if (!first) {
    const some = [...seen].slice(0, 5).join(', ');
    throw new RankRequestError(`user '${userId}' has no example in the ${split.name} split (${seen.size} users, e.g. ${some})`);
  }
  const k = Math.min(referencePairs ?? first.references.length, first.references.length);
  return { history: { references: first.references.slice(0, k), likedFirst: first.likedFirst.slice(0, k) }, example: first, examples };
}
