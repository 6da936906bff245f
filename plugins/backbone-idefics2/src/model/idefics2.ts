/**
 * Idefics2ForConditionalGeneration in tfjs: loads a Hugging Face checkpoint directory and runs
 * vision tower -> connector -> Mistral text model -> LM head, float32.
 *
 * The API is split along what training needs: `visionTower` (frozen: cache its output per image),
 * `connector` (LoRA-adapted), `embed` (token embeddings with image features merged, optional
 * prefix), `textForward` (last-position logits). `forward` chains them for a plain batch.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Idefics2ConfigError, parseIdefics2Config, type Idefics2Config } from './config';
import { EVAL, embedSequences, textForward, visionTower, type EmbeddedBatch, type Linear, type RunContext, type TextForwardOptions, type TextForwardResult, type VisionOutput } from '@userpref/mllm';
import { connector } from './connector';
import { allLinears, disposeParams, loadIdefics2Weights, type Idefics2Params, type LoadReport, type LoadWeightsOptions } from './weights';
import { exportIdefics2Weights, saveIdefics2Checkpoint, type ExportedTensor, type SaveCheckpointOptions } from './export';
import { makeBaseTrainable, type TrainableBaseOptions, type TrainableWeight } from './trainable';

export type { EmbeddedBatch } from '@userpref/mllm';

export interface ForwardInputs {
  /** [B*T] token ids, right padded. */
  readonly inputIds: ArrayLike<number>;
  readonly batch: number;
  readonly seqLen: number;
  /** [B*T] 1 = real token; default all real. */
  readonly attentionMask?: ArrayLike<number>;
  /** [nImages, C, H, W]: the images of the batch in the order their <image> tokens appear. */
  readonly pixelValues?: tf.Tensor4D;
  /** [nImages * H * W] 1 = real pixel; default all real. */
  readonly pixelAttentionMask?: ArrayLike<number> | null;
  /** [B, P, d] embeddings prepended before BOS of every sequence. */
  readonly prefix?: tf.Tensor3D;
}

export class Idefics2Model {
  private constructor(
    readonly config: Idefics2Config,
    readonly params: Idefics2Params,
    readonly loadReport: LoadReport,
    readonly dir: string,
  ) {}

  /** Loads `dir`/config.json and the weights; fails naming the key / tensor at fault. */
  static async load(dir: string, options: LoadWeightsOptions = {}): Promise<Idefics2Model> {
    const file = path.join(dir, 'config.json');
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      throw new Idefics2ConfigError(`cannot read ${file}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Idefics2ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    const config = parseIdefics2Config(json, file);
    const { params, report } = await loadIdefics2Weights(dir, config, options);
    return new Idefics2Model(config, params, report, dir);
  }

  /** Every Linear (each part named like the Hugging Face module), for LoRA. */
  linears(): Linear[] {
    return allLinears(this.params);
  }

  visionTower(pixelValues: tf.Tensor4D, pixelAttentionMask: ArrayLike<number> | null = null, ctx: RunContext = EVAL): VisionOutput {
    return visionTower(this.params, this.config, pixelValues, pixelAttentionMask, ctx);
  }

  connector(hidden: tf.Tensor3D, patchValid: ArrayLike<number> | null, ctx: RunContext = EVAL): tf.Tensor3D {
    return connector(this.params, this.config, hidden, patchValid, ctx);
  }

  /** Vision tower + connector: [n, C, H, W] -> [n, latents, d_text]. */
  encodeImages(pixelValues: tf.Tensor4D, pixelAttentionMask: ArrayLike<number> | null = null, ctx: RunContext = EVAL): tf.Tensor3D {
    const vis = this.visionTower(pixelValues, pixelAttentionMask, ctx);
    try {
      return this.connector(vis.hidden, vis.patchValid, ctx);
    } finally {
      vis.hidden.dispose();
    }
  }

  /**
   * Input embeddings with image features merged and an optional prefix prepended; returns the mask
   * and last real index of the grown sequences.
   */
  embed(inputIds: ArrayLike<number>, B: number, T: number, imageFeatures: tf.Tensor3D | null, attentionMask?: ArrayLike<number>, prefix?: tf.Tensor3D): EmbeddedBatch {
    return embedSequences(this.params, this.config, inputIds, B, T, imageFeatures, attentionMask, prefix);
  }

  textForward(embeds: tf.Tensor3D, options: TextForwardOptions): TextForwardResult {
    return textForward(this.params, this.config, embeds, options);
  }

  /** Full forward of a right-padded batch: last-position logits [B, vocab] (and extras). */
  forward(inputs: ForwardInputs, options: Omit<TextForwardOptions, 'attentionMask' | 'lastIndex' | 'ctx'> & { ctx?: RunContext } = {}): TextForwardResult {
    const ctx = options.ctx ?? EVAL;
    const { batch: B, seqLen: T } = inputs;
    if (inputs.inputIds.length !== B * T) throw new Error(`inputIds has ${inputs.inputIds.length} entries for a [${B}, ${T}] batch`);
    const feats = inputs.pixelValues ? this.encodeImages(inputs.pixelValues, inputs.pixelAttentionMask ?? null, ctx) : null;
    try {
      const emb = this.embed(inputs.inputIds, B, T, feats, inputs.attentionMask, inputs.prefix);
      try {
        return this.textForward(emb.embeds, { ...options, attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx });
      } finally {
        emb.embeds.dispose();
      }
    } finally {
      feats?.dispose();
    }
  }

  /**
   * Full-parameter training: the base weights (without the vision tower unless asked) as trainable
   * tf.Variables, converted in place (see ./trainable.ts).
   */
  trainableBaseVariables(options: TrainableBaseOptions = {}): TrainableWeight[] {
    return makeBaseTrainable(this.params, this.config, options);
  }

  /** Every weight under its Hugging Face name and layout (fusions and transposes undone; ./export.ts). */
  exportWeights(): ExportedTensor[] {
    return exportIdefics2Weights(this.params, this.config);
  }

  /** Writes a Hugging Face checkpoint directory of the current weights (non-weight files copied from `sourceDir`, default the loaded one). */
  async saveCheckpoint(dir: string, options: SaveCheckpointOptions = {}): Promise<string[]> {
    return saveIdefics2Checkpoint(this.params, this.config, dir, { ...options, sourceDir: options.sourceDir ?? this.dir });
  }

  dispose(): void {
    disposeParams(this.params);
  }
}
