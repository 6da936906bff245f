/**
 * The Idefics3 batch layout: what Idefics3Backbone.prepare builds from a PreferenceBatch.
 *
 * `prepareBatch` (async) encodes each example's two sequences (the target turn's tokens depend on
 * the candidate's tile layout, rows x cols, so the liked and the disliked sequence may differ in
 * length after the shared prefix), groups examples with the same reference prefix (unless a prefix
 * provider is set), and runs the frozen vision tower once per unique image (all its tiles) through
 * the backbone's byte-budgeted, optionally on-disk VisionCache keyed by content hash and a
 * fingerprint of the vision weights. The forward paths (forward.ts) read the prepared batch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceBatch, PreferenceImage, PreparedBatch } from '@userpref/core';
import { UniqueImages, fillHistoryWeights, historyLength, historyWeights, targetImages, type HistoryWeights } from '@userpref/mllm';
import type { Idefics3Processor, TileLayout } from './processor/processor';

/** One encoded sequence pair of an example. */
export interface ExampleRows {
  /** Tokens before the target image's expansion (shared by both sequences). */
  readonly prefix: Int32Array;
  readonly likedSuffix: Int32Array;
  readonly dislikedSuffix: Int32Array;
  /** Unique-image indices of the reference images, in sequence order. */
  readonly refs: number[];
  readonly liked: number;
  readonly disliked: number;
  /** Weights over `prefix` from which PrefixContext is computed (history mean, liked-minus-disliked direction). */
  readonly history: HistoryWeights;
}

export class Idefics3PreparedBatch implements PreparedBatch {
  constructor(
    readonly size: number,
    /** [tiles of all unique images, patches, d_vision] (owned). */
    readonly context: tf.Tensor3D,
    /** First tile and tile count of each unique image in `context`. */
    readonly tileRanges: ReadonlyArray<readonly [number, number]>,
    readonly rows: readonly ExampleRows[],
    /** Unique prefix of each example (examples with the same history share one unless a prefix provider is set). */
    readonly prefixOf: Int32Array,
    readonly prefixCount: number,
  ) {}

  dispose(): void {
    this.context.dispose();
  }
}

/** Tile indices of `images` (unique-image indices) in order. */
export function tileIndices(ranges: ReadonlyArray<readonly [number, number]>, images: readonly number[]): number[] {
  const out: number[] = [];
  for (const i of images) for (let t = 0; t < ranges[i][1]; t++) out.push(ranges[i][0] + t);
  return out;
}

const sameLayout = (a: TileLayout, b: TileLayout) => a.rows === b.rows && a.cols === b.cols;

/** Encodes an example's two sequences; `layouts` are the references' then the candidates'. */
function encodePair(
  p: Idefics3Processor,
  chat: ReturnType<Idefics3Processor['messages']>,
  refLayouts: TileLayout[],
  liked: TileLayout,
  disliked: TileLayout,
): { prefix: Int32Array; likedSuffix: Int32Array; dislikedSuffix: Int32Array; history: HistoryWeights } {
  const a = p.encode(chat.messages, [...refLayouts, liked]);
  const prefix = a.inputIds.slice(0, a.targetStart);
  const likedSuffix = a.inputIds.slice(a.targetStart);
  let dislikedSuffix = likedSuffix;
  if (!sameLayout(liked, disliked)) {
    const b = p.encode(chat.messages, [...refLayouts, disliked]);
    if (b.targetStart !== a.targetStart || b.inputIds.subarray(0, b.targetStart).some((id, i) => id !== prefix[i])) throw new Error('backbone idefics3: the two candidates change the tokens before the target image');
    dislikedSuffix = b.inputIds.slice(b.targetStart);
  }
  return { prefix, likedSuffix, dislikedSuffix, history: prefixHistoryWeights(p, prefix, a.targetStart, refLayouts, chat.liked) };
}

/** The history weights of one reference prefix (ids up to the target image) as one row. */
export function prefixHistoryWeights(p: Idefics3Processor, prefix: Int32Array, targetStart: number, refLayouts: readonly TileLayout[], liked: readonly boolean[]): HistoryWeights {
  const w = historyWeights(1, prefix.length);
  const len = historyLength(prefix, targetStart, p.tokens.endOfUtterance);
  fillHistoryWeights(w, 0, prefix.length, len, prefix, p.tokens.image, refLayouts.map((l) => p.imageTokenCount(l)), liked);
  return w;
}

/** What prepareBatch needs of the backbone. */
export interface BatchLayoutSource {
  /** Whether a prefix provider is set (then every example keeps its own prefix). */
  readonly hasPrefixProvider: boolean;
  /** The loaded processor. */
  readonly processor: () => Idefics3Processor;
  /** Tile layout of an image (the backbone's remembered `layout`). */
  readonly layout: (image: PreferenceImage) => Promise<TileLayout>;
  /** [tiles, patches, d_vision] of unique images and each image's tile range (the backbone's cached `visionContext`). */
  readonly visionContext: (images: readonly PreferenceImage[]) => Promise<{ context: tf.Tensor3D; ranges: Array<[number, number]> }>;
}

/** Idefics3Backbone.prepare: each example's sequence pair, its unique prefix and the batch's tiles. */
export async function prepareBatch(batch: PreferenceBatch, source: BatchLayoutSource): Promise<Idefics3PreparedBatch> {
  const B = batch.length;
  if (B === 0) throw new Error('backbone idefics3: empty batch');
  const unique = new UniqueImages();
  const indexOf = (img: PreferenceImage) => unique.indexOf(img);
  const rows: ExampleRows[] = [];
  const prefixKeys = new Map<string, number>();
  const prefixOf = new Int32Array(B);
  const dedupe = !source.hasPrefixProvider;
  for (const [b, ex] of batch.entries()) {
    const chat = source.processor().messages(ex);
    const references = chat.references;
    const refLayouts: TileLayout[] = [];
    for (const im of references) refLayouts.push(await source.layout(im));
    const { liked: likedImage, disliked: dislikedImage } = targetImages(ex.target);
    const enc = encodePair(source.processor(), chat, refLayouts, await source.layout(likedImage), await source.layout(dislikedImage));
    const refs = references.map(indexOf);
    rows.push({ ...enc, refs, liked: indexOf(likedImage), disliked: indexOf(dislikedImage) });
    const key = dedupe ? `${enc.prefix.join(',')}|${refs.join(',')}` : `#${b}`;
    let u = prefixKeys.get(key);
    if (u === undefined) prefixKeys.set(key, (u = prefixKeys.size));
    prefixOf[b] = u;
  }
  const { context, ranges } = await source.visionContext(unique.images());
  return new Idefics3PreparedBatch(B, context, ranges, rows, prefixOf, prefixKeys.size);
}
