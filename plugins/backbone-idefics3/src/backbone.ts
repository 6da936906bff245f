/**
 * The Backbone contract (packages/core) on the tfjs Idefics3 / SmolVLM: the processor builds the
 * SPEC §2 sequence with each image as its tiles plus a global image, the model scores it, LoRA
 * (@userpref/mllm's PEFT adapter) adapts the connector and the text model.
 *
 * As in the IDEFICS2 backbone (the shared steps are @userpref/mllm's):
 * - `prepare` runs the frozen vision tower once per unique image (all its tiles), through the
 *   byte-budgeted, optionally on-disk VisionCache keyed by content hash and a fingerprint of the
 *   vision weights;
 * - `pairLogits` runs the LoRA-adapted connector on the batch's tiles, then the text model; with
 *   the shared prefix (default) the reference history of an example runs once and the liked and
 *   disliked target turns run on its keys (packed rows, per-segment attention); `sharedPrefix:
 *   false` runs two complete sequences and gives the same logits;
 * - preference tokens go before the first token of both sequences; PrefixContext.historyMean is
 *   the mean input embedding of the reference history (up to the last <end_of_utterance> before
 *   the target image);
 * - `openHistory` keeps the history's key-value state and scores candidates on it.
 *
 * What differs: the target turn's tokens depend on the candidate's tile layout (rows x cols), so
 * the liked and the disliked sequence may differ in length after the shared prefix, and each
 * candidate of a history session has its own target turn.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { requirePath, type Backbone, type ForwardOptions, type HistorySession, type Logger, type PairLogits, type PreferenceBatch, type PreferenceHistory, type PreferenceImage, type PreparedBatch, type RunContext } from '@userpref/core';
import {
  EVAL,
  UniqueImages,
  VisionLanguageBackbone,
  historyLength,
  historySession,
  historyState,
  pairLogits,
  sharedPairLogits,
  prefixTurnsLayout,
  readCandidates,
  rowContext,
  runAfterPrefix,
  takeRows,
  targetImages,
  textForwardPacked,
  type PrefixKv,
  type ReadAt,
  type RunContext as ForwardContext,
  type VisionEntry,
} from '@userpref/mllm';
import { Idefics3Model } from './model/idefics3';
import { DEFAULT_IDEFICS3_OPTIONS, IDEFICS3_TARGET_MODULES, type Idefics3BackboneOptions } from './options';
import { processIdefics3Image, tileLayout } from './processor/image';
import { Idefics3Processor, type TileLayout } from './processor/processor';

export { DEFAULT_IDEFICS3_OPTIONS, IDEFICS3_TARGET_MODULES };
export type { Idefics3BackboneOptions };

/** Candidates scored per forward in a history session. */
const HISTORY_CHUNK = 8;

/** One encoded sequence pair of an example. */
interface ExampleRows {
  /** Tokens before the target image's expansion (shared by both sequences). */
  readonly prefix: Int32Array;
  readonly likedSuffix: Int32Array;
  readonly dislikedSuffix: Int32Array;
  /** Unique-image indices of the reference images, in sequence order. */
  readonly refs: number[];
  readonly liked: number;
  readonly disliked: number;
  /** Length of the reference history (what historyMean averages). */
  readonly history: number;
}

class Idefics3PreparedBatch implements PreparedBatch {
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
function tileIndices(ranges: ReadonlyArray<readonly [number, number]>, images: readonly number[]): number[] {
  const out: number[] = [];
  for (const i of images) for (let t = 0; t < ranges[i][1]; t++) out.push(ranges[i][0] + t);
  return out;
}

const sameLayout = (a: TileLayout, b: TileLayout) => a.rows === b.rows && a.cols === b.cols;
const concatIds = (a: Int32Array, b: Int32Array) => {
  const out = new Int32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
};

export class Idefics3Backbone extends VisionLanguageBackbone<Idefics3Model, Idefics3Processor> implements Backbone {
  private readonly layouts = new Map<string, TileLayout>();

  readonly options: Idefics3BackboneOptions;

  /** Options as the plugin's schema fills them; omitted ones take DEFAULT_IDEFICS3_OPTIONS. */
  constructor(options: Partial<Idefics3BackboneOptions> & { path: string }, run: RunContext, logger?: Logger) {
    super('idefics3', run, logger);
    this.options = { ...DEFAULT_IDEFICS3_OPTIONS, ...options, lora: { ...DEFAULT_IDEFICS3_OPTIONS.lora, ...options.lora } };
  }

