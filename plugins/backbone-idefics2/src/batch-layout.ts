/**
 * The IDEFICS2 batch layout: what Idefics2Backbone.prepare builds from a PreferenceBatch.
 *
 * `prepareBatch` (async) tokenises each example, decodes and preprocesses each image and runs the
 * frozen vision tower once per unique image (through the backbone's `vision`, which keeps its
 * output in a byte-budgeted LRU, optionally spilled to disk, keyed by the image's content hash and
 * a fingerprint of the vision weights: @userpref/mllm's vision-cache.ts): SPEC §8's "re-encodes all
 * 17 images twice" becomes "encodes each image once". The prepared batch holds both layouts the
 * forward paths (forward.ts) read: the 2B complete sequences (full path) and the shared-prefix
 * layout (unique reference prefixes and target turns), plus the history weights over each example's
 * reference history that PrefixContext.historyMean averages with.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceBatch, PreferenceImage, PreparedBatch } from '@userpref/core';
import { UniqueImages, fillHistoryWeights, historyLength, historyWeights as newHistoryWeights, padRows, targetImages, type HistoryWeights, type VisionEntry } from '@userpref/mllm';
import type { Idefics2Model } from './model/idefics2';
import type { Idefics2Processor } from './processor';

/**
 * The shared-prefix layout: unique reference prefixes (examples of one user with the same history
 * share one) and the target turn of each example.
 */
export interface SharedLayout {
  /** Unique prefix of each example. */
  readonly prefixOf: Int32Array;
  /** [Up * Pmax] prefix token ids (everything before the target image's <image> run), right padded. */
  readonly prefixIds: Int32Array;
  readonly prefixMask: Uint8Array;
  readonly prefixLen: number;
  readonly prefixLengths: number[];
  /** [Up * Pmax] history weights over the prefix (PrefixContext's mean and liked-minus-disliked direction). */
  readonly historyWeights: HistoryWeights;
  /** Unique-image index of each reference slot, prefix after prefix. */
  readonly refImages: Int32Array;
  /** [B * Smax] target-turn ids (the same for the liked and the disliked sequence), right padded. */
  readonly suffixIds: Int32Array;
  readonly suffixMask: Uint8Array;
  readonly suffixLen: number;
  readonly suffixLengths: number[];
  /** Unique-image index of the liked / disliked candidate of each example. */
  readonly likedTarget: Int32Array;
  readonly dislikedTarget: Int32Array;
}

export class Idefics2PreparedBatch implements PreparedBatch {
  constructor(
    readonly size: number,
    /** [U, Pmax, d_vision] vision outputs of the batch's unique images (owned). */
    readonly context: tf.Tensor3D,
    readonly contextValid: Uint8Array,
    /** [B * T] token ids, right padded (same ids for the liked and disliked sequence). */
    readonly inputIds: Int32Array,
    readonly attentionMask: Uint8Array,
    readonly seqLen: number,
    /** Unique-image index of each image slot of the 2B sequences (liked rows, then disliked rows). */
    readonly slotImages: Int32Array,
    /** Number of slots in the B liked rows. */
    readonly likedSlots: number,
    /** [B * T] history weights (PrefixContext's mean and liked-minus-disliked direction). */
    readonly historyWeights: HistoryWeights,
    readonly shared: SharedLayout,
  ) {}

  dispose(): void {
    this.context.dispose();
  }
}

/** What prepareBatch needs of the backbone. */
export interface BatchLayoutSource {
  /** Whether a prefix provider is set (then every example keeps its own prefix). */
  readonly hasPrefixProvider: boolean;
  /** Vision-tower output of an image (the backbone's cached `vision`). */
  readonly vision: (image: PreferenceImage) => Promise<VisionEntry>;
  /** The loaded model (read after the images are encoded, for vision_config.hidden_size). */
  readonly model: () => Idefics2Model;
}

