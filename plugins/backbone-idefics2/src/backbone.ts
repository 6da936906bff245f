/**
 * The Backbone contract (packages/core) on the tfjs IDEFICS2: the processor builds the SPEC §2
 * sequence, the model scores it, LoRA adapts it. The class holds the options, loading and the
 * contract's entry points; the work is split along its concerns:
 * - batch-layout.ts: what `prepare` (async) builds: tokenised sequences, the shared-prefix layout,
 *   history weights and the vision-tower output of each unique image (computed once, cached by
 *   content hash and vision-weight fingerprint in @userpref/mllm's vision-cache.ts);
 * - forward.ts: the two forward paths of `pairLogits` (sync, differentiable): the shared prefix
 *   (default, option sharedPrefix) and two complete sequences per example (sharedPrefix: false),
 *   which give the same logits, with preference tokens (stage 2) prepended before BOS;
 * - here: `openHistory` (ranking on a history's kept key-value state) and `visionContext`;
 *   adapter I/O and the vision cache's fingerprint are the base class's
 *   (@userpref/mllm's vision-language-backbone.ts).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { requirePath, type Backbone, type ForwardOptions, type HistorySession, type Logger, type PairLogits, type PreferenceBatch, type PreferenceHistory, type PreferenceImage, type PreparedBatch, type RunContext as CoreRunContext } from '@userpref/core';
import {
  EVAL,
  VisionLanguageBackbone,
  fillHistoryWeights,
  historyLength,
  historyWeights,
  historySession,
  historyState,
  readCandidates,
  runAfterPrefix,
  type PrefixKv,
  type VisionEntry,
} from '@userpref/mllm';
import { Idefics2PreparedBatch, prepareBatch } from './batch-layout';
import { fullPath, sharedPath } from './forward';
import { Idefics2Model } from './model/idefics2';
import { DEFAULT_BACKBONE_OPTIONS, type Idefics2BackboneOptions } from './options';
import { Idefics2Processor } from './processor';
import { Idefics2AttentionProbe } from './probe/probe';
import { processImage } from './processor/image';

export { DEFAULT_BACKBONE_OPTIONS };
export type { Idefics2BackboneOptions };

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

  /** The batch layout and the vision outputs of its unique images (batch-layout.ts). */
  async prepare(batch: PreferenceBatch): Promise<PreparedBatch> {
    return prepareBatch(this.p, batch, { hasPrefixProvider: this.prefix !== null, vision: (image) => this.vision(image), model: () => this.m });
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
    return fullPath(this.m, prepared, options, this.prefix, this.options.checkpointing === true);
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
    return sharedPath(this.m, prepared, options, this.prefix, this.options.checkpointing === true);
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
      return { ids: enc.inputIds, start: enc.imageSlots[enc.imageSlots.length - 1].start, slots: enc.imageSlots, liked: enc.referenceLiked };
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
        const weights = historyWeights(1, prefixIds.length);
        fillHistoryWeights(weights, 0, prefixIds.length, len, prefixIds, p.tokens.image, first.liked.map(() => p.imageSeqLen), first.liked);
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
