/**
 * The Backbone contract (packages/core) on the tfjs IDEFICS2: the processor builds the SPEC §2
 * sequence, the model scores it, LoRA adapts it.
 *
 * Work is placed where it is cheapest:
 * - `prepare` (async) tokenises, decodes and preprocesses each image and runs the frozen vision
 *   tower once per unique image, keeping its output in a byte-budgeted LRU (optionally spilled to
 *   disk) keyed by the image's content hash and a fingerprint of the vision weights
 *   (@userpref/mllm's vision-cache.ts): SPEC §8's "re-encodes all 17 images twice" becomes "encodes each image once".
 * - `pairLogits` (sync, differentiable) runs the LoRA-adapted connector once per unique image of
 *   the batch (the liked and disliked sequences share 16 of 17 images), then the text model.
 *   Shared prefix (default, option sharedPrefix): the liked- and disliked-target sequences of an
 *   example have the same tokens and images up to the target image, so that prefix runs once and
 *   only the two target turns run separately, attending to the prefix's keys (@userpref/mllm's attention.ts);
 *   gradients of both target turns flow back through the one prefix. The full path (two complete
 *   sequences per example) is kept (sharedPrefix: false) and gives the same logits. With LoRA
 *   dropout in training the shared prefix draws one dropout mask for both sequences (it is one
 *   computation), the full path two.
 *
 * Preference tokens (stage 2): the provider's [B, P, d] embeddings are prepended before BOS of both
 * sequences of each example (in the shared path: of the prefix); positions and read index follow.
 * PrefixContext.historyMean is the mean input embedding (image features included) of each example's
 * reference history: the tokens up to and including the last <end_of_utterance> before the target
 * image (BOS + "User:" when there are no references).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { requirePath, type Backbone, type ForwardOptions, type HistorySession, type Logger, type PairLogits, type PreferenceBatch, type PreferenceHistory, type PreferenceImage, type PreparedBatch, type RunContext as CoreRunContext } from '@userpref/core';
import {
  EVAL,
  UniqueImages,
  VisionLanguageBackbone,
  historyLength,
  historySession,
  padRows,
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
  type RunContext,
  type VisionEntry,
} from '@userpref/mllm';
import { Idefics2Model } from './model/idefics2';
import { DEFAULT_BACKBONE_OPTIONS, type Idefics2BackboneOptions } from './options';
import { Idefics2Processor } from './processor';
import { Idefics2AttentionProbe } from './probe/probe';
import { processImage } from './processor/image';

export { DEFAULT_BACKBONE_OPTIONS };
export type { Idefics2BackboneOptions };

/**
 * The shared-prefix layout: unique reference prefixes (examples of one user with the same history
 * share one) and the target turn of each example.
 */
interface SharedLayout {
  /** Unique prefix of each example. */
  readonly prefixOf: Int32Array;
  /** [Up * Pmax] prefix token ids (everything before the target image's <image> run), right padded. */
  readonly prefixIds: Int32Array;
  readonly prefixMask: Uint8Array;
  readonly prefixLen: number;
  readonly prefixLengths: number[];
  /** [Up * Pmax] history weights over the prefix (1/len on the reference history). */
  readonly historyWeights: Float32Array;
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

class Idefics2PreparedBatch implements PreparedBatch {
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
    /** [B * T] history weights (1/len on each example's reference history). */
    readonly historyWeights: Float32Array,
    readonly shared: SharedLayout,
  ) {}

  dispose(): void {
    this.context.dispose();
  }
}

/** Candidates scored per forward by a history session (bounds the rows of one packed forward). */
const HISTORY_CHUNK = 16;

export class Idefics2Backbone extends VisionLanguageBackbone<Idefics2Model, Idefics2Processor> implements Backbone {
  readonly options: Idefics2BackboneOptions;

  constructor(options: Partial<Idefics2BackboneOptions> & { path: string }, run: CoreRunContext, logger?: Logger) {
    super('idefics2', run, logger);
    this.options = { ...DEFAULT_BACKBONE_OPTIONS, ...options, lora: { ...DEFAULT_BACKBONE_OPTIONS.lora, ...(options.lora ?? {}) } };
    if (this.options.dtype !== 'float32') throw new Error(`backbone idefics2: dtype '${this.options.dtype}' is not supported; only float32`);
  }

