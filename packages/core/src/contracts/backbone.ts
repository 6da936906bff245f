import type * as tf from '@tensorflow/tfjs-core';
import type { PreferenceBatch } from './types';

/**
 * Last-position logits of the two target sequences of each example (SPEC §2): both share the
 * reference history; `liked` ends with the liked candidate, `disliked` with the disliked one.
 */
export interface PairLogits {
  /** [batch, vocab] logits after the liked-candidate turn. */
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

/** What a forward pass may be asked for beyond the logits. */
export interface ForwardOptions {
  /** Apply dropout and keep what gradients need. */
  readonly training: boolean;
}

/**
 * Inputs that a preference-token plugin prepends to the text model's input embeddings, before
 * BOS (SPEC §5). The backbone builds the context; the tokens plugin answers with embeddings.
 */
export interface PrefixContext {
  /** [batch, d_text] mean of each example's reference-history input embeddings (pool query). */
  readonly historyMean: tf.Tensor2D;
}

export interface PrefixProvider {
  /** [batch, length, d_text] embeddings, plus any auxiliary loss term. */
  prefix(context: PrefixContext): { embeddings: tf.Tensor3D; auxLoss?: tf.Scalar };
  readonly length: number;
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
   * Logits for the liked- and disliked-target sequences of every example. Call inside
   * tf.tidy / tf.variableGrads: returned tensors are owned by the caller.
   */
  pairLogits(batch: PreferenceBatch, options: ForwardOptions): Promise<PairLogits>;
  /** Prepend learnable embeddings before BOS for every sequence (stage 2); null removes it. */
  setPrefixProvider(provider: PrefixProvider | null): void;
  /** The variables stage 1 trains (LoRA). */
  adapterVariables(): tf.Variable[];
  saveAdapter(dir: string): Promise<void>;
  loadAdapter(dir: string): Promise<void>;
}
