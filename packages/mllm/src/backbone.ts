/**
 * The parts of the Backbone contract (packages/core) that a vision-language backbone computes the
 * same way whatever its connector and processor: numbering a batch's unique images, the history
 * weights and preference tokens of SPEC §2 / §4, the packed layout of the shared-prefix path (each
 * reference prefix once, then the liked and disliked target turns on its keys), the readout of a
 * history session's candidates, the fingerprinted tensors of the vision tower and the adapter's
 * files. The IDEFICS2 and Idefics3 backbones are built from these.
 */
import * as tf from '@tensorflow/tfjs-core';
import { requirePath, type CandidateReadout, type HistorySession, type Logger, type PreferenceImage, type PrefixProvider, type ReadoutTokens } from '@userpref/core';
import { LoraAdapter, type LoraTarget } from './adapter';
import type { AttentionSegment } from './attention';
import type { DecoderModelConfig } from './config';
import { runPrefix, type PrefixKv } from './prefix-kv';
import type { DecoderModelParams } from './weights';
import type { VisionEntry } from './vision-cache';
import type { VisionTowerParams } from './weights';

/**
 * Length of the reference history of an encoded example: the tokens up to and including the last
 * <end_of_utterance> before the target image (what PrefixContext.historyMean averages).
 */
export function historyLength(inputIds: ArrayLike<number>, targetStart: number, endOfUtterance: number): number {
  for (let t = targetStart - 1; t >= 0; t--) if (inputIds[t] === endOfUtterance) return t + 1;
  return Math.max(1, targetStart - 1);
}

/** Numbers the distinct images of a batch (by content hash) in the order they are first seen. */
export class UniqueImages {
  private readonly byId = new Map<string, { index: number; image: PreferenceImage }>();

  indexOf(image: PreferenceImage): number {
    let u = this.byId.get(image.id);
    if (!u) this.byId.set(image.id, (u = { index: this.byId.size, image }));
    return u.index;
  }

  /** The images, by index. */
  images(): PreferenceImage[] {
    return [...this.byId.values()].map((u) => u.image);
  }
}

/** The liked and the disliked candidate of an example's target. */
export function targetImages(target: { label0: number; image0: PreferenceImage; image1: PreferenceImage }): { liked: PreferenceImage; disliked: PreferenceImage } {
  return target.label0 >= 0.5 ? { liked: target.image0, disliked: target.image1 } : { liked: target.image1, disliked: target.image0 };
}

/** Rows `indices` of t [n, ...] (slices of consecutive runs; a gather only for scattered indices). */
export function takeRows<T extends tf.Tensor>(t: T, indices: ArrayLike<number>): T {
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < indices.length; ) {
    let j = i + 1;
    while (j < indices.length && indices[j] === indices[i] + (j - i)) j++;
    runs.push([indices[i], j - i]);
    i = j;
  }
  if (runs.length === 1 && runs[0][0] === 0 && runs[0][1] === t.shape[0]) return t;
  if (runs.length > 8) return tf.gather(t, tf.tensor1d(Array.from(indices), 'int32')) as T;
  const rest = t.shape.slice(1).map(() => -1);
  const parts = runs.map(([start, len]) => tf.slice(t, [start, ...rest.map(() => 0)], [len, ...rest]));
  return (parts.length === 1 ? parts[0] : tf.concat(parts, 0)) as T;
}

/** Right-pads rows of ids into [rows * len] with `pad`, plus the 0/1 mask. */
export function padRows(rows: readonly Int32Array[], pad: number): { ids: Int32Array; mask: Uint8Array; len: number } {
  const len = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * len).fill(pad);
  const mask = new Uint8Array(rows.length * len);
  rows.forEach((r, b) => {
    ids.set(r, b * len);
    mask.fill(1, b * len, b * len + r.length);
  });
  return { ids, mask, len };
}

/**
 * Weights over rows of T input embeddings from which the prefix provider's context
 * (PrefixContext) is computed: one weighted sum per row and weight vector.
 */
