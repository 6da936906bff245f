/**
 * The Mistral text model of IDEFICS2 with its LM head, and the merge of image features into the
 * token embeddings.
 *
 * Padding convention: RIGHT padding. Real tokens of every sequence sit at positions 0..len-1 with
 * RoPE positions 0..len-1, exactly as in an unpadded forward (transformers' forward uses positions
 * 0..T-1 whatever the mask, so right padding is the layout for which a padded batch reproduces the
 * unpadded logits), and the logits are read at each sequence's last real position. Attention
 * trims each row's keys to its real length, so right padding costs no mask; any other mask (holes,
 * left padding) adds a key-padding mask.
 *
 * `textForwardPacked` is the general form: rows of several sequences or sequence parts packed in one
 * matrix, with per-segment attention (./attention.ts). The backbone uses it to run a shared
 * reference prefix once and the two target suffixes on top of its keys.
 *
 * Prepended embeddings (preference tokens, SPEC §5) go before BOS of every sequence: the sequence
 * grows by the same length everywhere, the mask gets ones there and the last index shifts, which
 * is what the original's all-ones mask got wrong for padded batches (SPEC §8).
 *
 * Mistral's sliding window is applied in the causal mask (key j visible from query i when
 * i - j < sliding_window), so sequences longer than the window are computed as transformers does.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DecoderModelConfig } from './config';
import { checkpointed, recordingGradients } from '@userpref/quant';
import { loraVariables, type RunContext } from './linear';
import { planSegments, segmentAttention, type AttentionSegment } from './attention';
import { applyRope, gatedActivation, halfSwapMatrix, ropeTables, rmsNorm } from './ops';
import type { DecoderModelParams, TextLayerParams } from './weights';

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

/** Real length of a row that is ones then zeros (right padding), or -1 for any other pattern. */
function rightPaddedLength(mask: ArrayLike<number>, b: number, T: number): number {
  let len = 0;
  while (len < T && mask[b * T + len]) len++;
  for (let t = len; t < T; t++) if (mask[b * T + t]) return -1;
  return len;
}

/** Host copies of frozen embedding tables, by data id (a replaced or trained table gets a new one). */
const hostTables = new WeakMap<object, Float32Array>();
/** Tables up to this many elements (64 MB) are looked up on the host. */
const HOST_TABLE_LIMIT = 1 << 24;

/**
 * Rows `ids` of an embedding table [vocab, d]. tf.gather costs ~45 ns an element on wasm; a frozen
 * table of moderate size is copied to the host once and indexed there (~1 ns). Trainable tables
 * (tf.Variable) and very large ones use tf.gather, whose gradient reaches the table.
 */
function lookupRows(table: tf.Tensor2D, ids: readonly number[]): tf.Tensor2D {
  const [vocab, d] = table.shape;
  if (table instanceof tf.Variable || vocab * d > HOST_TABLE_LIMIT) return tf.gather(table, tf.tensor1d(ids as number[], 'int32'));
  let host = hostTables.get(table.dataId);
  if (!host) {
    host = table.dataSync() as Float32Array;
    hostTables.set(table.dataId, host);
  }
  const out = new Float32Array(ids.length * d);
  for (let i = 0; i < ids.length; i++) out.set(host.subarray(ids[i] * d, ids[i] * d + d), i * d);
  return tf.tensor2d(out, [ids.length, d]);
}

/**
 * Input embeddings of token ids [B*T] with the image features [nImages, latents, d] placed, in
 * order, at the image-token positions (transformers' inputs_merger / masked_scatter).
 */
export function mergeInputEmbeddings(params: DecoderModelParams, config: DecoderModelConfig, inputIds: ArrayLike<number>, B: number, T: number, imageFeatures: tf.Tensor3D | null): tf.Tensor3D {
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
    const textEmb = lookupRows(params.text.embed, textIds);
    if (imageRows === 0) return tf.reshape(textEmb, [B, T, d]) as tf.Tensor3D;
    // Runs of consecutive text rows and of consecutive image rows, concatenated (slices, not a
    // gather: cheaper on wasm forward and backward).
    const images = tf.reshape(imageFeatures!, [imageRows, d]);
    const pieces: tf.Tensor[] = [];
    for (let i = 0; i < map.length; ) {
      const isImage = map[i] < 0;
      const first = isImage ? -1 - map[i] : map[i];
      let j = i + 1;
      while (j < map.length && (map[j] < 0) === isImage && (isImage ? -1 - map[j] : map[j]) === first + (j - i)) j++;
      pieces.push(tf.slice(isImage ? images : textEmb, [first, 0], [j - i, d]));
      i = j;
    }
    return tf.reshape(pieces.length === 1 ? pieces[0] : tf.concat(pieces, 0), [B, T, d]) as tf.Tensor3D;
  });
}

