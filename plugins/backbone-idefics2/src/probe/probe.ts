/**
 * The AttentionProbe of the IDEFICS2 backbone (core contract, contracts/attention.ts; offered
 * through Idefics2Backbone.attentionProbe()), built on the backbone's public API only
 * (Idefics2Backbone.idefics2: embed / textForward with outputAttentions; its own
 * Idefics2Processor for the SPEC §2 sequence).
 *
 * Why not Backbone.pairLogits: the contract returns logits only. The probe rebuilds exactly what
 * pairLogits feeds the text model for the liked-target sequence (same tokens, same image features
 * through the LoRA-adapted connector, same prefix with the same history-mean context, same right
 * padding) and asks textForward for the attention probabilities of the selected layers. A test
 * checks its logits against pairLogits, so the two cannot drift apart silently.
 *
 * Memory: textForward keeps [B, H, T, T] per requested layer. For long sequences (the 8B model,
 * ~1.9k tokens, 32 heads: ~0.5 GB per layer and sequence) request few layers per pass
 * (`layersPerPass`), at the cost of one forward per pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionProbe, AttentionSelection, PreferenceExample, PreferenceImage, PrefixProvider } from '@userpref/core';
import { historyLength, type Idefics2Backbone } from '../backbone';
import { EVAL, fillHistoryWeights, historyWeights as newHistoryWeights, prefixTokens } from '@userpref/mllm';
import { Idefics2Processor } from '../processor';
import { targetToPrefixAttention, type TargetRows } from './attention';

/** One forward's outputs; the caller disposes it. */
export interface ProbeForward {
  /** Indexed by layer: [B, H, P + T, P + T] for the requested layers, undefined elsewhere. */
  readonly attentions: Array<tf.Tensor4D | undefined>;
  /** [B, vocab] logits at each sequence's last real position. */
  readonly logits: tf.Tensor2D;
  /** Where each sequence's target image rows are (positions include the prefix). */
  readonly rows: TargetRows[];
  readonly prefixLength: number;
  /** Sequence length including the prefix. */
  readonly seqLen: number;
  dispose(): void;
}

export class Idefics2AttentionProbe implements AttentionProbe {
  private constructor(
    private readonly backbone: Idefics2Backbone,
    readonly processor: Idefics2Processor,
  ) {}

  /** A probe over an initialised backbone (adapter loaded), with the backbone's prompt settings. */
  static async create(backbone: Idefics2Backbone): Promise<Idefics2AttentionProbe> {
    const model = backbone.idefics2; // throws if init() was not called
    const processor = await Idefics2Processor.fromPretrained(backbone.checkpointDir, { usePrompt: backbone.options.usePrompt, maxPromptLen: backbone.options.maxPromptLen });
    if (processor.imageSeqLen !== model.config.perceiver.numLatents) throw new Error(`${backbone.checkpointDir}: image_seq_len ${processor.imageSeqLen} differs from the resampler's ${model.config.perceiver.numLatents} latents`);
    return new Idefics2AttentionProbe(backbone, processor);
  }

  get numLayers(): number {
    return this.backbone.idefics2.config.text.numLayers;
  }

  get numHeads(): number {
    return this.backbone.idefics2.config.text.numHeads;
  }

  /** Connector output [1, latents, d_text] of one image (vision tower + LoRA-adapted connector, eval mode). */
  private async features(image: PreferenceImage): Promise<tf.Tensor3D> {
    const rgb = await image.decode();
    const px = this.processor.preprocessImages([rgb]);
    return tf.tidy(() => this.backbone.idefics2.encodeImages(tf.tensor4d(px.pixelValues, [1, 3, px.height, px.width]), null));
  }