  get checkpointDir(): string {
    return path.resolve(this.run.baseDir, this.options.path);
  }

  async init(): Promise<void> {
    const dir = this.checkpointDir;
    await requirePath('checkpoint', dir, 'config.json');
    const started = Date.now();
    let lastLog = 0;
    this.processor = await Idefics2Processor.fromPretrained(dir, { usePrompt: this.options.usePrompt, maxPromptLen: this.options.maxPromptLen });
    this.model = await Idefics2Model.load(dir, {
      baseBits: this.options.baseBits ?? 32,
      doubleQuant: this.options.doubleQuant ?? false,
      onProgress: (done, total, name) => {
        if (Date.now() - lastLog > 5000 || done === total) {
          lastLog = Date.now();
          this.logger?.info(`loading weights ${done}/${total}`, { tensor: name });
        }
      },
    });
    const c = this.model.config;
    if (c.imageTokenId !== this.processor.tokens.image) throw new Error(`${dir}: config.json image_token_id ${c.imageTokenId} differs from the tokenizer's <image> id ${this.processor.tokens.image}`);
    if (this.processor.imageSeqLen !== c.perceiver.numLatents) throw new Error(`${dir}: image_seq_len ${this.processor.imageSeqLen} differs from resampler_n_latents ${c.perceiver.numLatents}`);
    if (this.model.loadReport.unused.length > 0) this.logger?.warn(`${this.model.loadReport.unused.length} checkpoint tensors are not used by the model`, { examples: this.model.loadReport.unused.slice(0, 5) });
    if (c.defaulted.length > 0) this.logger?.debug('config.json keys taken from transformers defaults', { keys: c.defaulted });
    const adapter = await this.attachCacheAndAdapter({
      maxBytes: this.options.imageCacheBytes,
      cacheDir: this.options.imageCacheDir ? path.resolve(this.run.baseDir, this.options.imageCacheDir) : null,
      context: { vision: c.vision, image: this.processor.imageConfig },
      lora: { ...this.options.lora },
      adapterPath: this.options.adapterPath ? path.resolve(this.run.baseDir, this.options.adapterPath) : null,
      mergeAdapter: this.options.mergeAdapter === true,
    });
    this.logger?.info('idefics2 backbone ready', {
      dir,
      seconds: (Date.now() - started) / 1000,
      textHidden: c.text.hiddenSize,
      layers: c.text.numLayers,
      loraModules: adapter.modules.length,
      loraParameters: adapter.numParameters(),
    });
  }

  /** The loaded model (for analysis tools: attention maps, hidden states). */
  get idefics2(): Idefics2Model {
    return this.m;
  }

  /** Vision-tower output of an image: from the cache, else computed once and cached. */
  protected async vision(image: PreferenceImage): Promise<VisionEntry> {
    const cache = this.visionCache;
    const hit = await cache.get(image.id);
    if (hit) return hit;
    const rgb = await image.decode();
    const px = processImage(rgb, this.p.imageConfig);
    const pixels = tf.tensor4d(px.chw, [1, 3, px.height, px.width]);
    const out = this.m.visionTower(pixels, null);
    pixels.dispose();
    const [, patches, width] = out.hidden.shape;
    const entry: VisionEntry = { hidden: out.hidden.dataSync() as Float32Array, patches, width, patchValid: out.patchValid };
    out.hidden.dispose();
    await cache.put(image.id, entry);
    return entry;
  }