/** A packed batch: rows of several sequences (or sequence parts) in one [N, d] matrix. */
export interface PackedTextInput {
  /** [N, d] input embeddings. */
  readonly embeds: tf.Tensor2D;
  /** RoPE position of each row. */
  readonly positions: ArrayLike<number>;
  /** Attention structure (see ./attention.ts); segments tile the rows in order. */
  readonly segments: readonly AttentionSegment[];
  /** Rows whose logits are returned, in this order. */
  readonly readRows: readonly number[];
}

export interface PackedTextOptions {
  readonly ctx: RunContext;
  /** Also return each layer's input and output rows ([N, d], kept). */
  readonly outputHiddenStates?: boolean;
  /** Layers whose attention probabilities are returned (per segment [H, Tq, Tk], kept). */
  readonly outputAttentions?: readonly number[];
}

export interface PackedTextResult {
  /** [readRows, vocab] */
  readonly logits: tf.Tensor2D;
  readonly hiddenStates?: tf.Tensor2D[];
  readonly attentions?: Array<tf.Tensor3D[] | undefined>;
}

/**
 * The decoder layers on a packed batch. Linear layers, norms and RoPE run on all rows at once;
 * attention runs per segment (./attention.ts). Only the read rows reach the final norm and the LM
 * head.
 */
export function textForwardPacked(params: DecoderModelParams, config: DecoderModelConfig, input: PackedTextInput, options: PackedTextOptions): PackedTextResult {
  const tc = config.text;
  const [N, d] = input.embeds.shape;
  if (d !== tc.hiddenSize) throw new Error(`embeddings have width ${d}; text_config.hidden_size is ${tc.hiddenSize}`);
  if (input.positions.length !== N) throw new Error(`${input.positions.length} positions for ${N} rows`);
  for (const r of input.readRows) if (!(r >= 0 && r < N)) throw new Error(`read row ${r} is outside [0, ${N})`);
  const attLayers = new Set(options.outputAttentions ?? []);
  const { cos, sinSigned } = ropeTables(input.positions, tc.headDim, tc.rope);
  const hiddenStates: tf.Tensor2D[] = [];
  const attentions: Array<tf.Tensor3D[] | undefined> = [];
  const dims = { heads: tc.numHeads, kvHeads: tc.numKvHeads, headDim: tc.headDim };
  // Activation checkpointing (ctx.checkpoint, while a gradient is recorded): each layer keeps only
  // its input on the tape and is recomputed in the backward. The recomputation must draw the same
  // dropout masks, so an unseeded context gets one seed here; the layer's constants (RoPE tables,
  // attention masks) are made inside the layer, since the backward runs after this scope is gone.
  const ck = options.ctx.checkpoint === true && recordingGradients();
  const ctx: RunContext = ck && options.ctx.seed === undefined ? { ...options.ctx, seed: (Math.random() * 2 ** 32) >>> 0 } : options.ctx;
  const segments = input.segments.map((s) => ({ ...s, window: s.window ?? tc.slidingWindow }));
  const constants = () => ({
    cosT: tf.tensor(cos, [1, N, 1, tc.headDim]),
    sinT: tf.tensor(sinSigned, [1, N, 1, tc.headDim]),
    swap: halfSwapMatrix(tc.headDim),
    plan: planSegments(segments),
  });
  const runLayer = (layer: TextLayerParams, l: number, h: tf.Tensor2D, k: ReturnType<typeof constants>): tf.Tensor2D => {
    const a = rmsNorm(h, layer.inputNorm.w, tc.rmsNormEps) as tf.Tensor2D;
    const [q, kk, v] = layer.qkv.apply(a, ctx);
    const qr = applyRope(q, 1, N, tc.numHeads, tc.headDim, k.cosT, k.sinT, k.swap) as tf.Tensor2D;
    const kr = applyRope(kk, 1, N, tc.numKvHeads, tc.headDim, k.cosT, k.sinT, k.swap) as tf.Tensor2D;
    const att = segmentAttention(qr, kr, v, k.plan, dims, attLayers.has(l));
    if (att.probs) attentions[l] = att.probs.map((p) => tf.keep(p));
    const h1 = tf.add(h, layer.o.apply1(att.out, ctx));
    const m = rmsNorm(h1, layer.postNorm.w, tc.rmsNormEps) as tf.Tensor2D;
    const [g, u] = layer.gateUp.apply(m, ctx);
    return tf.add(h1, layer.down.apply1(gatedActivation(g, u, tc.hiddenAct) as tf.Tensor2D, ctx)) as tf.Tensor2D;
  };
  const logits = tf.tidy(() => {
    const shared = ck ? null : constants();
    let h = input.embeds;
    if (options.outputHiddenStates) hiddenStates.push(tf.keep(tf.clone(h)));
    params.text.layers.forEach((layer, l) => {
      // Each layer in its own scope: only h (and what the tape saves) outlives it.
      if (shared) h = tf.tidy(() => runLayer(layer, l, h, shared));
      else h = checkpointed((x: tf.Tensor2D) => tf.tidy(() => runLayer(layer, l, x, constants())), h, loraVariables([layer.qkv, layer.o, layer.gateUp, layer.down]));
      if (options.outputHiddenStates) hiddenStates.push(tf.keep(tf.clone(h)));
    });
    const rows = readRows(h, input.readRows);
    return params.text.lmHead.apply1(rmsNorm(rows, params.text.norm.w, tc.rmsNormEps) as tf.Tensor2D, options.ctx);
  });
  return {
    logits,
    ...(options.outputHiddenStates ? { hiddenStates } : {}),
    ...(attLayers.size > 0 ? { attentions } : {}),
  };
}

