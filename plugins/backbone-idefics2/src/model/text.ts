/**
 * The Mistral text model of IDEFICS2 with its LM head, and the merge of image features into the
 * token embeddings.
 *
 * Padding convention: RIGHT padding. Real tokens of every sequence sit at positions 0..len-1 with
 * RoPE positions 0..len-1, exactly as in an unpadded forward (transformers' forward uses positions
 * 0..T-1 whatever the mask, so right padding is the layout for which a padded batch reproduces the
 * unpadded logits), and the logits are read at each sequence's last real position. Under the
 * causal mask a real query never sees a later pad key, so for right-padded masks the causal mask
 * alone is exact; any other mask (holes, left padding) adds a key-padding mask.
 *
 * Prepended embeddings (preference tokens, SPEC §5) go before BOS of every sequence: the sequence
 * grows by the same length everywhere, the mask gets ones there and the last index shifts, which
 * is what the original's all-ones mask got wrong for padded batches (SPEC §8).
 *
 * Mistral's sliding window is applied in the causal mask (key j visible from query i when
 * i - j < sliding_window), so sequences longer than the window are computed as transformers does.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Idefics2Config } from './config';
import type { RunContext } from './linear';
import { activate, applyRope, attention, MASKED, ropeTables, rmsNorm } from './ops';
import type { Idefics2Params } from './weights';

export interface TextForwardOptions {
  /** [B*T] 1 = real token, 0 = pad; omitted = all real. */
  readonly attentionMask?: ArrayLike<number>;
  /** Index of the last real position of each sequence (default: last 1 of the mask). */
  readonly lastIndex?: readonly number[];
  /** Also return the hidden states: the input embeddings and each layer's output ([B, T, d]). */
  readonly outputHiddenStates?: boolean;
  /** Attention probabilities [B, H, T, T] of all layers (true) or of the listed layer indices. */
  readonly outputAttentions?: boolean | readonly number[];
  readonly ctx: RunContext;
}

export interface TextForwardResult {
  /** [B, vocab] logits at each sequence's last real position. */
  readonly logits: tf.Tensor2D;
  readonly hiddenStates?: tf.Tensor3D[];
  /** Indexed by layer; undefined for layers not requested. */
  readonly attentions?: Array<tf.Tensor4D | undefined>;
}

/** Last real index per row of a 0/1 mask [B*T]. */
export function lastRealIndex(mask: ArrayLike<number>, B: number, T: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let last = -1;
    for (let t = 0; t < T; t++) if (mask[b * T + t]) last = t;
    if (last < 0) throw new Error(`sequence ${b} of the batch has no real token (attention mask all zero)`);
    out.push(last);
  }
  return out;
}

/** True when every row is ones then zeros (right padding), where the causal mask suffices. */
function isRightPadded(mask: ArrayLike<number>, B: number, T: number): boolean {
  for (let b = 0; b < B; b++) {
    let seenPad = false;
    for (let t = 0; t < T; t++) {
      if (!mask[b * T + t]) seenPad = true;
      else if (seenPad) return false;
    }
  }
  return true;
}

function causalMask(T: number, window: number | null): tf.Tensor {
  const data = new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      if (j > i || (window !== null && i - j >= window)) data[i * T + j] = MASKED;
    }
  }
  return tf.tensor(data, [1, 1, 1, T, T]);
}

/**
 * Input embeddings of token ids [B*T] with the image features [nImages, latents, d] placed, in
 * order, at the image-token positions (transformers' inputs_merger / masked_scatter).
 */
export function mergeInputEmbeddings(params: Idefics2Params, config: Idefics2Config, inputIds: ArrayLike<number>, B: number, T: number, imageFeatures: tf.Tensor3D | null): tf.Tensor3D {
  const d = config.text.hiddenSize;
  const imageId = config.imageTokenId;
  const vocab = config.text.vocabSize;
  const textIds: number[] = [];
  const map = new Int32Array(B * T);
  let imageRows = 0;
  for (let i = 0; i < B * T; i++) {
    const id = inputIds[i];
    if (id === imageId) {
      map[i] = -1 - imageRows++;
    } else {
      if (!(id >= 0 && id < vocab)) throw new Error(`token id ${id} at position ${i % T} of sequence ${Math.floor(i / T)} is outside the vocabulary [0, ${vocab})`);
      map[i] = textIds.length;
      textIds.push(id);
    }
  }
  const available = imageFeatures ? imageFeatures.shape[0] * imageFeatures.shape[1] : 0;
  if (imageRows !== available) {
    throw new Error(`the batch has ${imageRows} image tokens (id ${imageId}) but the image features provide ${available} rows (${imageFeatures ? imageFeatures.shape.join('x') : 'none'})`);
  }
  return tf.tidy(() => {
    const textEmb = tf.gather(params.text.embed, tf.tensor1d(textIds, 'int32'));
    if (imageRows === 0) return tf.reshape(textEmb, [B, T, d]) as tf.Tensor3D;
    const nText = textIds.length;
    for (let i = 0; i < map.length; i++) if (map[i] < 0) map[i] = nText + (-1 - map[i]);
    const source = tf.concat([textEmb, tf.reshape(imageFeatures!, [imageRows, d])], 0);
    return tf.reshape(tf.gather(source, tf.tensor1d(map, 'int32')), [B, T, d]) as tf.Tensor3D;
  });
}

