/**
 * Ranking candidate images for one person (the use the paper's model exists for): the person's
 * history of liked / disliked pairs (SPEC §1), an optional prompt, N candidates; each candidate is
 * scored as the target turn after the history, score = z+ - z- at the readout (SPEC §3), and
 * P("+") = exp(z+) / (exp(z+) + exp(z-)) = sigmoid(score).
 *
 * Works with any Backbone:
 * - with `openHistory` (e.g. idefics2) the history runs once, as a key-value state, and the
 *   candidates run on top of it, `chunk` at a time;
 * - without it, through the training contract: prepare / pairLogits on examples whose two target
 *   images are two candidates (the liked- and disliked-target sequences are separate sequences, so
 *   each example scores two candidates), `chunk` candidates per batch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone, CandidateReadout, PreferenceExample, PreferenceHistory, PreferenceImage, ReferencePair } from '@userpref/core';

/** A candidate to rank: an image and the name it is reported under (file or field). */
export interface RankCandidate {
  readonly name: string;
  readonly image: PreferenceImage;
}

export interface RankRequest {
  readonly history: PreferenceHistory;
  /** The prompt the candidates were generated for ('' = none; the backbone's usePrompt decides whether it is shown). */
  readonly prompt?: string;
  readonly candidates: readonly RankCandidate[];
}

export interface ScoredCandidate {
  /** Position in the request. */
  readonly index: number;
  readonly name: string;
  /** 1 = the one this person is predicted to like most. */
  readonly rank: number;
  /** z+ - z-: the log-odds that the person likes it. */
  readonly score: number;
  /** P("+") = sigmoid(score). */
  readonly probability: number;
  /** z+ and z- (logits of "+" and "-"). */
  readonly positive: number;
  readonly negative: number;
}

export interface Ranking {
  /** Candidates in request order. */
  readonly candidates: readonly ScoredCandidate[];
  /** Request indices, best first (ties keep request order). */
  readonly order: readonly number[];
  /** 'history-session': the history ran once (Backbone.openHistory); 'pairs': prepare / pairLogits. */
  readonly method: 'history-session' | 'pairs';
  readonly referencePairs: number;
  /** Wall time of the history run (0 for 'pairs', where it is part of each batch) and of the candidates. */
  readonly timings: { readonly historyMs: number; readonly candidatesMs: number };
}