  get checkpointDir(): string {
    return path.resolve(this.run.baseDir, this.options.path);
  }

  async init(): Promise<void> {
    const dir = this.checkpointDir;
    await requirePath('checkpoint', dir, 'config.json');
    const started = Date.now();
    this.model = await Idefics3Model.load(dir);
    const c = this.model.config;
    this.processor = await Idefics3Processor.fromPretrained(
      dir,
      { usePrompt: this.options.usePrompt, maxPromptLen: this.options.maxPromptLen, imageSplitting: this.options.imageSplitting ?? null },
      { imageSeqLen: c.imageSeqLen, tileSize: c.vision.imageSize, imageTokenId: c.imageTokenId },
    );
    if (this.model.loadReport.unused.length > 0) this.logger?.warn(`${this.model.loadReport.unused.length} checkpoint tensors are not used by the model`, { examples: this.model.loadReport.unused.slice(0, 5) });
    const adapter = await this.attachCacheAndAdapter({
      maxBytes: this.options.imageCacheBytes,
      cacheDir: this.options.imageCacheDir ? path.resolve(this.run.baseDir, this.options.imageCacheDir) : null,
      context: { arch: 'idefics3', vision: c.vision, image: this.processor.imageConfig },
      lora: { ...this.options.lora },
      adapterPath: this.options.adapterPath ? path.resolve(this.run.baseDir, this.options.adapterPath) : null,
      mergeAdapter: this.options.mergeAdapter === true,
    });
    this.logger?.info('idefics3 backbone ready', {
      dir,
      seconds: (Date.now() - started) / 1000,
      modelType: c.modelType,
      textHidden: c.text.hiddenSize,
      layers: c.text.numLayers,
      imageSeqLen: c.imageSeqLen,
      imageSplitting: this.processor.imageConfig.doImageSplitting,
      loraModules: adapter.modules.length,
      loraParameters: adapter.numParameters(),
    });
  }

  get idefics3(): Idefics3Model {
    return this.m;
  }

  /** Tile layout of an image (from its size; remembered by content hash). */
  private async layout(image: PreferenceImage): Promise<TileLayout> {
    let l = this.layouts.get(image.id);
    if (!l) {
      const rgb = await image.decode();
      l = tileLayout(rgb.height, rgb.width, this.p.imageConfig);
      this.layouts.set(image.id, l);
    }
    return l;
  }

  /** Vision-tower output of all tiles of an image ([tiles * patches, d] in `hidden`). */
  protected async vision(image: PreferenceImage): Promise<VisionEntry> {
    const cache = this.visionCache;
    const hit = await cache.get(image.id);
    if (hit) return hit;
    const rgb = await image.decode();
    const px = processIdefics3Image(rgb, this.p.imageConfig);
    this.layouts.set(image.id, { rows: px.rows, cols: px.cols });
    // One tile at a time: the tower keeps every layer's attention maps until it returns
    // (heads x patches^2 floats a layer, 50 MB for a SmolVLM 512 tile), so a 17-tile image at once
    // would hold 17 times that.
    const plane = 3 * px.size * px.size;
    const c = this.m.config.vision;
    const P = c.numPatchesPerSide * c.numPatchesPerSide;
    const hidden = new Float32Array(px.tiles * P * c.hiddenSize);
    for (let t = 0; t < px.tiles; t++) {
      const pixels = tf.tensor4d(px.pixelValues.subarray(t * plane, (t + 1) * plane), [1, 3, px.size, px.size]);
      const out = this.m.visionTower(pixels);
      pixels.dispose();
      if (out.shape[1] !== P) throw new Error(`a ${px.size}-pixel tile gives ${out.shape[1]} patches; vision_config implies ${P}`);
      hidden.set(out.dataSync(), t * P * c.hiddenSize);
      out.dispose();
    }
    const entry: VisionEntry = { hidden, patches: px.tiles * P, width: c.hiddenSize, patchValid: new Uint8Array(px.tiles * P).fill(1) };
    await cache.put(image.id, entry);
    return entry;
  }

