/**
 * The Backbone contract (packages/core) on the tfjs Idefics3 / SmolVLM: the processor builds the
 * SPEC §2 sequence with each image as its tiles plus a global image, the model scores it, LoRA
 * (@userpref/mllm's PEFT adapter) adapts the connector and the text model.
 *
 * As in the IDEFICS2 backbone (the shared steps are @userpref/mllm's), split along its concerns:
 * - batch-layout.ts: what `prepare` builds; it runs the frozen vision tower once per unique image
 *   (all its tiles), through the byte-budgeted, optionally on-disk VisionCache keyed by content
 *   hash and a fingerprint of the vision weights;
 * - forward.ts: the two forward paths of `pairLogits`: the LoRA-adapted connector on the batch's
 *   tiles, then the text model; with the shared prefix (default) the reference history of an
 *   example runs once and the liked and disliked target turns run on its keys (packed rows,
 *   per-segment attention); `sharedPrefix: false` runs two complete sequences and gives the same
 *   logits; preference tokens go before the first token of both sequences;
 * - here: loading, the vision tower per image and its tile layout, and `openHistory`, which keeps
 *   the history's key-value state and scores candidates on it.
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
  VisionLanguageBackbone,
  historySession,
  historyState,
  readCandidates,
  runAfterPrefix,
  takeRows,
  type PrefixKv,
  type VisionEntry,
} from '@userpref/mllm';
import { Idefics3PreparedBatch, prefixHistoryWeights, prepareBatch, tileIndices } from './batch-layout';
import { fullPath, sharedPath } from './forward';
import { Idefics3Model } from './model/idefics3';
import { DEFAULT_IDEFICS3_OPTIONS, IDEFICS3_TARGET_MODULES, type Idefics3BackboneOptions } from './options';
import { processIdefics3Image, tileLayout } from './processor/image';
import { Idefics3Processor, type TileLayout } from './processor/processor';

export { DEFAULT_IDEFICS3_OPTIONS, IDEFICS3_TARGET_MODULES };
export type { Idefics3BackboneOptions };

/** Candidates scored per forward in a history session. */
const HISTORY_CHUNK = 8;

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

  /** Each example's sequence pair, its unique prefix and the batch's tiles (batch-layout.ts). */
  async prepare(batch: PreferenceBatch): Promise<PreparedBatch> {
    return prepareBatch(batch, {
      hasPrefixProvider: this.prefix !== null,
      processor: () => this.p,
      layout: (image) => this.layout(image),
      visionContext: (images) => this.visionContext(images),
    });
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
    return fullPath(this.m, prepared, options, this.prefix, this.p.tokens.pad);
  }

  /** Each unique reference prefix once, then the liked and disliked target turns of its examples on its keys. */
  private sharedPath(prepared: Idefics3PreparedBatch, options: ForwardOptions): PairLogits {
    return sharedPath(this.m, prepared, options, this.prefix);
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
    const { messages, references: refImages, liked } = chatFor('');
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
        const weights = prefixHistoryWeights(p, prefixIds, probe.targetStart, refLayouts, liked);
        const tokens = this.prefixTokens(weights, tf.expandDims(rows, 0) as tf.Tensor3D, 1).embeddings;
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
