/** Data types shared by every contract, named as in the paper (SPEC §1, §2, §6). */

/** Decoded image, 8-bit RGB, row-major HWC. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** An image known by its content hash; decoding is lazy so datasets never hold every pixel. */
export interface PreferenceImage {
  /** Content hash (hex sha256 of the encoded bytes): equal bytes, equal id. */
  readonly id: string;
  decode(): Promise<RgbImage>;
}

/** One comparison of a user's history: for `prompt` the user preferred `liked` over `disliked`. */
export interface ReferencePair {
  readonly prompt: string;
  readonly liked: PreferenceImage;
  readonly disliked: PreferenceImage;
}

/** A new comparison to predict: which of image0 / image1 does this user prefer? */
export interface TargetComparison {
  readonly prompt: string;
  readonly image0: PreferenceImage;
  readonly image1: PreferenceImage;
  /** 1 = image0 preferred, 0 = image1 preferred, 0.5 = tie (kept only if the tie policy says so). */
  readonly label0: number;
}

/** One training / evaluation example: a user's references plus one target comparison. */
export interface PreferenceExample {
  readonly userId: string;
  /** Reference pairs, in the order they appear in the sequence. */
  readonly references: readonly ReferencePair[];
  /**
   * Per reference: show the liked image first? Training randomises, evaluation fixes
   * disliked-first (SPEC §2).
   */
  readonly likedFirst: readonly boolean[];
  readonly target: TargetComparison;
}

export type PreferenceBatch = readonly PreferenceExample[];

/** score(candidate | references) = P("+") in [0, 1] for each candidate of a target. */
export interface PreferenceScore {
  readonly userId: string;
  readonly score0: number;
  readonly score1: number;
  readonly label0: number;
}

export type SplitName = 'train' | 'validation' | 'test';