export interface HistoryWeights {
  /** [rows * T] 1/len on each row's reference history: PrefixContext.historyMean. */
  readonly mean: Float32Array;
  /**
   * [rows * T] +1/n on each of the n `<image>` tokens of the row's liked reference images, -1/m on
   * each of the m of its disliked ones: PrefixContext.preferenceDirection.
   */
  readonly direction: Float32Array;
}

export function historyWeights(rows: number, T: number): HistoryWeights {
  return { mean: new Float32Array(rows * T), direction: new Float32Array(rows * T) };
}

/**
 * Fills row `row` of `w` (rows of T) for one encoded example: 1/historyLen on its first
 * `historyLen` tokens, and the liked-minus-disliked weights on its reference images' `<image>`
 * tokens. Reference image i (sequence order) owns the next `imageTokens[i]` `<image>` tokens of
 * `inputIds` (the tokens between them, e.g. tile markers, are not counted); `liked[i]` says
 * whether it is the liked image of its pair. A history with no liked or no disliked image (no
 * references) has direction 0.
 */
export function fillHistoryWeights(
  w: HistoryWeights,
  row: number,
  T: number,
  historyLen: number,
  inputIds: ArrayLike<number>,
  imageToken: number,
  imageTokens: readonly number[],
  liked: readonly boolean[],
): void {
  if (imageTokens.length !== liked.length) throw new Error(`history weights: ${imageTokens.length} reference images but ${liked.length} liked flags`);
  if (historyLen > T || historyLen > inputIds.length) throw new Error(`history weights: history of ${historyLen} tokens in rows of ${T} (${inputIds.length} ids)`);
  w.mean.fill(1 / historyLen, row * T, row * T + historyLen);
  let likedTokens = 0;
  let dislikedTokens = 0;
  imageTokens.forEach((n, i) => (liked[i] ? (likedTokens += n) : (dislikedTokens += n)));
  const expected = likedTokens + dislikedTokens;
  let image = 0;
  let used = 0;
  let seen = 0;
  for (let t = 0; t < historyLen; t++) {
    if (inputIds[t] !== imageToken) continue;
    while (image < imageTokens.length && used === imageTokens[image]) {
      image++;
      used = 0;
    }
    if (image >= imageTokens.length) throw new Error(`history weights: more than ${expected} <image> tokens in the reference history`);
    w.direction[row * T + t] = liked[image] ? 1 / likedTokens : -1 / dislikedTokens;
    used++;
    seen++;
  }
  if (seen !== expected) throw new Error(`history weights: ${seen} <image> tokens in the reference history; its ${imageTokens.length} images need ${expected}`);
  if (likedTokens === 0 || dislikedTokens === 0) w.direction.fill(0, row * T, row * T + historyLen);
}

/** Rows of possibly different lengths, each right-padded with zero weight to T. */
export function stackHistoryWeights(rows: readonly HistoryWeights[], T: number): HistoryWeights {
  const out = historyWeights(rows.length, T);
  rows.forEach((r, b) => {
    if (r.mean.length > T) throw new Error(`history weights: a row of ${r.mean.length} does not fit rows of ${T}`);
    out.mean.set(r.mean, b * T);
    out.direction.set(r.direction, b * T);
  });
  return out;
}

/**
 * The prefix provider's embeddings [B, P, d] for the context of `embeds` [B, T, d] under
 * `weights` (rows of T; see HistoryWeights), shape checked; `training` is passed on
 * (PrefixContext.training).
 */
export function prefixTokens(provider: PrefixProvider, weights: HistoryWeights, embeds: tf.Tensor3D, B: number, training = false): { embeddings: tf.Tensor3D; auxLoss?: tf.Scalar } {
  const [, T, d] = embeds.shape;
  if (weights.mean.length !== B * T || weights.direction.length !== B * T) throw new Error(`history weights of ${weights.mean.length} / ${weights.direction.length} for [${B}, ${T}] embeddings`);
  const both = new Float32Array(B * 2 * T);
  for (let b = 0; b < B; b++) {
    both.set(weights.mean.subarray(b * T, (b + 1) * T), 2 * b * T);
    both.set(weights.direction.subarray(b * T, (b + 1) * T), (2 * b + 1) * T);
  }
  const sums = tf.matMul(tf.tensor3d(both, [B, 2, T]), embeds); // [B, 2, d]
  const historyMean = tf.reshape(tf.slice(sums, [0, 0, 0], [B, 1, d]), [B, d]) as tf.Tensor2D;
  const preferenceDirection = tf.reshape(tf.slice(sums, [0, 1, 0], [B, 1, d]), [B, d]) as tf.Tensor2D;
  const out = provider.prefix({ historyMean, preferenceDirection, training });
  if (out.embeddings.shape[0] !== B || out.embeddings.shape[2] !== d) throw new Error(`prefix provider returned [${out.embeddings.shape.join(', ')}]; expected [${B}, length, ${d}]`);
  return out;
}