  /** [tiles, patches, d_vision] of `images` (unique, in order) and each image's tile range. */
  private async visionContext(images: readonly PreferenceImage[]): Promise<{ context: tf.Tensor3D; ranges: Array<[number, number]> }> {
    const c = this.m.config.vision;
    const P = c.numPatchesPerSide * c.numPatchesPerSide;
    const entries: VisionEntry[] = [];
    for (const im of images) entries.push(await this.vision(im));
    const total = entries.reduce((s, e) => s + e.patches, 0);
    const data = new Float32Array(total * c.hiddenSize);
    const ranges: Array<[number, number]> = [];
    let row = 0;
    for (const e of entries) {
      if (e.width !== c.hiddenSize || e.patches % P !== 0) throw new Error(`vision output of ${e.patches} x ${e.width} does not fit tiles of ${P} patches x ${c.hiddenSize}`);
      data.set(e.hidden, row * c.hiddenSize);
      ranges.push([row / P, e.patches / P]);
      row += e.patches;
    }
    return { context: tf.tensor3d(data, [total / P, P, c.hiddenSize]), ranges };
  }

  /** Encodes an example's two sequences; `layouts` are the references' then the candidates'. */
  private encodePair(chat: ReturnType<Idefics3Processor['messages']>['messages'], refLayouts: TileLayout[], liked: TileLayout, disliked: TileLayout): { prefix: Int32Array; likedSuffix: Int32Array; dislikedSuffix: Int32Array; history: number } {
    const p = this.p;
    const a = p.encode(chat, [...refLayouts, liked]);
    const prefix = a.inputIds.slice(0, a.targetStart);
    const likedSuffix = a.inputIds.slice(a.targetStart);
    let dislikedSuffix = likedSuffix;
    if (!sameLayout(liked, disliked)) {
      const b = p.encode(chat, [...refLayouts, disliked]);
      if (b.targetStart !== a.targetStart || b.inputIds.subarray(0, b.targetStart).some((id, i) => id !== prefix[i])) throw new Error('backbone idefics3: the two candidates change the tokens before the target image');
      dislikedSuffix = b.inputIds.slice(b.targetStart);
    }
    return { prefix, likedSuffix, dislikedSuffix, history: historyLength(a.inputIds, a.targetStart, p.tokens.endOfUtterance) };
  }

  async prepare(batch: PreferenceBatch): Promise<PreparedBatch> {
    const B = batch.length;
    if (B === 0) throw new Error('backbone idefics3: empty batch');
    const unique = new UniqueImages();
    const indexOf = (img: PreferenceImage) => unique.indexOf(img);
    const rows: ExampleRows[] = [];
    const prefixKeys = new Map<string, number>();
    const prefixOf = new Int32Array(B);
    const dedupe = this.prefix === null;
    for (const [b, ex] of batch.entries()) {
      const { messages, references } = this.p.messages(ex);
      const refLayouts: TileLayout[] = [];
      for (const im of references) refLayouts.push(await this.layout(im));
      const { liked: likedImage, disliked: dislikedImage } = targetImages(ex.target);
      const enc = this.encodePair(messages, refLayouts, await this.layout(likedImage), await this.layout(dislikedImage));
      const refs = references.map(indexOf);
      rows.push({ ...enc, refs, liked: indexOf(likedImage), disliked: indexOf(dislikedImage) });
      const key = dedupe ? `${enc.prefix.join(',')}|${refs.join(',')}` : `#${b}`;
      let u = prefixKeys.get(key);
      if (u === undefined) prefixKeys.set(key, (u = prefixKeys.size));
      prefixOf[b] = u;
    }
    const { context, ranges } = await this.visionContext(unique.images());
    return new Idefics3PreparedBatch(B, context, ranges, rows, prefixOf, prefixKeys.size);
  }

  pairLogits(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    if (!(prepared instanceof Idefics3PreparedBatch)) throw new Error("backbone idefics3: pairLogits needs a batch from this backbone's prepare()");
    return this.options.sharedPrefix === false ? this.fullPath(prepared, options) : this.sharedPath(prepared, options);
  }

  /** Two complete sequences per example (the reference path for the shared prefix). */
  pairLogitsFull(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    if (!(prepared instanceof Idefics3PreparedBatch)) throw new Error("backbone idefics3: pairLogitsFull needs a batch from this backbone's prepare()");
    return this.fullPath(prepared, options);
  }