/** Idefics2Backbone.prepare: the batch's sequences, shared-prefix layout and vision outputs. */
export async function prepareBatch(p: Idefics2Processor, batch: PreferenceBatch, source: BatchLayoutSource): Promise<Idefics2PreparedBatch> {
  const B = batch.length;
  if (B === 0) throw new Error('backbone idefics2: empty batch');
  const encodings = batch.map((ex) => p.encodeExample(ex));
  const collated = p.collate(encodings);
  const T = collated.seqLen;
  const unique = new UniqueImages();
  const indexOf = (img: PreferenceImage) => unique.indexOf(img);
  // Unique-image index of every image slot, in the order the image tokens appear in the 2B
  // sequences (liked rows first, then disliked rows): the order the features are merged in.
  const liked: number[] = [];
  const disliked: number[] = [];
  const likedTarget = new Int32Array(B);
  const dislikedTarget = new Int32Array(B);
  const historyWeights = newHistoryWeights(B, T);
  // Unique prefixes: examples with the same history (ids and reference images) share one, unless
  // a prefix provider is set (its tokens and aux loss are per example).
  const dedupe = !source.hasPrefixProvider;
  const prefixKeys = new Map<string, number>();
  const prefixOf = new Int32Array(B);
  const prefixRows: Int32Array[] = [];
  const prefixHistory: Array<{ len: number; ids: Int32Array; liked: readonly boolean[] }> = [];
  const refImages: number[] = [];
  const suffixRows: Int32Array[] = [];
  batch.forEach((ex, b) => {
    const enc = encodings[b];
    const { liked: likedImage, disliked: dislikedImage } = targetImages(ex.target);
    const refs: number[] = [];
    for (const slot of enc.imageSlots) {
      liked.push(indexOf(slot.image === 'target' ? likedImage : slot.image));
      disliked.push(indexOf(slot.image === 'target' ? dislikedImage : slot.image));
      if (slot.image !== 'target') refs.push(indexOf(slot.image));
    }
    likedTarget[b] = indexOf(likedImage);
    dislikedTarget[b] = indexOf(dislikedImage);
    const targetStart = enc.imageSlots[enc.imageSlots.length - 1].start;
    const len = historyLength(enc.inputIds, targetStart, p.tokens.endOfUtterance);
    const refTokens = enc.referenceLiked.map(() => p.imageSeqLen);
    fillHistoryWeights(historyWeights, b, T, len, enc.inputIds, p.tokens.image, refTokens, enc.referenceLiked);
    // Shared prefix: everything before the target's <image> run (its <fake_token_around_image>
    // included); the target turn is the rest.
    const prefix = enc.inputIds.subarray(0, targetStart);
    const key = dedupe ? `${prefix.join(',')}|${refs.join(',')}` : `#${b}`;
    let u = prefixKeys.get(key);
    if (u === undefined) {
      prefixKeys.set(key, (u = prefixRows.length));
      prefixRows.push(prefix);
      prefixHistory.push({ len, ids: prefix, liked: enc.referenceLiked });
      refImages.push(...refs);
    }
    prefixOf[b] = u;
    suffixRows.push(enc.inputIds.subarray(targetStart));
  });
  const visions: VisionEntry[] = [];
  for (const image of unique.images()) visions.push(await source.vision(image));
  const dv = source.model().config.vision.hiddenSize;
  const pMax = Math.max(...visions.map((v) => v.patches));
  const contextValid = new Uint8Array(visions.length * pMax);
  const contextData = new Float32Array(visions.length * pMax * dv);
  visions.forEach((v, i) => {
    if (v.width !== dv) throw new Error(`vision output width ${v.width} differs from vision_config.hidden_size ${dv}`);
    contextValid.set(v.patchValid, i * pMax);
    contextData.set(v.hidden, i * pMax * dv);
  });
  const context = tf.tensor3d(contextData, [visions.length, pMax, dv]);
  const mask = Uint8Array.from(collated.attentionMask);
  const pre = padRows(prefixRows, p.tokens.pad);
  const suf = padRows(suffixRows, p.tokens.pad);
  const historyPrefix = newHistoryWeights(prefixRows.length, pre.len);
  prefixHistory.forEach(({ len, ids, liked: refLiked }, u) =>
    fillHistoryWeights(historyPrefix, u, pre.len, len, ids, p.tokens.image, refLiked.map(() => p.imageSeqLen), refLiked),
  );
  const shared: SharedLayout = {
    prefixOf,
    prefixIds: pre.ids,
    prefixMask: pre.mask,
    prefixLen: pre.len,
    prefixLengths: prefixRows.map((r) => r.length),
    historyWeights: historyPrefix,
    refImages: Int32Array.from(refImages),
    suffixIds: suf.ids,
    suffixMask: suf.mask,
    suffixLen: suf.len,
    suffixLengths: suffixRows.map((r) => r.length),
    likedTarget,
    dislikedTarget,
  };
  return new Idefics2PreparedBatch(B, context, contextValid, collated.inputIds, mask, T, Int32Array.from([...liked, ...disliked]), liked.length, historyWeights, shared);
}
