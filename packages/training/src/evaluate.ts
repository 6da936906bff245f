/**
 * Scores a split with a backbone: for every comparison P("+") of each candidate after the user's
 * references (SPEC §1). Both candidates are scored (the original scored image0 only, SPEC §8).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone, PreferenceExample, PreferenceScore, PreferenceSplit } from '@userpref/core';
import { plusProbability } from './objective';

export interface ScoreOptions {
  batchSize: number;
  /** Score at most this many examples (in index order). */
  limit?: number;
  /** Keep only the first k reference pairs of each example (accuracy vs. history length). */
  referencePairs?: number;
  /**
   * Scores this backbone already gave the same examples, read with `known.referencePairs` (undefined:
   * all of them). An example that both counts leave with the same references is taken from there,
   * not scored again (the accuracy-vs-references curve at the full history is the model's own row).
   */
  known?: { referencePairs?: number; scores: readonly PreferenceScore[] };
  onProgress?: (done: number, total: number) => void;
}

export function truncateReferences(ex: PreferenceExample, k: number): PreferenceExample {
  if (k >= ex.references.length) return ex;
  return { ...ex, references: ex.references.slice(0, k), likedFirst: ex.likedFirst.slice(0, k) };
}

export async function scoreExamples(backbone: Backbone, examples: readonly PreferenceExample[]): Promise<PreferenceScore[]> {
  const prepared = await backbone.prepare(examples);
  try {
    const [liked, disliked] = tf.tidy(() => {
      const out = backbone.pairLogits(prepared, { training: false });
      return [plusProbability(out.liked, backbone.readout), plusProbability(out.disliked, backbone.readout)];
    });
    const l = await liked.data();
    const d = await disliked.data();
    liked.dispose();
    disliked.dispose();
    return examples.map((ex, i) => {
      const image0Liked = ex.target.label0 >= 0.5;
      return { userId: ex.userId, label0: ex.target.label0, score0: image0Liked ? l[i] : d[i], score1: image0Liked ? d[i] : l[i] };
    });
  } finally {
    prepared.dispose();
  }
}

/** Whether reading `ex` with the first `a` and the first `b` reference pairs (undefined: all) gives the same history. */
function sameHistory(ex: PreferenceExample, a: number | undefined, b: number | undefined): boolean {
  const n = ex.references.length;
  return Math.min(n, a ?? n) === Math.min(n, b ?? n);
}

export async function scoreSplit(backbone: Backbone, split: PreferenceSplit, options: ScoreOptions): Promise<PreferenceScore[]> {
  const total = Math.min(split.size, options.limit ?? Infinity);
  const out: PreferenceScore[] = [];
  for (let start = 0; start < total; start += options.batchSize) {
    const idx = Array.from({ length: Math.min(options.batchSize, total - start) }, (_, i) => start + i);
    let batch = await Promise.all(idx.map((i) => split.get(i)));
    const reused = idx.map((i, j) => (options.known && sameHistory(batch[j], options.referencePairs, options.known.referencePairs) ? options.known.scores[i] : undefined));
    if (options.referencePairs !== undefined) batch = batch.map((ex) => truncateReferences(ex, options.referencePairs!));
    const todo = batch.filter((_, j) => !reused[j]);
    const fresh = todo.length ? await scoreExamples(backbone, todo) : [];
    let f = 0;
    out.push(...reused.map((r) => r ?? fresh[f++]));
    options.onProgress?.(out.length, total);
  }
  return out;
}