/** Rows `rows` of h [N, d] (slices of consecutive runs). */
function readRows(h: tf.Tensor2D, rows: readonly number[]): tf.Tensor2D {
  const d = h.shape[1];
  const pieces: tf.Tensor2D[] = [];
  for (let i = 0; i < rows.length; ) {
    let j = i + 1;
    while (j < rows.length && rows[j] === rows[i] + (j - i)) j++;
    pieces.push(tf.slice(h, [rows[i], 0], [j - i, d]));
    i = j;
  }
  return pieces.length === 1 ? pieces[0] : (tf.concat(pieces, 0) as tf.Tensor2D);
}

/**
 * The run context of the i-th of several forwards in one call: its own dropout seed (so rows or
 * groups run separately do not share dropout masks); i = 0 keeps the caller's.
 */
export function rowContext(ctx: RunContext, i: number): RunContext {
  if (i === 0 || ctx.seed === undefined) return ctx;
  return { ...ctx, seed: (ctx.seed + Math.imul(i, 0x9e3779b1)) >>> 0 };
}

/**
 * Runs the text model on embeddings [B, T, d]; returns last-position logits (and extras). Each row
 * attends to its real keys only: a right-padded row to its first len keys (no mask needed), any
 * other mask pattern through a key mask. Pad query rows attend to their row's real keys (as in
 * transformers), so they stay finite; their values are never read.
 */
