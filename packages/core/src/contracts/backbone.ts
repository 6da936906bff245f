import type * as tf from '@tensorflow/tfjs-core';
import type { PreferenceBatch, PreferenceImage, ReferencePair } from './types';

/**
 * Last-position logits of the two target sequences of each example (SPEC §2): both share the
 * reference history; `liked` ends with the liked candidate, `disliked` with the disliked one.
 */
export interface PairLogits {
  /**
   * [batch, vocab] logits after the liked-candidate turn. The liked candidate is image0 when
   * label0 >= 0.5 (so for a tie, image0), else image1.
   */
  readonly liked: tf.Tensor2D;
  /** [batch, vocab] logits after the disliked-candidate turn. */
  readonly disliked: tf.Tensor2D;
  /** Extra loss terms contributed by the forward pass (e.g. the prompt pool's pull constraint). */
  readonly auxLosses?: ReadonlyArray<{ name: string; value: tf.Scalar }>;
}

/** Token ids of the readout (taken from the tokenizer, never hard-coded). */
export interface ReadoutTokens {
  readonly positive: number;
  readonly negative: number;
}

/** A batch made ready for the synchronous forward pass (opaque to everyone but its backbone). */
export interface PreparedBatch {
  readonly size: number;
  /** Frees tensors held by the batch. */
  dispose(): void;
}

/** What a forward pass may be asked for beyond the logits. */
export interface ForwardOptions {
  /** Apply dropout and keep what gradients need. */
  readonly training: boolean;
  /**
   * Seed for this call's dropout masks, so a resumed run reproduces an uninterrupted one.
   * Derived by the trainer from the run seed and the step.
   */
  readonly seed?: number;
}

/**
 * Inputs that a preference-token plugin prepends to the text model's input embeddings, before
 * BOS (SPEC §5). The backbone builds the context; the tokens plugin answers with embeddings.
 */
export interface PrefixContext {
  /** [batch, d_text] mean of each example's reference-history input embeddings (pool query). */
  readonly historyMean: tf.Tensor2D;
  /**
   * [batch, d_text] each example's mean input embedding over its liked reference images' tokens
   * minus the same over its disliked ones: the direction of the user's taste in the text model's
   * input space, which historyMean cannot show (every pair adds one liked and one disliked image to
   * it whatever the choice). A query for group-specific tokens.
   */
  readonly preferenceDirection: tf.Tensor2D;
  /**
   * True when the forward pass trains (ForwardOptions.training): a provider may then update
   * training-only state, e.g. how often each pooled prompt is chosen. Absent means false.
   */
  readonly training?: boolean;
}

export interface PrefixProvider {
  /** [batch, length, d_text] embeddings, plus any auxiliary loss term. */
  prefix(context: PrefixContext): { embeddings: tf.Tensor3D; auxLoss?: tf.Scalar };
  readonly length: number;
}

/**
 * One person's reference history as ranking reads it (SPEC §1): the pairs in sequence order and,
 * per pair, whether the liked image comes first (evaluation's order, disliked first, by default).
 */
export interface PreferenceHistory {
  readonly references: readonly ReferencePair[];
  /** Per reference: show the liked image first? Default: disliked first for every pair (SPEC §2). */
  readonly likedFirst?: readonly boolean[];
}

/** The readout of one candidate after a history: z+ and z- at the last position (SPEC §3). */
export interface CandidateReadout {
  readonly positive: number;
  readonly negative: number;
}

/**
 * A history run once through the model, kept (e.g. as its attention keys and values) so that any
 * number of candidates is scored after it without running it again. Each candidate is scored as
 * the last turn of its own sequence: candidates never see each other.
 */
export interface HistorySession {
  /** z+ / z- of each candidate as the target turn (with `prompt`) after the history, in order. */
  score(prompt: string, candidates: readonly PreferenceImage[]): Promise<CandidateReadout[]>;
  /** Frees what the session holds. */
  dispose(): void;
}

/**
 * The multimodal LLM that reads a user's history and scores a candidate (SPEC §3).
 * Implemented by plugins (e.g. `@userpref/backbone-idefics2`).
 */
export const Backbone = Symbol.for('userpref.Backbone');
export interface Backbone {
  /** Loads weights / tokenizer; called once by the runner before anything else. */
  init(): Promise<void>;
  /** Text model hidden size (width of a preference token). */
  readonly textHiddenSize: number;
  readonly readout: ReadoutTokens;
  /**
   * The asynchronous half of a forward pass: decode and preprocess images, tokenise, look up
   * cached image features. Kept apart because tfjs gradients (tf.variableGrads) need a
   * synchronous function. The caller disposes the result.
   */
  prepare(batch: PreferenceBatch): Promise<PreparedBatch>;
  /**
   * Logits for the liked- and disliked-target sequences of every prepared example. Synchronous
   * and differentiable: call inside tf.tidy / tf.variableGrads; returned tensors are owned by the
   * caller.
   */
  pairLogits(prepared: PreparedBatch, options: ForwardOptions): PairLogits;
  /** Prepend learnable embeddings before BOS for every sequence (stage 2); null removes it. */
  setPrefixProvider(provider: PrefixProvider | null): void;
  /**
   * [n, d] pooled frozen image features (the vision tower's output, mean over its tokens), for
   * baselines that compare images without the language model (nearest-reference) and for
   * analysis. Optional: a backbone without a separable image encoder omits it.
   */
  imageEmbeddings?(images: readonly PreferenceImage[]): Promise<tf.Tensor2D>;
  /**
   * Runs a history once and returns a session that scores candidates after it (ranking many
   * candidates for one person). Optional: without it, rankers score candidates through
   * prepare / pairLogits, two candidates an example.
   */
  openHistory?(history: PreferenceHistory): Promise<HistorySession>;
  /** The variables stage 1 trains (LoRA). */
  adapterVariables(): tf.Variable[];
  saveAdapter(dir: string): Promise<void>;
  loadAdapter(dir: string): Promise<void>;
}