/** Runs the text model on embeddings [B, T, d]; returns last-position logits (and extras). */
export function textForward(params: Idefics2Params, config: Idefics2Config, embeds: tf.Tensor3D, options: TextForwardOptions): TextForwardResult {
  const tc = config.text;
  const [B, T, d] = embeds.shape;
  if (d !== tc.hiddenSize) throw new Error(`embeddings have width ${d}; text_config.hidden_size is ${tc.hiddenSize}`);
  const mask = options.attentionMask ?? new Uint8Array(B * T).fill(1);
  if (mask.length !== B * T) throw new Error(`attention mask has ${mask.length} entries for a [${B}, ${T}] batch`);
  const last = options.lastIndex ?? lastRealIndex(mask, B, T);
  if (last.length !== B) throw new Error(`lastIndex has ${last.length} entries for a batch of ${B}`);
  for (const [b, i] of last.entries()) if (!(i >= 0 && i < T)) throw new Error(`lastIndex[${b}] = ${i} is outside [0, ${T})`);
  const wantAtt = options.outputAttentions;
  const attLayers = new Set<number>(wantAtt === true ? tc.numLayers > 0 ? [...Array(tc.numLayers).keys()] : [] : Array.isArray(wantAtt) ? wantAtt : []);

  const positions = Array.from({ length: T }, (_, i) => i);
  const { cos, sinSigned } = ropeTables(positions, tc.headDim, tc.ropeTheta);
  const hiddenStates: tf.Tensor3D[] = [];
  const attentions: Array<tf.Tensor4D | undefined> = [];
  const result = tf.tidy(() => {
    const cosT = tf.tensor(cos, [1, T, 1, tc.headDim]);
    const sinT = tf.tensor(sinSigned, [1, T, 1, tc.headDim]);
    const masks: tf.Tensor[] = [causalMask(T, tc.slidingWindow)];
    if (!isRightPadded(mask, B, T)) {
      const kp = new Float32Array(B * T);
      for (let i = 0; i < B * T; i++) if (!mask[i]) kp[i] = MASKED;
      masks.push(tf.tensor(kp, [B, 1, 1, 1, T]));
    }
    const shape = { batch: B, queryLen: T, keyLen: T, heads: tc.numHeads, kvHeads: tc.numKvHeads, headDim: tc.headDim };
    let h = tf.reshape(embeds, [B * T, d]) as tf.Tensor2D;
    if (options.outputHiddenStates) hiddenStates.push(tf.keep(tf.reshape(h, [B, T, d]) as tf.Tensor3D));
    params.text.layers.forEach((layer, l) => {
      const a = rmsNorm(h, layer.inputNorm.w, tc.rmsNormEps) as tf.Tensor2D;
      const [q, k, v] = layer.qkv.apply(a, options.ctx);
      const qr = applyRope(q, B, T, tc.numHeads, tc.headDim, cosT, sinT);
      const kr = applyRope(k, B, T, tc.numKvHeads, tc.headDim, cosT, sinT);
      const att = attention(qr, kr, v, shape, masks, attLayers.has(l));
      if (att.probs) attentions[l] = tf.keep(att.probs);
      h = tf.add(h, layer.o.apply1(att.out, options.ctx));
      const m = rmsNorm(h, layer.postNorm.w, tc.rmsNormEps) as tf.Tensor2D;
      const [g, u] = layer.gateUp.apply(m, options.ctx);
      h = tf.add(h, layer.down.apply1(tf.mul(activate(g, tc.hiddenAct), u) as tf.Tensor2D, options.ctx));
      if (options.outputHiddenStates) hiddenStates.push(tf.keep(tf.reshape(h, [B, T, d]) as tf.Tensor3D));
    });
    // Only the rows that are read go through the final norm and the LM head.
    const rows = tf.concat(last.map((i, b) => tf.slice(h, [b * T + i, 0], [1, d])), 0) as tf.Tensor2D;
    return params.text.lmHead.apply1(rmsNorm(rows, params.text.norm.w, tc.rmsNormEps) as tf.Tensor2D, options.ctx);
  });
  return {
    logits: result,
    ...(options.outputHiddenStates ? { hiddenStates } : {}),
    ...(attLayers.size > 0 ? { attentions } : {}),
  };
}