export function textForward(params: DecoderModelParams, config: DecoderModelConfig, embeds: tf.Tensor3D, options: TextForwardOptions): TextForwardResult {
  const tc = config.text;
  const [B, T, d] = embeds.shape;
  if (d !== tc.hiddenSize) throw new Error(`embeddings have width ${d}; text_config.hidden_size is ${tc.hiddenSize}`);
  const mask = options.attentionMask ?? new Uint8Array(B * T).fill(1);
  if (mask.length !== B * T) throw new Error(`attention mask has ${mask.length} entries for a [${B}, ${T}] batch`);
  const last = options.lastIndex ?? lastRealIndex(mask, B, T);
  if (last.length !== B) throw new Error(`lastIndex has ${last.length} entries for a batch of ${B}`);
  for (const [b, i] of last.entries()) if (!(i >= 0 && i < T)) throw new Error(`lastIndex[${b}] = ${i} is outside [0, ${T})`);
  const wantAtt = options.outputAttentions;
  const attLayers = wantAtt === true ? [...Array(tc.numLayers).keys()] : Array.isArray(wantAtt) ? [...wantAtt] : [];

  // One packed forward per row (on wasm every row slice copies its whole source tensor, so slicing
  // rows out of one [B*T, d] matrix in every layer would cost O(B^2)).
  const positions = Int32Array.from({ length: T }, (_, t) => t);
  const logits: tf.Tensor2D[] = [];
  const hidden: tf.Tensor2D[][] = [];
  const atts: Array<Array<tf.Tensor3D[] | undefined>> = [];
  const keyLens: number[] = [];
  for (let b = 0; b < B; b++) {
    const len = rightPaddedLength(mask, b, T);
    if (len === 0) throw new Error(`sequence ${b} of the batch has no real token (attention mask all zero)`);
    const segment: AttentionSegment =
      len > 0
        ? { query: { start: 0, len: T }, keys: [{ start: 0, len }], causalOffset: 0 }
        : { query: { start: 0, len: T }, keys: [{ start: 0, len: T }], causalOffset: 0, keyValid: Array.from({ length: T }, (_, t) => (mask[b * T + t] ? 1 : 0)) };
    keyLens.push(len > 0 ? len : T);
    const row = tf.tidy(() => tf.reshape(B === 1 ? embeds : tf.slice(embeds, [b, 0, 0], [1, T, d]), [T, d]) as tf.Tensor2D);
    const out = textForwardPacked(params, config, { embeds: row, positions, segments: [segment], readRows: [last[b]] }, { ctx: rowContext(options.ctx, b), outputHiddenStates: options.outputHiddenStates, outputAttentions: attLayers });
    row.dispose();
    logits.push(out.logits);
    if (out.hiddenStates) hidden.push(out.hiddenStates);
    if (out.attentions) atts.push(out.attentions);
  }
  const result: { logits: tf.Tensor2D; hiddenStates?: tf.Tensor3D[]; attentions?: Array<tf.Tensor4D | undefined> } = {
    logits: B === 1 ? logits[0] : (tf.concat(logits, 0) as tf.Tensor2D),
  };
  if (B > 1) tf.dispose(logits);
  if (options.outputHiddenStates) {
    result.hiddenStates = hidden[0].map((_, l) => tf.stack(hidden.map((h) => h[l])) as tf.Tensor3D);
    for (const h of hidden) tf.dispose(h);
  }
  if (attLayers.length > 0) {
    // Per row [H, T, len] -> [B, H, T, T] with zeros for the trimmed pad keys.
    result.attentions = atts[0].map((first, l) => {
      if (!first) return undefined;
      const perRow = atts.map((a) => a[l]![0]);
      const full = tf.tidy(() => tf.stack(perRow.map((p, b) => (keyLens[b] === T ? p : tf.pad(p, [[0, 0], [0, 0], [0, T - keyLens[b]]])))) as tf.Tensor4D);
      tf.dispose(perRow);
      return full;
    });
  }
  return result;
}

/** Input embeddings of a right-padded batch, with their mask and last real index. */
export interface EmbeddedBatch {
  /** [B, P + T, d] */
  readonly embeds: tf.Tensor3D;
  /** [B * (P + T)] */
  readonly attentionMask: Uint8Array;
  readonly lastIndex: number[];
}

/**
 * Input embeddings of right-padded ids [B*T] with the image features placed in order at the image
 * tokens (mergeInputEmbeddings), and optional rows [B, P, d] prepended before the first token of
 * every sequence (preference tokens); the mask and last real index are those of the grown sequences.
 */
export function embedSequences(params: DecoderModelParams, config: DecoderModelConfig, inputIds: ArrayLike<number>, B: number, T: number, imageFeatures: tf.Tensor3D | null, attentionMask?: ArrayLike<number>, prefix?: tf.Tensor3D): EmbeddedBatch {
  const mask = attentionMask ?? new Uint8Array(B * T).fill(1);
  const lastIndex: number[] = [];
  for (let b = 0; b < B; b++) {
    let last = -1;
    for (let t = 0; t < T; t++) if (mask[b * T + t]) last = t;
    if (last < 0) throw new Error(`sequence ${b} of the batch has no real token (attention mask all zero)`);
    lastIndex.push(last);
  }
  const base = mergeInputEmbeddings(params, config, inputIds, B, T, imageFeatures);
  if (!prefix) return { embeds: base, attentionMask: Uint8Array.from(mask, (m) => (m ? 1 : 0)), lastIndex };
  const [pb, P, pd] = prefix.shape;
  if (pb !== B || pd !== config.text.hiddenSize) throw new Error(`prefix has shape [${prefix.shape.join(', ')}]; expected [${B}, length, ${config.text.hiddenSize}]`);
  const embeds = tf.tidy(() => tf.concat([prefix, base], 1) as tf.Tensor3D);
  base.dispose();
  const grown = new Uint8Array(B * (P + T));
  for (let b = 0; b < B; b++) {
    grown.fill(1, b * (P + T), b * (P + T) + P);
    for (let t = 0; t < T; t++) grown[b * (P + T) + P + t] = mask[b * T + t] ? 1 : 0;
  }
  return { embeds, attentionMask: grown, lastIndex: lastIndex.map((i) => i + P) };
}