  async prepare(batch: PreferenceBatch): Promise<PreparedBatch> {
    const p = this.p;
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
    const historyWeights = new Float32Array(B * T);
    // Unique prefixes: examples with the same history (ids and reference images) share one, unless
    // a prefix provider is set (its tokens and aux loss are per example).
    const dedupe = this.prefix === null;
    const prefixKeys = new Map<string, number>();
    const prefixOf = new Int32Array(B);
    const prefixRows: Int32Array[] = [];
    const prefixHistory: number[] = [];
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
      historyWeights.fill(1 / len, b * T, b * T + len);
      // Shared prefix: everything before the target's <image> run (its <fake_token_around_image>
      // included); the target turn is the rest.
      const prefix = enc.inputIds.subarray(0, targetStart);
      const key = dedupe ? `${prefix.join(',')}|${refs.join(',')}` : `#${b}`;
      let u = prefixKeys.get(key);
      if (u === undefined) {
        prefixKeys.set(key, (u = prefixRows.length));
        prefixRows.push(prefix);
        prefixHistory.push(len);
        refImages.push(...refs);
      }
      prefixOf[b] = u;
      suffixRows.push(enc.inputIds.subarray(targetStart));
    });
    const visions: VisionEntry[] = [];
    for (const image of unique.images()) visions.push(await this.vision(image));
    const dv = this.m.config.vision.hiddenSize;
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
    const historyPrefix = new Float32Array(prefixRows.length * pre.len);
    prefixHistory.forEach((len, u) => historyPrefix.fill(1 / len, u * pre.len, u * pre.len + len));
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

  pairLogits(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    if (!(prepared instanceof Idefics2PreparedBatch)) throw new Error('backbone idefics2: pairLogits needs a batch from this backbone\'s prepare()');
    return this.options.sharedPrefix === false ? this.fullPath(prepared, options) : this.sharedPath(prepared, options);
  }

  /** Two complete sequences per example (the reference path for the shared prefix). */
  pairLogitsFull(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    if (!(prepared instanceof Idefics2PreparedBatch)) throw new Error('backbone idefics2: pairLogitsFull needs a batch from this backbone\'s prepare()');
    return this.fullPath(prepared, options);
  }

  private fullPath(prepared: Idefics2PreparedBatch, options: ForwardOptions): PairLogits {
    const m = this.m;
    const B = prepared.size;
    const T = prepared.seqLen;
    const ctx: RunContext = { training: options.training, seed: options.seed, checkpoint: this.options.checkpointing === true };
    return tf.tidy(() => {
      const feats = m.connector(prepared.context, prepared.contextValid, ctx);
      const perSlot = takeRows(feats, prepared.slotImages);
      const ids = new Int32Array(2 * B * T);
      ids.set(prepared.inputIds, 0);
      ids.set(prepared.inputIds, B * T);
      const mask = new Uint8Array(2 * B * T);
      mask.set(prepared.attentionMask, 0);
      mask.set(prepared.attentionMask, B * T);
      let prefix: tf.Tensor3D | undefined;
      let auxLoss: tf.Scalar | undefined;
      if (this.prefix) {
        const base = m.embed(ids.subarray(0, B * T), B, T, tf.slice(perSlot, [0, 0, 0], [prepared.likedSlots, -1, -1]) as tf.Tensor3D, mask.subarray(0, B * T));
        const out = this.prefixTokens(prepared.historyWeights, base.embeds, B);
        prefix = tf.concat([out.embeddings, out.embeddings], 0) as tf.Tensor3D;
        auxLoss = out.auxLoss;
      }
      const emb = m.embed(ids, 2 * B, T, perSlot, mask, prefix);
      const { logits } = m.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx });
      const [liked, disliked] = tf.split(logits, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
      return pairLogits(liked, disliked, auxLoss);
    });
  }

  /**
   * The reference prefix of each example once, then its liked and disliked target turns (RoPE
   * positions continuing after the prefix, keys = the prefix's real keys + the turn's own), packed
   * without padding into one row matrix.
   */
  pairLogitsShared(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    if (!(prepared instanceof Idefics2PreparedBatch)) throw new Error('backbone idefics2: pairLogitsShared needs a batch from this backbone\'s prepare()');
    return this.sharedPath(prepared, options);
  }

  /** Number of distinct reference prefixes a prepared batch runs (<= its size). */
  static prefixCount(prepared: PreparedBatch): number {
    if (!(prepared instanceof Idefics2PreparedBatch)) throw new Error('backbone idefics2: not a batch from prepare()');
    return prepared.shared.prefixLengths.length;
  }

  private sharedPath(prepared: Idefics2PreparedBatch, options: ForwardOptions): PairLogits {
    const m = this.m;
    const B = prepared.size;
    const s = prepared.shared;
    const d = m.config.text.hiddenSize;
    const ctx: RunContext = { training: options.training, seed: options.seed, checkpoint: this.options.checkpointing === true };
    const Up = s.prefixLengths.length;
    return tf.tidy(() => {
      const feats = m.connector(prepared.context, prepared.contextValid, ctx);
      const refFeats = s.refImages.length > 0 ? takeRows(feats, s.refImages) : null;
      const pre = m.embed(s.prefixIds, Up, s.prefixLen, refFeats, s.prefixMask);
      let prefixEmb = pre.embeds;
      let P = 0;
      let auxLoss: tf.Scalar | undefined;
      if (this.prefix) {
        if (Up !== B) throw new Error('backbone idefics2: a batch prepared without a prefix provider cannot run with one (prepare() again after setPrefixProvider)');
        const out = this.prefixTokens(s.historyWeights, pre.embeds, B);
        P = out.embeddings.shape[1];
        prefixEmb = tf.concat([out.embeddings, pre.embeds], 1) as tf.Tensor3D;
        auxLoss = out.auxLoss;
      }
      const targets = takeRows(feats, [...s.likedTarget, ...s.dislikedTarget]);
      const sufIds = new Int32Array(2 * s.suffixIds.length);
      sufIds.set(s.suffixIds, 0);
      sufIds.set(s.suffixIds, s.suffixIds.length);
      const sufMask = new Uint8Array(2 * s.suffixMask.length);
      sufMask.set(s.suffixMask, 0);
      sufMask.set(s.suffixMask, s.suffixMask.length);
      const suf = m.embed(sufIds, 2 * B, s.suffixLen, targets, sufMask).embeds;
      // One packed forward per unique prefix: the prefix, then the liked and the disliked turns of
      // its examples. (Per group rather than the whole batch: on wasm every row slice copies its
      // whole source tensor, so one big packed matrix would cost O(batch^2) in slicing.)
      const take = (t: tf.Tensor3D, r: number, len: number) => tf.reshape(t.shape[0] === 1 && t.shape[1] === len ? t : tf.slice(t, [r, 0, 0], [1, len, d]), [len, d]) as tf.Tensor2D;
      const rowOf: ReadAt = [];
      const groupLogits: tf.Tensor2D[] = [];
      for (let u = 0; u < Up; u++) {
        const members = [...Array(B).keys()].filter((b) => s.prefixOf[b] === u);
        const len = P + s.prefixLengths[u];
        const pieces: tf.Tensor2D[] = [take(prefixEmb, u, len)];
        const turns: number[] = [];
        for (const which of ['liked', 'disliked'] as const) {
          for (const b of members) {
            const sl = s.suffixLengths[b];
            pieces.push(take(suf, (which === 'liked' ? 0 : B) + b, sl));
            rowOf[b] ??= { liked: [0, 0], disliked: [0, 0] };
            rowOf[b][which] = [u, turns.push(sl) - 1];
          }
        }
        const layout = prefixTurnsLayout(len, turns);
        const packed = tf.concat(pieces, 0) as tf.Tensor2D;
        groupLogits.push(textForwardPacked(m.params, m.config, { embeds: packed, ...layout }, { ctx: rowContext(ctx, u) }).logits);
      }
      return sharedPairLogits(groupLogits, rowOf, auxLoss);
    });
  }

  /**
   * Ranking (Backbone.openHistory): the history's prefix (preference tokens if set, BOS, the
   * reference turns, the target's opening <fake_token_around_image>) runs once and its per-layer
   * keys and values are kept (@userpref/mllm's prefix-kv.ts); each call of `score` runs only the candidates'
   * target turns on that state, HISTORY_CHUNK candidates per forward. The logits are those of the
   * full sequence of each candidate. The session holds the weights, adapter and preference tokens
   * of the moment it was opened.
   */
  async openHistory(history: PreferenceHistory): Promise<HistorySession> {
    const p = this.p;
    const m = this.m;
    const references = history.references;
    const likedFirst = history.likedFirst ?? references.map(() => false);
    if (likedFirst.length !== references.length) throw new Error(`history: ${references.length} references but ${likedFirst.length} likedFirst flags`);
    const placeholder: PreferenceImage = { id: 'candidate', decode: () => Promise.reject(new Error('the candidate slot has no image of its own')) };
    const encode = (prompt: string) => {
      const enc = p.encodeExample({ userId: 'history', references, likedFirst, target: { prompt, image0: placeholder, image1: placeholder, label0: 1 } });
      return { ids: enc.inputIds, start: enc.imageSlots[enc.imageSlots.length - 1].start, slots: enc.imageSlots };
    };
    const first = encode('');
    const prefixIds = first.ids.slice(0, first.start);
    const refImages = first.slots.slice(0, -1).map((s) => s.image as PreferenceImage);
    const refContext = refImages.length > 0 ? await this.visionContext(refImages) : null;
    const d = m.config.text.hiddenSize;
    const provider = this.prefix;
    let embeds: tf.Tensor2D;
    try {
      embeds = tf.tidy(() => {
        const feats = refContext ? m.connector(refContext.context, refContext.valid, EVAL) : null;
        const pre = m.embed(prefixIds, 1, prefixIds.length, feats).embeds;
        const rows = tf.reshape(pre, [prefixIds.length, d]) as tf.Tensor2D;
        if (!provider) return rows;
        const len = historyLength(first.ids, first.start, p.tokens.endOfUtterance);
        const weights = new Float32Array(prefixIds.length).fill(1 / len, 0, len);
        const tokens = this.prefixTokens(weights, pre, 1).embeddings;
        return tf.concat([tf.reshape(tokens, [tokens.shape[1], d]), rows], 0) as tf.Tensor2D;
      });
    } finally {
      refContext?.context.dispose();
    }
    const kv = historyState(m.params, m.config, embeds);
    const readout = p.readout;
    return historySession(kv, HISTORY_CHUNK, 'idefics2', (prompt) => {
      const enc = encode(prompt);
      if (enc.start !== prefixIds.length || enc.ids.subarray(0, enc.start).some((id, i) => id !== prefixIds[i])) {
        throw new Error('backbone idefics2: the history encodes differently with this prompt; its prefix cannot be reused');
      }
      const suffix = enc.ids.slice(enc.start);
      const sl = suffix.length;
      return async (state, chunk) => {
        const ctx = await this.visionContext(chunk);
        try {
          return await readCandidates(() => {
            const feats = m.connector(ctx.context, ctx.valid, EVAL);
            const n = chunk.length;
            const ids = new Int32Array(n * sl);
            for (let i = 0; i < n; i++) ids.set(suffix, i * sl);
            const rows = tf.reshape(m.embed(ids, n, sl, feats).embeds, [n * sl, d]) as tf.Tensor2D;
            return runAfterPrefix(m.params, m.config, state, rows, Array<number>(n).fill(sl));
          }, readout);
        } finally {
          ctx.context.dispose();
        }
      };
    });
  }

  /** [n, Pmax, d_vision] vision outputs of `images` (from the cache, else computed) and their patch mask. */
  private async visionContext(images: readonly PreferenceImage[]): Promise<{ context: tf.Tensor3D; valid: Uint8Array }> {
    const visions: VisionEntry[] = [];
    for (const image of images) visions.push(await this.vision(image));
    const dv = this.m.config.vision.hiddenSize;
    const pMax = Math.max(...visions.map((v) => v.patches));
    const valid = new Uint8Array(visions.length * pMax);
    const data = new Float32Array(visions.length * pMax * dv);
    visions.forEach((v, i) => {
      if (v.width !== dv) throw new Error(`vision output width ${v.width} differs from vision_config.hidden_size ${dv}`);
      valid.set(v.patchValid, i * pMax);
      data.set(v.hidden, i * pMax * dv);
    });
    return { context: tf.tensor3d(data, [visions.length, pMax, dv]), valid };
  }

  /**
   * The AttentionProbeProvider capability (core contracts/attention.ts): the target image's
   * attention to the preference tokens, read from this model as it is now (for similar-user mining).
   */
  attentionProbe(): Promise<Idefics2AttentionProbe> {
    return Idefics2AttentionProbe.create(this);
  }
}

export { historyLength } from '@userpref/mllm';
