/**
 * Idefics3ForConditionalGeneration in tfjs (SmolVLM included): SigLIP vision tower per tile ->
 * connector (pixel shuffle by scale_factor, then one linear modality projection) -> Llama text
 * model -> LM head, float32.
 *
 * The vision tower, the input-embedding merge and the decoder are @userpref/mllm's, shared with
 * IDEFICS2 (`visionTower`, `mergeInputEmbeddings`, `textForward`, `textForwardPacked`, `runPrefix`):
 * they read only the `vision` / `text` parts of params and config, which this model has in their
 * layout. The connector is the new part.
 *
 * Tiles: the processor turns one image into rows x cols tiles plus a global image (or the global
 * image alone), each image_size x image_size pixels, so every tile is a full patch grid (no pixel
 * mask) and gives imageSeqLen tokens; features of an image are its tiles' in processor order.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { EVAL, embedSequences, textForward, visionTower, type EmbeddedBatch, type Linear, type RunContext as ForwardContext, type TextForwardOptions, type TextForwardResult } from '@userpref/mllm';
import { Idefics3ConfigError, parseIdefics3Config, type Idefics3Config } from './config';
import { allLinears, disposeParams, loadIdefics3Weights, type Idefics3Params, type LoadReport } from './weights';

export type { EmbeddedBatch } from '@userpref/mllm';

/**
 * transformers' Idefics3Connector.pixel_shuffle: x [n, seq, D] (seq = side^2 patches, row-major)
 * -> [n, seq / s^2, D s^2]; token (i, j) of the (side/s)^2 grid concatenates the s x s patches
 * (rows i*s.., columns j*s..) in the order of transformers' view/permute sequence.
 */
export function pixelShuffle(x: tf.Tensor3D, s: number): tf.Tensor3D {
  const [n, seq, D] = x.shape;
  const side = Math.round(Math.sqrt(seq));
  if (side * side !== seq) throw new Error(`pixel shuffle needs a square patch grid; got ${seq} patches`);
  if (side % s !== 0) throw new Error(`pixel shuffle: scale factor ${s} does not divide ${side} patches per side`);
  return tf.tidy(() => {
    const a = tf.transpose(tf.reshape(x, [n, side, side / s, D * s]), [0, 2, 1, 3]);
    const b = tf.transpose(tf.reshape(a, [n, side / s, side / s, D * s * s]), [0, 2, 1, 3]);
    return tf.reshape(b, [n, seq / (s * s), D * s * s]) as tf.Tensor3D;
  });
}

export class Idefics3Model {
  private constructor(
    readonly config: Idefics3Config,
    readonly params: Idefics3Params,
    readonly loadReport: LoadReport,
    readonly dir: string,
  ) {}

  static async load(dir: string): Promise<Idefics3Model> {
    const file = path.join(dir, 'config.json');
    let json: unknown;
    try {
      json = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch (e) {
      throw new Idefics3ConfigError(`cannot read ${file}: ${(e as Error).message}`);
    }
    const config = parseIdefics3Config(json, file);
    const { params, report } = await loadIdefics3Weights(dir, config);
    return new Idefics3Model(config, params, report, dir);
  }

  /** Every Linear, each part named like the Hugging Face module (LoRA targets). */
  linears(): Linear[] {
    return allLinears(this.params);
  }

  /** Vision tower on tiles [n, C, S, S] (full patch grids) -> [n, patches, d_vision]. */
  visionTower(pixelValues: tf.Tensor4D, ctx: ForwardContext = EVAL): tf.Tensor3D {
    const out = visionTower(this.params, this.config, pixelValues, null, ctx);
    return out.hidden;
  }

  /** Connector: vision output [n, patches, d_vision] -> [n, imageSeqLen, d_text]. */
  connector(hidden: tf.Tensor3D, ctx: ForwardContext = EVAL): tf.Tensor3D {
    const [n, P, dv] = hidden.shape;
    const s = this.config.scaleFactor;
    return tf.tidy(() => {
      const shuffled = pixelShuffle(hidden, s);
      const L = P / (s * s);
      const out = this.params.connector.proj.apply1(tf.reshape(shuffled, [n * L, dv * s * s]) as tf.Tensor2D, ctx);
      return tf.reshape(out, [n, L, this.config.text.hiddenSize]) as tf.Tensor3D;
    });
  }

  /** Vision tower + connector. */
  encodeTiles(pixelValues: tf.Tensor4D, ctx: ForwardContext = EVAL): tf.Tensor3D {
    const hidden = this.visionTower(pixelValues, ctx);
    try {
      return this.connector(hidden, ctx);
    } finally {
      hidden.dispose();
    }
  }

  /**
   * Input embeddings of right-padded ids [B*T] with the tile features [tiles, imageSeqLen, d]
   * placed in order at the <image> tokens, and optional rows [B, P, d] prepended before the first
   * token of every sequence (preference tokens).
   */
  embed(inputIds: ArrayLike<number>, B: number, T: number, features: tf.Tensor3D | null, attentionMask?: ArrayLike<number>, prefix?: tf.Tensor3D): EmbeddedBatch {
    return embedSequences(this.params, this.config, inputIds, B, T, features, attentionMask, prefix);
  }

  textForward(embeds: tf.Tensor3D, options: TextForwardOptions): TextForwardResult {
    return textForward(this.params, this.config, embeds, options);
  }

  /**
   * Last-position logits [B, vocab] of a right-padded batch whose images are given as tiles
   * [n, C, S, S] in the order their <image> tokens appear.
   */
  forward(inputIds: ArrayLike<number>, B: number, T: number, tiles: tf.Tensor4D | null, attentionMask?: ArrayLike<number>): tf.Tensor2D {
    const feats = tiles ? this.encodeTiles(tiles) : null;
    try {
      const emb = this.embed(inputIds, B, T, feats, attentionMask);
      try {
        return this.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, ctx: EVAL }).logits;
      } finally {
        emb.embeds.dispose();
      }
    } finally {
      feats?.dispose();
    }
  }

  dispose(): void {
    disposeParams(this.params);
  }
}
