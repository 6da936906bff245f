import type { PreferenceImage } from './types';

/**
 * A non-personalised scorer: score(prompt, image), higher = preferred, with no user history. The
 * zero-shot rows of the paper's Table 1 (SPEC §7: Aesthetic, CLIP, ImageReward, HPS, PickScore)
 * are scorers; the evaluation credits one on a comparison when score(prompt, liked) >
 * score(prompt, disliked), under the same tie policy as the personalised models.
 * Implemented by plugins (e.g. `@userpref/scorer-clip`).
 */
export const ZeroShotScorer = Symbol.for('userpref.ZeroShotScorer');
export interface ZeroShotScorer {
  /** Loads weights / tokenizer; called once by the runner before `score`. */
  init(): Promise<void>;
  /**
   * One score per image for the same prompt, in order. Scores of one scorer are comparable with
   * each other (the evaluation compares two candidates of one prompt), not across scorers.
   */
  score(prompt: string, images: readonly PreferenceImage[]): Promise<number[]>;
  /** Frees what `init` loaded (inference sessions). */
  dispose?(): Promise<void>;
}
