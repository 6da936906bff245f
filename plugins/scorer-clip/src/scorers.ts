/**
 * The CLIP-based zero-shot scorers of the paper's Table 1.
 *
 * - ClipScore: logit_scale * cos(text_embeds(prompt), image_embeds(image)), what CLIPModel's
 *   `logits_per_text` is. The paper's CLIP row (openai/clip-vit-large-patch14), PickScore
 *   (yuvalkirstain/PickScore_v1, a fine-tuned CLIP-H) and HPS v2 (an open_clip ViT-H-14 fine-tune,
 *   once converted to the HF layout) are this same computation with different weights.
 * - AestheticScore: the LAION improved aesthetic predictor: the L2-normalised CLIP ViT-L/14 image
 *   embedding through its MLP head (Linear layers only, no activation), read from safetensors.
 *   It ignores the prompt.
 */
import type { PreferenceImage, ZeroShotScorer } from '@userpref/core';
import { SafetensorsFile } from '@userpref/safetensors';
import { promises as fs } from 'fs';
import { ClipEncoder, MissingModelFileError, cosine } from './clip';
import type { AestheticOptions, ClipScoreOptions } from './options';

export class ClipScore implements ZeroShotScorer {
  private readonly encoder: ClipEncoder;

  constructor(private readonly options: ClipScoreOptions) {
    this.encoder = new ClipEncoder(options.path, 'both', options.batchSize);
  }

  async init(): Promise<void> {
    await this.encoder.init();
  }

  async score(prompt: string, images: readonly PreferenceImage[]): Promise<number[]> {
    const text = await this.encoder.textEmbedding(prompt);
    const embs = await this.encoder.imageEmbeddings(images);
    return embs.map((e) => this.options.logitScale * cosine(text, e));
  }

  async dispose(): Promise<void> {
    await this.encoder.dispose();
  }
}

/** A chain of Linear layers y = W x + b (no activation), as the LAION aesthetic MLP. */
export interface LinearLayer {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Float32Array;
  readonly bias: Float32Array;
}

/**
 * Reads `layers.<i>.weight` / `layers.<i>.bias` (the keys of the original
 * sac+logos+ava1-l14-linearMSE.pth state dict) in index order and checks that they chain.
 */
export async function readLinearChain(file: string): Promise<LinearLayer[]> {
  const ok = await fs.stat(file).then((s) => s.isFile(), () => false);
  if (!ok) throw new MissingModelFileError(file, 'aesthetic MLP head (safetensors)', 'See plugins/scorer-clip/README.md for converting the LAION .pth to safetensors.');
  const st = await SafetensorsFile.open(file);
  try {
    const indices = [...new Set(st.names().map((n) => /^layers\.(\d+)\.(weight|bias)$/.exec(n)?.[1]).filter((x): x is string => x !== undefined))].map(Number).sort((a, b) => a - b);
    if (!indices.length) throw new Error(`${file}: no tensors named layers.<i>.weight / layers.<i>.bias (found: ${st.names().slice(0, 8).join(', ')})`);
    const layers: LinearLayer[] = [];
    for (const i of indices) {
      const wName = `layers.${i}.weight`;
      const bName = `layers.${i}.bias`;
      if (!st.has(wName) || !st.has(bName)) throw new Error(`${file}: layer ${i} needs both ${wName} and ${bName}`);
      const shape = st.entry(wName).shape;
      if (shape.length !== 2) throw new Error(`${file}: ${wName} has shape [${shape}], expected [out, in]`);
      const [outF, inF] = shape;
      const bias = await st.readFloat32(bName);
      if (bias.length !== outF) throw new Error(`${file}: ${bName} has ${bias.length} values, expected ${outF}`);
      const prev = layers[layers.length - 1];
      if (prev && prev.outFeatures !== inF) throw new Error(`${file}: ${wName} takes ${inF} inputs but the previous layer gives ${prev.outFeatures}`);
      layers.push({ name: `layers.${i}`, inFeatures: inF, outFeatures: outF, weight: await st.readFloat32(wName), bias });
    }
    if (layers[layers.length - 1].outFeatures !== 1) throw new Error(`${file}: the last layer gives ${layers[layers.length - 1].outFeatures} outputs, expected 1 (a score)`);
    return layers;
  } finally {
    await st.close();
  }
}

/** Applies the chain in float64. */
export function applyLinearChain(layers: readonly LinearLayer[], x: ArrayLike<number>): number[] {
  let v = Array.from(x);
  for (const l of layers) {
    if (v.length !== l.inFeatures) throw new Error(`${l.name} takes ${l.inFeatures} inputs, got ${v.length}`);
    const out = new Array<number>(l.outFeatures);
    for (let o = 0; o < l.outFeatures; o++) {
      let s = l.bias[o];
      const row = o * l.inFeatures;
      for (let i = 0; i < l.inFeatures; i++) s += l.weight[row + i] * v[i];
      out[o] = s;
    }
    v = out;
  }
  return v;
}

export class AestheticScore implements ZeroShotScorer {
  private readonly encoder: ClipEncoder;
  private layers?: LinearLayer[];

  constructor(private readonly options: AestheticOptions) {
    this.encoder = new ClipEncoder(options.path, 'vision', options.batchSize);
  }

  async init(): Promise<void> {
    await this.encoder.init();
    this.layers = await readLinearChain(this.options.head);
  }

  /** The prompt is not used: the aesthetic predictor sees the image only. */
  async score(_prompt: string, images: readonly PreferenceImage[]): Promise<number[]> {
    if (!this.layers) throw new Error('aesthetic scorer: init() first');
    const embs = await this.encoder.imageEmbeddings(images);
    return embs.map((e) => {
      let n = 0;
      for (const v of e) n += v * v;
      n = Math.sqrt(n);
      return applyLinearChain(this.layers!, Array.from(e, (v) => v / n))[0];
    });
  }

  async dispose(): Promise<void> {
    await this.encoder.dispose();
  }
}