  /**
   * Runs the liked-target sequence of each example (target image = target.image0) with the prefix
   * and returns the attention maps of `layers`.
   */
  async forward(examples: readonly PreferenceExample[], prefix: PrefixProvider, layers: readonly number[]): Promise<ProbeForward> {
    const m = this.backbone.idefics2;
    const p = this.processor;
    const B = examples.length;
    if (B === 0) throw new Error('attention probe: no examples');
    for (const l of layers) if (!(Number.isInteger(l) && l >= 0 && l < this.numLayers)) throw new Error(`attention probe: layer ${l} is outside [0, ${this.numLayers})`);
    const encodings = examples.map((ex) => p.encodeExample(ex));
    const collated = p.collate(encodings);
    const T = collated.seqLen;

    // Unique images of the batch, in the order their <image> runs appear.
    const unique = new Map<string, { index: number; image: PreferenceImage }>();
    const slotImages: number[] = [];
    encodings.forEach((enc, b) => {
      for (const slot of enc.imageSlots) {
        const img = slot.image === 'target' ? examples[b].target.image0 : slot.image;
        let u = unique.get(img.id);
        if (!u) unique.set(img.id, (u = { index: unique.size, image: img }));
        slotImages.push(u.index);
      }
    });
    const feats: tf.Tensor3D[] = [];
    try {
      for (const { image } of unique.values()) feats.push(await this.features(image));
    } catch (e) {
      tf.dispose(feats);
      throw e;
    }

    // History weights exactly as the backbone builds PrefixContext: the mean over the tokens up to
    // and including the last <end_of_utterance> before the target image, and the liked-minus-disliked
    // direction over the reference images' tokens.
    const historyWeights = newHistoryWeights(B, T);
    const targetStarts: number[] = [];
    encodings.forEach((enc, b) => {
      const targetStart = enc.imageSlots[enc.imageSlots.length - 1].start;
      targetStarts.push(targetStart);
      const len = historyLength(enc.inputIds, targetStart, p.tokens.endOfUtterance);
      fillHistoryWeights(historyWeights, b, T, len, enc.inputIds, p.tokens.image, enc.referenceLiked.map(() => p.imageSeqLen), enc.referenceLiked);
    });

    const mask = Uint8Array.from(collated.attentionMask);
    let P = 0;
    const out = tf.tidy(() => {
      const perSlot = tf.gather(tf.concat(feats, 0), tf.tensor1d(slotImages, 'int32')) as tf.Tensor3D;
      const base = m.embed(collated.inputIds, B, T, perSlot, mask);
      const pre = prefixTokens(prefix, historyWeights, base.embeds, B);
      P = pre.embeddings.shape[1];
      const emb = m.embed(collated.inputIds, B, T, perSlot, mask, pre.embeddings);
      const res = m.textForward(emb.embeds, { attentionMask: emb.attentionMask, lastIndex: emb.lastIndex, outputAttentions: [...layers], ctx: EVAL });
      return { logits: res.logits, attentions: res.attentions ?? [] };
    });
    tf.dispose(feats);
    const rows: TargetRows[] = targetStarts.map((s, b) => ({ batchIndex: b, queryStart: P + s, queryCount: p.imageSeqLen }));
    const attentions = out.attentions;
    return {
      attentions,
      logits: out.logits,
      rows,
      prefixLength: P,
      seqLen: P + T,
      dispose: () => {
        out.logits.dispose();
        for (const a of attentions) a?.dispose();
      },
    };
  }

  async preferenceAttention(examples: readonly PreferenceExample[], prefix: PrefixProvider, selection: AttentionSelection): Promise<Float32Array[][]> {
    const layers = [...selection.layers];
    if (layers.length === 0) throw new Error('attention probe: no layers selected');
    const perPass = selection.layersPerPass && selection.layersPerPass > 0 ? selection.layersPerPass : layers.length;
    const result: Float32Array[][] = examples.map(() => []);
    for (let s = 0; s < layers.length; s += perPass) {
      const chunk = layers.slice(s, s + perPass);
      const fwd = await this.forward(examples, prefix, chunk);
      try {
        for (const l of chunk) {
          const probs = fwd.attentions[l];
          if (!probs) throw new Error(`attention probe: textForward returned no attention map for layer ${l}`);
          targetToPrefixAttention(probs, fwd.rows, fwd.prefixLength, selection.heads).forEach((v, b) => result[b].push(v));
        }
      } finally {
        fwd.dispose();
      }
    }
    return result;
  }
}