  private fullPath(prepared: Idefics3PreparedBatch, options: ForwardOptions): PairLogits {
    const m = this.m;
    const B = prepared.size;
    const ctx: ForwardContext = { training: options.training, seed: options.seed };
    const pad = this.p.tokens.pad;
    return tf.tidy(() => {
      const feats = m.connector(prepared.context, ctx);
      const seqs = [...prepared.rows.map((r) => concatIds(r.prefix, r.likedSuffix)), ...prepared.rows.map((r) => concatIds(r.prefix, r.dislikedSuffix))];
      const images = [...prepared.rows.map((r) => [...r.refs, r.liked]), ...prepared.rows.map((r) => [...r.refs, r.disliked])];
      const T = Math.max(...seqs.map((s) => s.length));
      const ids = new Int32Array(2 * B * T).fill(pad);
      const mask = new Uint8Array(2 * B * T);
      seqs.forEach((s, i) => {
        ids.set(s, i * T);
        mask.fill(1, i * T, i * T + s.length);
      });
      const perSeq = takeRows(feats, tileIndices(prepared.tileRanges, images.flat()));
      let prefix: tf.Tensor3D | undefined;
      let auxLoss: tf.Scalar | undefined;
      if (this.prefix) {
        const likedTiles = tileIndices(prepared.tileRanges, images.slice(0, B).flat()).length;
        const base = m.embed(ids.subarray(0, B * T), B, T, tf.slice(perSeq, [0, 0, 0], [likedTiles, -1, -1]), mask.subarray(0, B * T));
        const weights = new Float32Array(B * T);
        prepared.rows.forEach((r, b) => weights.fill(1 / r.history, b * T, b * T + r.history));
        const out = this.prefixTokens(weights, base.embeds, B);
        prefix = tf.concat([out.embeddings, out.embeddings], 0) as tf.Tensor3D;
        auxLoss = out.auxLoss;
      }
      const emb = m.embed(ids, 2 * B, T, perSeq, mask, prefix);
      const { logits } = m.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx });
      const [liked, disliked] = tf.split(logits, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
      return pairLogits(liked, disliked, auxLoss);
    });
  }

  /** Each unique reference prefix once, then the liked and disliked target turns of its examples on its keys. */
  private sharedPath(prepared: Idefics3PreparedBatch, options: ForwardOptions): PairLogits {
    const m = this.m;
    const B = prepared.size;
    const d = m.config.text.hiddenSize;
    const ctx: ForwardContext = { training: options.training, seed: options.seed };
    const Up = prepared.prefixCount;
    if (this.prefix && Up !== B) throw new Error('backbone idefics3: a batch prepared without a prefix provider cannot run with one (prepare() again after setPrefixProvider)');
    return tf.tidy(() => {
      const feats = m.connector(prepared.context, ctx);
      const embedRow = (ids: Int32Array, images: number[]) => {
        const t = images.length > 0 ? takeRows(feats, tileIndices(prepared.tileRanges, images)) : null;
        return tf.reshape(m.embed(ids, 1, ids.length, t).embeds, [ids.length, d]) as tf.Tensor2D;
      };
      const readAt: ReadAt = [];
      const groupLogits: tf.Tensor2D[] = [];
      let auxLoss: tf.Scalar | undefined;
      const auxTerms: tf.Scalar[] = [];
      for (let u = 0; u < Up; u++) {
        const members = [...Array(B).keys()].filter((b) => prepared.prefixOf[b] === u);
        const first = prepared.rows[members[0]];
        let prefixRows = embedRow(first.prefix, first.refs);
        if (this.prefix) {
          const weights = new Float32Array(first.prefix.length).fill(1 / first.history, 0, first.history);
          const out = this.prefixTokens(weights, tf.expandDims(prefixRows, 0) as tf.Tensor3D, 1);
          prefixRows = tf.concat([tf.reshape(out.embeddings, [out.embeddings.shape[1], d]), prefixRows], 0) as tf.Tensor2D;
          if (out.auxLoss) auxTerms.push(out.auxLoss);
        }
        const pieces: tf.Tensor2D[] = [prefixRows];
        const turns: number[] = [];
        for (const which of ['liked', 'disliked'] as const) {
          for (const b of members) {
            const r = prepared.rows[b];
            const suffix = which === 'liked' ? r.likedSuffix : r.dislikedSuffix;
            pieces.push(embedRow(suffix, [which === 'liked' ? r.liked : r.disliked]));
            readAt[b] ??= { liked: [0, 0], disliked: [0, 0] };
            readAt[b][which] = [u, turns.push(suffix.length) - 1];
          }
        }
        const layout = prefixTurnsLayout(prefixRows.shape[0], turns);
        const packed = tf.concat(pieces, 0) as tf.Tensor2D;
        groupLogits.push(textForwardPacked(m.params, m.config, { embeds: packed, ...layout }, { ctx: rowContext(ctx, u) }).logits);
      }
      if (auxTerms.length > 0) auxLoss = (auxTerms.length === 1 ? auxTerms[0] : tf.div(tf.addN(auxTerms), auxTerms.length)) as tf.Scalar;
      return sharedPairLogits(groupLogits, readAt, auxLoss);
    });
  }