export interface RankOptions {
  /** Candidates per forward (default 16). */
  readonly chunk?: number;
  /** 'auto' (default): the backbone's history session when it has one; 'pairs': always the fallback. */
  readonly method?: 'auto' | 'pairs';
  /** Checked between chunks: an aborted ranking stops there with the signal's reason. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (scored: number, total: number) => void;
}

/** A request that cannot be ranked as it is (no candidate, odd history). */
export class RankRequestError extends Error {
  readonly expected = true;
  constructor(message: string) {
    super(message);
    this.name = 'RankRequestError';
  }
}

/**
 * The paper's history from liked and disliked images: pair i is (liked[i], disliked[i]) with
 * prompt prompts[i] ('' when absent). The counts must match: a reference is a pair.
 */
export function pairHistory(liked: readonly PreferenceImage[], disliked: readonly PreferenceImage[], prompts: readonly string[] = []): PreferenceHistory {
  if (liked.length !== disliked.length) {
    throw new RankRequestError(`the history is made of pairs: ${liked.length} liked and ${disliked.length} disliked images (give as many of each)`);
  }
  if (prompts.length > liked.length) throw new RankRequestError(`${prompts.length} history prompts for ${liked.length} pairs`);
  const references: ReferencePair[] = liked.map((l, i) => ({ prompt: prompts[i] ?? '', liked: l, disliked: disliked[i] }));
  return { references };
}

/**
 * Lets the event loop run between chunks: model work is synchronous, so without this a service
 * could not answer a health check, refuse a request or fire a timeout until a ranking ended.
 */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** Scores and orders the candidates of one request. */
export async function rankCandidates(backbone: Backbone, request: RankRequest, options: RankOptions = {}): Promise<Ranking> {
  const n = request.candidates.length;
  if (n === 0) throw new RankRequestError('no candidate images to rank');
  const chunk = options.chunk ?? 16;
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new RankRequestError(`chunk must be a positive integer, got ${chunk}`);
  const likedFirst = request.history.likedFirst;
  if (likedFirst && likedFirst.length !== request.history.references.length) {
    throw new RankRequestError(`${request.history.references.length} reference pairs but ${likedFirst.length} likedFirst flags`);
  }
  const prompt = request.prompt ?? '';
  const images = request.candidates.map((c) => c.image);
  const signal = options.signal;
  signal?.throwIfAborted();
  const useSession = options.method !== 'pairs' && typeof backbone.openHistory === 'function';
  const readouts: CandidateReadout[] = [];
  let historyMs = 0;
  const t0 = Date.now();
  if (useSession) {
    const session = await backbone.openHistory!(request.history);
    historyMs = Date.now() - t0;
    try {
      for (let i = 0; i < n; i += chunk) {
        await yieldToEventLoop();
        signal?.throwIfAborted();
        readouts.push(...(await session.score(prompt, images.slice(i, i + chunk))));
        options.onProgress?.(readouts.length, n);
      }
    } finally {
      session.dispose();
    }
  } else {
    for (let i = 0; i < n; i += chunk) {
      await yieldToEventLoop();
      signal?.throwIfAborted();
      readouts.push(...(await scoreByPairs(backbone, request.history, prompt, images.slice(i, i + chunk))));
      options.onProgress?.(readouts.length, n);
    }
  }
  const candidatesMs = Date.now() - t0 - historyMs;
  if (readouts.length !== n) throw new Error(`the backbone returned ${readouts.length} scores for ${n} candidates`);
  const scores = readouts.map((r) => r.positive - r.negative);
  const order = [...scores.keys()].sort((a, b) => scores[b] - scores[a] || a - b);
  const rankOf = new Array<number>(n);
  order.forEach((idx, r) => (rankOf[idx] = r + 1));
  const candidates = request.candidates.map((c, i) => ({
    index: i,
    name: c.name,
    rank: rankOf[i],
    score: scores[i],
    probability: sigmoid(scores[i]),
    positive: readouts[i].positive,
    negative: readouts[i].negative,
  }));
  return { candidates, order, method: useSession ? 'history-session' : 'pairs', referencePairs: request.history.references.length, timings: { historyMs, candidatesMs } };
}

/**
 * The fallback through prepare / pairLogits: example k has candidates 2k (image0, "liked") and
 * 2k+1 (image1, "disliked"); an odd last candidate is paired with itself. One batch per call.
 */
export async function scoreByPairs(backbone: Backbone, history: PreferenceHistory, prompt: string, candidates: readonly PreferenceImage[]): Promise<CandidateReadout[]> {
  const refs = history.references;
  const likedFirst = history.likedFirst ?? refs.map(() => false);
  const examples: PreferenceExample[] = [];
  for (let i = 0; i < candidates.length; i += 2) {
    const other = candidates[Math.min(i + 1, candidates.length - 1)];
    examples.push({ userId: 'ranking', references: refs, likedFirst, target: { prompt, image0: candidates[i], image1: other, label0: 1 } });
  }
  const prepared = await backbone.prepare(examples);
  let liked: Float32Array;
  let disliked: Float32Array;
  try {
    const { positive, negative } = backbone.readout;
    const [l, d] = tf.tidy(() => {
      const out = backbone.pairLogits(prepared, { training: false });
      const cols = tf.tensor1d([positive, negative], 'int32');
      return [tf.gather(out.liked, cols, 1), tf.gather(out.disliked, cols, 1)];
    });
    liked = (await l.data()) as Float32Array;
    disliked = (await d.data()) as Float32Array;
    tf.dispose([l, d]);
  } finally {
    prepared.dispose();
  }
  const out: CandidateReadout[] = [];
  examples.forEach((_, k) => {
    out.push({ positive: liked[2 * k], negative: liked[2 * k + 1] });
    if (2 * k + 1 < candidates.length) out.push({ positive: disliked[2 * k], negative: disliked[2 * k + 1] });
  });
  return out;
}
