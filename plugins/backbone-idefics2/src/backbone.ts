/**
 * The Backbone contract (packages/core) on the tfjs IDEFICS2: the processor builds the SPEC §2
 * sequence, the model scores it, LoRA adapts it.
 *
 * Work is placed where it is cheapest:
 * - `prepare` (async) tokenises, decodes and preprocesses each image and runs the frozen vision
 *   tower once per unique image, keeping its output in an LRU cache keyed by the image's content
 *   hash (the tower never changes, SPEC §8's "re-encodes all 17 images twice" is avoided);
 * - `pairLogits` (sync, differentiable) runs the LoRA-adapted connector once per unique image of
 *   the batch (not per sequence: the liked and disliked sequences share 16 of 17 images), then the
 *   text model on the 2B sequences of the batch (liked rows first, then disliked rows).
 *
 * Preference tokens (stage 2): the provider's [B, P, d] embeddings are prepended before BOS of both
 * sequences of each example; the mask and the read index follow (right padding, see model/text.ts).
 * PrefixContext.historyMean is the mean input embedding (image features included) of each example's
 * reference history: the tokens up to and including the last <end_of_utterance> before the target
 * image (BOS + "User:" when there are no references).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone, ForwardOptions, Logger, PairLogits, PreferenceBatch, PreferenceImage, PreparedBatch, PrefixProvider, ReadoutTokens, RunContext as CoreRunContext } from '@userpref/core';
import { LoraAdapter } from './lora/adapter';
import { PAPER_TARGET_MODULES, type LoraInit, type LoraSettings } from './lora/lora';
import { Idefics2Model } from './model/idefics2';
import type { RunContext } from './model/linear';
import { Idefics2Processor } from './processor';
import { processImage } from './processor/image';

export interface Idefics2BackboneOptions {
  /** Checkpoint directory (config.json, weights, tokenizer, processor files); relative to the run's baseDir. */
  readonly path: string;
  readonly lora: { readonly r: number; readonly alpha: number; readonly dropout: number; readonly targetModules: string; readonly init: LoraInit };
  /** A PEFT adapter directory to load after init (replaces the fresh LoRA). */
  readonly adapterPath?: string | null;
  /** Fold the loaded adapter into the weights (inference only; no trainable variables remain). */
  readonly mergeAdapter?: boolean;
  readonly usePrompt: boolean;
  /** Prompts cut to this many characters (code points); null keeps them whole. */
  readonly maxPromptLen: number | null;
  readonly dtype: 'float32';
  /** Vision-tower outputs kept in memory (one per unique image). */
  readonly imageCacheSize: number;
}

export const DEFAULT_BACKBONE_OPTIONS: Omit<Idefics2BackboneOptions, 'path'> = {
  lora: { r: 8, alpha: 8, dropout: 0.1, targetModules: PAPER_TARGET_MODULES, init: 'gaussian' },
  adapterPath: null,
  mergeAdapter: false,
  usePrompt: true,
  maxPromptLen: 100,
  dtype: 'float32',
  imageCacheSize: 512,
};

interface CachedVision {
  /** [P, d_vision] (kept) */
  readonly hidden: tf.Tensor2D;
  readonly patchValid: Uint8Array;
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
  ) {}

  dispose(): void {
    this.context.dispose();
  }
}

export class Idefics2Backbone implements Backbone {
  private model: Idefics2Model | null = null;
  private processor: Idefics2Processor | null = null;
  private adapter: LoraAdapter | null = null;
  private prefix: PrefixProvider | null = null;
  private readonly cache = new Map<string, CachedVision>();
  readonly options: Idefics2BackboneOptions;

  constructor(
    options: Partial<Idefics2BackboneOptions> & { path: string },
    private readonly run: CoreRunContext,
    private readonly logger?: Logger,
  ) {
    this.options = { ...DEFAULT_BACKBONE_OPTIONS, ...options, lora: { ...DEFAULT_BACKBONE_OPTIONS.lora, ...(options.lora ?? {}) } };
    if (this.options.dtype !== 'float32') throw new Error(`backbone idefics2: dtype '${this.options.dtype}' is not supported; only float32`);
  }

  get checkpointDir(): string {
    return path.resolve(this.run.baseDir, this.options.path);
  }