  /**
   * Ranking: the history's prefix (preference tokens if set, the reference turns, the target's
   * "User:") runs once and its keys and values are kept; each candidate's target turn (its own
   * tile layout) then runs on that state.
   */
  async openHistory(history: PreferenceHistory): Promise<HistorySession> {
    const p = this.p;
    const m = this.m;
    const references = history.references;
    const likedFirst = history.likedFirst ?? references.map(() => false);
    const d = m.config.text.hiddenSize;
    const chatFor = (prompt: string) => p.messages({ userId: 'history', references, likedFirst, target: { prompt } });
    const { messages, references: refImages } = chatFor('');
    const refLayouts: TileLayout[] = [];
    for (const im of refImages) refLayouts.push(await this.layout(im));
    const probe = p.encode(messages, [...refLayouts, { rows: 0, cols: 0 }]);
    const prefixIds = probe.inputIds.slice(0, probe.targetStart);
    const refCtx = refImages.length > 0 ? await this.visionContext(refImages) : null;
    const provider = this.prefix;
    let embeds: tf.Tensor2D;
    try {
      embeds = tf.tidy(() => {
        const feats = refCtx ? m.connector(refCtx.context, EVAL) : null;
        const rows = tf.reshape(m.embed(prefixIds, 1, prefixIds.length, feats).embeds, [prefixIds.length, d]) as tf.Tensor2D;
        if (!provider) return rows;
        const len = historyLength(probe.inputIds, probe.targetStart, p.tokens.endOfUtterance);
        const tokens = this.prefixTokens(new Float32Array(prefixIds.length).fill(1 / len, 0, len), tf.expandDims(rows, 0) as tf.Tensor3D, 1).embeddings;
        return tf.concat([tf.reshape(tokens, [tokens.shape[1], d]), rows], 0) as tf.Tensor2D;
      });
    } finally {
      refCtx?.context.dispose();
    }
    const kv = historyState(m.params, m.config, embeds);
    const readout = p.readout;
    return historySession(kv, HISTORY_CHUNK, 'idefics3', (prompt) => {
      const chat = chatFor(prompt).messages;
      return async (state, chunk) => {
        const suffixes: Int32Array[] = [];
        for (const cand of chunk) {
          const enc = p.encode(chat, [...refLayouts, await this.layout(cand)]);
          if (enc.targetStart !== prefixIds.length || enc.inputIds.subarray(0, enc.targetStart).some((id, i) => id !== prefixIds[i])) throw new Error('backbone idefics3: the history encodes differently with this prompt; its prefix cannot be reused');
          suffixes.push(enc.inputIds.slice(enc.targetStart));
        }
        const ctx = await this.visionContext(chunk);
        try {
          return await readCandidates(() => {
            const feats = m.connector(ctx.context, EVAL);
            const rows = suffixes.map((s, i) => tf.reshape(m.embed(s, 1, s.length, takeRows(feats, tileIndices(ctx.ranges, [i]))).embeds, [s.length, d]));
            return runAfterPrefix(m.params, m.config, state, tf.concat(rows, 0) as tf.Tensor2D, suffixes.map((s) => s.length));
          }, readout);
        } finally {
          ctx.context.dispose();
        }
      };
    });
  }
}