/** Where a target turn's logits are: its packed group and its row among the group's read rows. */
export type ReadAt = Array<{ liked: [number, number]; disliked: [number, number] }>;

/**
 * The packed rows of one shared-prefix forward: the prefix's `prefixLen` rows (positions 0..,
 * causal), then each target turn of `turnLengths` (positions continuing after the prefix, keys =
 * the prefix's and its own, causal), read at its last row.
 */
export function prefixTurnsLayout(prefixLen: number, turnLengths: readonly number[]): { positions: number[]; segments: AttentionSegment[]; readRows: number[] } {
  const len = prefixLen;
  const positions: number[] = Array.from({ length: len }, (_, t) => t);
  const segments: AttentionSegment[] = [{ query: { start: 0, len }, keys: [{ start: 0, len }], causalOffset: 0 }];
  const readRows: number[] = [];
  let row = len;
  for (const sl of turnLengths) {
    for (let t = 0; t < sl; t++) positions.push(len + t);
    segments.push({ query: { start: row, len: sl }, keys: [{ start: 0, len }, { start: row, len: sl }], causalOffset: len });
    readRows.push(row + sl - 1);
    row += sl;
  }
  return { positions, segments, readRows };
}

/** The liked (or disliked) logits [B, vocab] of a batch, picked from its groups' read rows. */
export function pickTurnLogits(groupLogits: readonly tf.Tensor2D[], readAt: ReadAt, which: 'liked' | 'disliked'): tf.Tensor2D {
  if (groupLogits.length === 1 && readAt.length === 1) return tf.slice(groupLogits[0], [readAt[0][which][1], 0], [1, -1]) as tf.Tensor2D;
  return tf.concat(readAt.map((r) => tf.slice(groupLogits[r[which][0]], [r[which][1], 0], [1, -1])), 0) as tf.Tensor2D;
}

/** Backbone.pairLogits' result, as a type tf.tidy can return (core's PairLogits is an interface). */
export type PairLogitsResult = { liked: tf.Tensor2D; disliked: tf.Tensor2D; auxLosses?: Array<{ name: string; value: tf.Scalar }> };

/** The pair's logits, with the preference tokens' auxiliary loss when there is one. */
export function pairLogits(liked: tf.Tensor2D, disliked: tf.Tensor2D, auxLoss?: tf.Scalar): PairLogitsResult {
  return auxLoss ? { liked, disliked, auxLosses: [{ name: 'prefix', value: auxLoss }] } : { liked, disliked };
}

/** The liked and disliked logits of a shared-prefix batch, picked from its groups' read rows. */
export function sharedPairLogits(groupLogits: readonly tf.Tensor2D[], readAt: ReadAt, auxLoss?: tf.Scalar): PairLogitsResult {
  return pairLogits(pickTurnLogits(groupLogits, readAt, 'liked'), pickTurnLogits(groupLogits, readAt, 'disliked'), auxLoss);
}

/** The key-value state of a history's prefix rows `embeds` [n, d], which are disposed here. */
export function historyState(params: DecoderModelParams, config: DecoderModelConfig, embeds: tf.Tensor2D): PrefixKv {
  try {
    return runPrefix(params, config, embeds);
  } finally {
    embeds.dispose();
  }
}