  async init(): Promise<void> {
    const dir = this.checkpointDir;
    const started = Date.now();
    let lastLog = 0;
    this.processor = await Idefics2Processor.fromPretrained(dir, { usePrompt: this.options.usePrompt, maxPromptLen: this.options.maxPromptLen });
    this.model = await Idefics2Model.load(dir, {
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
    const lora: LoraSettings = { ...this.options.lora };
    this.adapter = LoraAdapter.attach(this.model, lora, this.run.seed);
    if (this.options.adapterPath) await this.loadAdapter(path.resolve(this.run.baseDir, this.options.adapterPath));
    if (this.options.mergeAdapter) {
      this.adapter.merge();
      this.logger?.info('LoRA adapter merged into the weights (inference only)');
    }
    this.logger?.info('idefics2 backbone ready', {
      dir,
      seconds: (Date.now() - started) / 1000,
      textHidden: c.text.hiddenSize,
      layers: c.text.numLayers,
      loraModules: this.adapter.modules.length,
      loraParameters: this.adapter.numParameters(),
    });
  }

  private get m(): Idefics2Model {
    if (!this.model) throw new Error('backbone idefics2: init() has not been called');
    return this.model;
  }

  private get p(): Idefics2Processor {
    if (!this.processor) throw new Error('backbone idefics2: init() has not been called');
    return this.processor;
  }

  get textHiddenSize(): number {
    return this.m.config.text.hiddenSize;
  }

  get readout(): ReadoutTokens {
    return this.p.readout;
  }

  /** The loaded model (for analysis tools: attention maps, hidden states). */
  get idefics2(): Idefics2Model {
    return this.m;
  }

  /** Vision-tower output of an image, computed once and cached (LRU by content hash). */
  private async vision(image: PreferenceImage): Promise<CachedVision> {
    const hit = this.cache.get(image.id);
    if (hit) {
      this.cache.delete(image.id);
      this.cache.set(image.id, hit);
      return hit;
    }
    const rgb = await image.decode();
    const px = processImage(rgb, this.p.imageConfig);
    const entry = tf.tidy(() => {
      const out = this.m.visionTower(tf.tensor4d(px.chw, [1, 3, px.height, px.width]), null);
      return { hidden: tf.keep(tf.reshape(out.hidden, [out.hidden.shape[1], out.hidden.shape[2]]) as tf.Tensor2D), patchValid: out.patchValid };
    });
    this.cache.set(image.id, entry);
    while (this.cache.size > this.options.imageCacheSize) {
      const [oldest, v] = this.cache.entries().next().value as [string, CachedVision];
      v.hidden.dispose();
      this.cache.delete(oldest);
    }
    return entry;
  }

  async prepare(batch: PreferenceBatch): Promise<PreparedBatch> {
    const p = this.p;
    const B = batch.length;
    if (B === 0) throw new Error('backbone idefics2: empty batch');
    const encodings = batch.map((ex) => p.encodeExample(ex));
    const collated = p.collate(encodings);
    const T = collated.seqLen;
    const unique = new Map<string, { index: number; image: PreferenceImage }>();
    const indexOf = (img: PreferenceImage) => {
      let u = unique.get(img.id);
      if (!u) unique.set(img.id, (u = { index: unique.size, image: img }));
      return u.index;
    };
    // Unique-image index of every image slot, in the order the image tokens appear in the 2B
    // sequences (liked rows first, then disliked rows): the order the features are merged in.
    const liked: number[] = [];
    const disliked: number[] = [];
    const historyWeights = new Float32Array(B * T);
    batch.forEach((ex, b) => {
      const enc = encodings[b];
      const likedImage = ex.target.label0 >= 0.5 ? ex.target.image0 : ex.target.image1;
      const dislikedImage = ex.target.label0 >= 0.5 ? ex.target.image1 : ex.target.image0;
      for (const slot of enc.imageSlots) {
        liked.push(indexOf(slot.image === 'target' ? likedImage : slot.image));
        disliked.push(indexOf(slot.image === 'target' ? dislikedImage : slot.image));
      }
      const targetStart = enc.imageSlots[enc.imageSlots.length - 1].start;
      let end = -1;
      for (let t = targetStart - 1; t >= 0; t--) {
        if (enc.inputIds[t] === p.tokens.endOfUtterance) {
          end = t;
          break;
        }
      }
      const len = end >= 0 ? end + 1 : Math.max(1, targetStart - 1);
      historyWeights.fill(1 / len, b * T, b * T + len);
    });
    const visions: CachedVision[] = [];
    for (const { image } of unique.values()) visions.push(await this.vision(image));
    const pMax = Math.max(...visions.map((v) => v.hidden.shape[0]));
    const dv = this.m.config.vision.hiddenSize;
    const contextValid = new Uint8Array(visions.length * pMax);
    visions.forEach((v, i) => contextValid.set(v.patchValid, i * pMax));
    const context = tf.tidy(() => tf.stack(visions.map((v) => (v.hidden.shape[0] === pMax ? v.hidden : tf.pad(v.hidden, [[0, pMax - v.hidden.shape[0]], [0, 0]])))) as tf.Tensor3D);
    if (context.shape[2] !== dv) throw new Error('vision output width mismatch');
    const mask = Uint8Array.from(collated.attentionMask);
    return new Idefics2PreparedBatch(B, context, contextValid, collated.inputIds, mask, T, Int32Array.from([...liked, ...disliked]), liked.length, historyWeights);
  }

  pairLogits(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    if (!(prepared instanceof Idefics2PreparedBatch)) throw new Error('backbone idefics2: pairLogits needs a batch from this backbone\'s prepare()');
    const m = this.m;
    const B = prepared.size;
    const T = prepared.seqLen;
    const d = m.config.text.hiddenSize;
    const ctx: RunContext = { training: options.training, seed: options.seed };
    return tf.tidy(() => {
      const feats = m.connector(prepared.context, prepared.contextValid, ctx);
      const perSlot = tf.gather(feats, tf.tensor1d(prepared.slotImages, 'int32')) as tf.Tensor3D;
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
        const historyMean = tf.reshape(tf.matMul(tf.tensor3d(prepared.historyWeights, [B, 1, T]), base.embeds), [B, d]) as tf.Tensor2D;
        const out = this.prefix.prefix({ historyMean });
        if (out.embeddings.shape[0] !== B || out.embeddings.shape[2] !== d) throw new Error(`prefix provider returned [${out.embeddings.shape.join(', ')}]; expected [${B}, length, ${d}]`);
        prefix = tf.concat([out.embeddings, out.embeddings], 0) as tf.Tensor3D;
        auxLoss = out.auxLoss;
      }
      const emb = m.embed(ids, 2 * B, T, perSlot, mask, prefix);
      const { logits } = m.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx });
      const [liked, disliked] = tf.split(logits, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
      return auxLoss ? { liked, disliked, auxLosses: [{ name: 'prefix', value: auxLoss }] } : { liked, disliked };
    });
  }

