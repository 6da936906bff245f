/**
 * What a vision-language Backbone (packages/core) holds and does the same way whatever its family:
 * the loaded model and processor, the vision-output cache keyed by a fingerprint of the vision
 * tower, the LoRA adapter (attached, loaded, merged, saved as PEFT files), the preference-token
 * provider, the image embeddings. A family (IDEFICS2, Idefics3 / SmolVLM) extends it with its
 * loading, its batch layout and its forward paths.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Logger, PreferenceImage, PrefixProvider, ReadoutTokens, RunContext as CoreRunContext } from '@userpref/core';
import { LoraAdapter, type LoraTarget } from './adapter';
import { loadAttachedAdapter, meanOverPatches, prefixTokens, saveAttachedAdapter, visionTowerTensors, type HistoryWeights } from './backbone';
import type { TextConfig, VisionConfig } from './config';
import type { LoraSettings } from './lora';
import { VisionCache, type VisionCacheStats, type VisionEntry } from './vision-cache';
import type { VisionTowerParams } from './weights';

/** What the shared backbone steps read of a family's model. */
export interface VisionLanguageModel extends LoraTarget {
  readonly config: { readonly vision: VisionConfig; readonly text: TextConfig };
  readonly params: { readonly vision: VisionTowerParams };
  dispose(): void;
}

/** What the shared backbone steps read of a family's processor. */
export interface VisionLanguageProcessor {
  readonly readout: ReadoutTokens;
}

export abstract class VisionLanguageBackbone<M extends VisionLanguageModel, P extends VisionLanguageProcessor> {
  protected model: M | null = null;
  protected processor: P | null = null;
  protected adapter: LoraAdapter | null = null;
  protected prefix: PrefixProvider | null = null;
  protected cache: VisionCache | null = null;

  protected constructor(
    /** The contribution's name, in errors. */
    protected readonly who: string,
    protected readonly run: CoreRunContext,
    protected readonly logger?: Logger,
  ) {}

  /** The checkpoint directory (what a saved adapter's base_model_name_or_path names). */
  abstract get checkpointDir(): string;

  /** Vision-tower output of an image: from the cache, else computed once and cached. */
  protected abstract vision(image: PreferenceImage): Promise<VisionEntry>;

  protected get m(): M {
    if (!this.model) throw new Error(`backbone ${this.who}: init() has not been called`);
    return this.model;
  }

  protected get p(): P {
    if (!this.processor) throw new Error(`backbone ${this.who}: init() has not been called`);
    return this.processor;
  }

  get textHiddenSize(): number {
    return this.m.config.text.hiddenSize;
  }

  get readout(): ReadoutTokens {
    return this.p.readout;
  }

  /**
   * After the model and processor are loaded: the vision cache (its fingerprint covers `context`,
   * the tower's weights and any LoRA on them), then a fresh LoRA, the adapter in `adapterPath` if
   * given (absolute), merged into the weights if asked.
   */
  protected async attachCacheAndAdapter(options: {
    readonly maxBytes: number;
    readonly cacheDir: string | null;
    readonly context: unknown;
    readonly lora: LoraSettings;
    readonly adapterPath: string | null;
    readonly mergeAdapter: boolean;
  }): Promise<LoraAdapter> {
    this.cache = new VisionCache({
      maxBytes: options.maxBytes,
      dir: options.cacheDir,
      tensors: () => visionTowerTensors(this.m.params.vision),
      context: options.context,
      onWarn: (message, fields) => this.logger?.warn(message, fields),
    });
    this.adapter = LoraAdapter.attach(this.m, options.lora, this.run.seed);
    if (options.adapterPath) await this.loadAdapter(options.adapterPath);
    const adapter = this.adapter;
    if (options.mergeAdapter) {
      adapter.merge();
      this.logger?.info('LoRA adapter merged into the weights (inference only)');
    }
    return adapter;
  }

  protected get visionCache(): VisionCache {
    if (!this.cache) throw new Error(`backbone ${this.who}: init() has not been called`);
    return this.cache;
  }

  /** Hits, disk hits, misses, evictions, invalidations and size of the vision-output cache. */
  visionCacheStats(): VisionCacheStats {
    return this.visionCache.stats();
  }

  /** Fingerprint of the current vision weights (what disk cache files are named by). */
  visionFingerprint(): string {
    return this.visionCache.fingerprint();
  }

  setPrefixProvider(provider: PrefixProvider | null): void {
    this.prefix = provider;
  }

  /** The prefix provider's embeddings for history weights [B * T] over embeddings [B, T, d] (shape checked). */
  protected prefixTokens(weights: HistoryWeights, embeds: tf.Tensor3D, B: number): { embeddings: tf.Tensor3D; auxLoss?: tf.Scalar } {
    return prefixTokens(this.prefix!, weights, embeds, B);
  }

  /** Mean of the vision tower's output over each image's real patches (all its tiles). */
  async imageEmbeddings(images: readonly PreferenceImage[]): Promise<tf.Tensor2D> {
    const dv = this.m.config.vision.hiddenSize;
    const out = new Float32Array(images.length * dv);
    for (const [i, img] of images.entries()) meanOverPatches(await this.vision(img), dv, out, i * dv);
    return tf.tensor2d(out, [images.length, dv]);
  }

  adapterVariables(): tf.Variable[] {
    return this.adapter ? this.adapter.variables() : [];
  }

  async saveAdapter(dir: string): Promise<void> {
    await saveAttachedAdapter(this.adapter, dir, this.checkpointDir, this.who);
  }

  async loadAdapter(dir: string): Promise<void> {
    this.adapter = await loadAttachedAdapter(this.m, this.adapter, dir, this.logger);
  }

  dispose(): void {
    this.cache?.clearMemory();
    this.adapter?.detach();
    this.model?.dispose();
    this.model = null;
  }
}