/** The readout logits ("+", "-") of `logits` [n, vocab], read to the host. */
export async function readCandidates(logits: () => tf.Tensor2D, readout: ReadoutTokens): Promise<CandidateReadout[]> {
  const z = tf.tidy(() => tf.gather(logits(), tf.tensor1d([readout.positive, readout.negative], 'int32'), 1));
  const v = await z.data();
  const n = z.shape[0];
  z.dispose();
  const out: CandidateReadout[] = [];
  for (let i = 0; i < n; i++) out.push({ positive: v[2 * i], negative: v[2 * i + 1] });
  return out;
}

/**
 * A history session on the key-value state `kv`: each `score` call gets its candidates' scorer
 * from `forPrompt` (once per prompt) and runs it on chunks of `chunkSize` candidates on that state,
 * until the session is disposed.
 */
export function historySession(
  kv: PrefixKv,
  chunkSize: number,
  who: string,
  forPrompt: (prompt: string) => (state: PrefixKv, chunk: readonly PreferenceImage[]) => Promise<CandidateReadout[]>,
): HistorySession {
  let state: PrefixKv | null = kv;
  return {
    score: async (prompt, candidates) => {
      const scoreChunk = forPrompt(prompt);
      const out: CandidateReadout[] = [];
      for (let c0 = 0; c0 < candidates.length; c0 += chunkSize) {
        if (!state) throw new Error(`backbone ${who}: this history session is disposed`);
        out.push(...(await scoreChunk(state, candidates.slice(c0, c0 + chunkSize))));
      }
      return out;
    },
    dispose: () => {
      state?.dispose();
      state = null;
    },
  };
}

/** Mean of an image's vision output over its real patches, accumulated in float64. */
export function meanOverPatches(v: VisionEntry, dv: number, out: Float32Array, offset: number): void {
  const acc = new Float64Array(dv);
  let n = 0;
  for (let p = 0; p < v.patches; p++) {
    if (!v.patchValid[p]) continue;
    n++;
    for (let j = 0; j < dv; j++) acc[j] += v.hidden[p * dv + j];
  }
  for (let j = 0; j < dv; j++) out[offset + j] = acc[j] / n;
}

/** The tensors the vision tower's output depends on (weights and any LoRA on its modules), named. */
export function visionTowerTensors(v: VisionTowerParams): Array<[string, tf.Tensor]> {
  const out: Array<[string, tf.Tensor]> = [
    ['patch_w', v.patchW],
    ['patch_b', v.patchB],
    ['pos_emb', v.posEmb],
  ];
  const norm = (name: string, n: { w: tf.Tensor; b?: tf.Tensor }) => {
    out.push([`${name}.w`, n.w]);
    if (n.b) out.push([`${name}.b`, n.b]);
  };
  v.layers.forEach((l, i) => {
    norm(`${i}.ln1`, l.ln1);
    norm(`${i}.ln2`, l.ln2);
    for (const [name, lin] of [['qkv', l.qkv], ['out', l.out], ['fc1', l.fc1], ['fc2', l.fc2]] as const) {
      lin.weightTensors().forEach((t, k) => out.push([`${i}.${name}.w${k || ''}`, t]));
      if (lin.b) out.push([`${i}.${name}.b`, lin.b]);
      for (const p of lin.parts) {
        if (p.lora) out.push([`${p.name}.lora_a`, p.lora.a], [`${p.name}.lora_b`, p.lora.b]);
      }
    }
  });
  norm('post', v.post);
  return out;
}

/** Saves a backbone's attached adapter as a PEFT directory (`base` = the checkpoint it adapts). */
export async function saveAttachedAdapter(adapter: LoraAdapter | null, dir: string, base: string, who: string): Promise<void> {
  if (!adapter || adapter.modules.length === 0) throw new Error(`backbone ${who}: no LoRA adapter to save (merged or not initialised)`);
  await adapter.save(dir, base);
}

/** Replaces `current` (detached) by the PEFT adapter in `dir`, attached to `target`. */
export async function loadAttachedAdapter(target: LoraTarget, current: LoraAdapter | null, dir: string, logger?: Logger): Promise<LoraAdapter> {
  await requirePath('adapter', dir, 'adapter_config.json');
  current?.detach();
  const adapter = await LoraAdapter.load(target, dir);
  logger?.info('LoRA adapter loaded', { dir, modules: adapter.modules.length, r: adapter.settings.r });
  return adapter;
}
