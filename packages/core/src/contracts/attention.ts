/**
 * Attention of a target image to the preference tokens: what similar-user mining (the paper's
 * Figure 3, `@userpref/mining`) reads from a model. Reading attention maps is specific to a
 * backbone's architecture, so it is an optional capability of a Backbone (like imageEmbeddings):
 * a backbone that can offer it implements AttentionProbeProvider, and analysis code asks
 * `hasAttentionProbe(backbone)` instead of naming a backbone class.
 *
 * Direction: the text model is causal and the preference tokens sit before BOS, so a preference
 * token can never attend to the later target image. The attention that varies from user to user
 * is the other direction: the target image's tokens (queries) attending to the preference tokens
 * (keys).
 */
import type { Backbone, PrefixProvider } from './backbone';
import type { PreferenceExample } from './types';

/** Which layers and heads of the text model are read. */
export interface AttentionSelection {
  /** Text-model layer indices, each in [0, numLayers). */
  readonly layers: readonly number[];
  /** Head indices, each in [0, numHeads); null = all heads. */
  readonly heads: readonly number[] | null;
  /** Layers whose maps are kept per forward pass (0 or absent = all selected layers in one pass): a memory bound. */
  readonly layersPerPass?: number;
}

/** Per example, per selected layer: the target image's attention to the preference tokens. */
export interface AttentionProbe {
  /** Layers of the text model. */
  readonly numLayers: number;
  /** Attention heads per layer. */
  readonly numHeads: number;
  /**
   * Runs the liked-target sequence of each example (its target image is `target.image0`) with the
   * prefix of `prefix` prepended, as the backbone's own forward pass would, and returns for each
   * example, for each layer of `selection.layers` in order, the [prefix length] mean over the
   * selected heads and over the target image's tokens of the attention to each preference token.
   */
  preferenceAttention(examples: readonly PreferenceExample[], prefix: PrefixProvider, selection: AttentionSelection): Promise<Float32Array[][]>;
}

/** A backbone that can build an AttentionProbe over its loaded weights (after init()). */
export interface AttentionProbeProvider {
  /** A probe over the backbone as it is now (adapter loaded, prompt settings of its options). */
  attentionProbe(): Promise<AttentionProbe>;
}

/** True when the backbone offers the attention-probe capability. */
export function hasAttentionProbe(backbone: Backbone): backbone is Backbone & AttentionProbeProvider {
  return typeof (backbone as Partial<AttentionProbeProvider>).attentionProbe === 'function';
}