  setPrefixProvider(provider: PrefixProvider | null): void {
    this.prefix = provider;
  }

  async imageEmbeddings(images: readonly PreferenceImage[]): Promise<tf.Tensor2D> {
    const rows: tf.Tensor1D[] = [];
    for (const img of images) {
      const v = await this.vision(img);
      rows.push(
        tf.tidy(() => {
          const w = tf.tensor2d(Float32Array.from(v.patchValid), [1, v.patchValid.length]);
          return tf.reshape(tf.div(tf.matMul(w, v.hidden), tf.sum(w)), [-1]) as tf.Tensor1D;
        }),
      );
    }
    const out = tf.stack(rows) as tf.Tensor2D;
    tf.dispose(rows);
    return out;
  }

  adapterVariables(): tf.Variable[] {
    return this.adapter ? this.adapter.variables() : [];
  }

  async saveAdapter(dir: string): Promise<void> {
    if (!this.adapter || this.adapter.modules.length === 0) throw new Error('backbone idefics2: no LoRA adapter to save (merged or not initialised)');
    await this.adapter.save(dir, this.checkpointDir);
  }

  async loadAdapter(dir: string): Promise<void> {
    const m = this.m;
    await fs.access(dir).catch(() => {
      throw new Error(`LoRA adapter directory not found: ${dir}`);
    });
    this.adapter?.detach();
    this.adapter = await LoraAdapter.load(m, dir);
    this.logger?.info('LoRA adapter loaded', { dir, modules: this.adapter.modules.length, r: this.adapter.settings.r });
  }

  dispose(): void {
    for (const v of this.cache.values()) v.hidden.dispose();
    this.cache.clear();
    this.adapter?.detach();
    this.model?.dispose();
    this.model = null;
  }
}
