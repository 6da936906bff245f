/**
 * Loads the weights of Idefics2ForConditionalGeneration from a Hugging Face checkpoint directory
 * (model.safetensors or shards + index) into the layouts the forward pass wants: Linear weights
 * transposed to [in, out] and fused per shared input, the Conv2d patch embedding flattened to a
 * [channels*patch*patch, hidden] matrix for a matMul over unfolded patches, the LM head as
 * [hidden, vocab].
 *
 * Tensors are read one at a time (the reader decodes bf16/f16/f32 to float32 per tensor) and
 * handed to the backend straight away, so the JavaScript heap never holds more than one fused
 * layer besides the backend's copy: two copies of the weights never exist at once. Every tensor
 * the config implies must exist with the config's shape; otherwise the error names the tensor and
 * both shapes. Tensors the model does not use are reported, not silently dropped.
 *
 * Tensor names: the released HuggingFaceM4/idefics2-8b checkpoint and transformers 5.x
 * save_pretrained use the same names (model.vision_model.*, model.connector.modality_projection.*,
 * model.connector.perceiver_resampler.*, model.text_model.*, lm_head.weight). The one other layout
 * in circulation is the bare Idefics2Model (base_model_prefix "model"), saved without the leading
 * "model."; TENSOR_NAME_ALIASES maps canonical names to such alternatives.
 */
import * as tf from '@tensorflow/tfjs-core';
import { PackedMatrix, type BaseBits } from '@userpref/quant';
import { CheckpointReader } from '@userpref/safetensors';
import type { Idefics2Config } from './config';
import { Linear, type LinearPart } from './linear';

/** Canonical-name prefix -> alternative prefixes accepted in a checkpoint, tried in order. */
export const TENSOR_NAME_ALIASES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['model.vision_model.', ['vision_model.']],
  ['model.connector.', ['connector.']],
  ['model.text_model.', ['text_model.']],
];

export interface Norm {
  readonly w: tf.Tensor1D;
  readonly b?: tf.Tensor1D;
}

export interface VisionLayerParams {
  readonly ln1: Norm;
  readonly qkv: Linear;
  readonly out: Linear;
  readonly ln2: Norm;
  readonly fc1: Linear;
  readonly fc2: Linear;
}

export interface PerceiverLayerParams {
  readonly latentsNorm: Norm;
  readonly contextNorm: Norm;
  readonly q: Linear;
  readonly kv: Linear;
  readonly o: Linear;
  readonly postNorm: Norm;
  readonly gateUp: Linear;
  readonly down: Linear;
}

export interface TextLayerParams {
  readonly inputNorm: Norm;
  readonly qkv: Linear;
  readonly o: Linear;
  readonly postNorm: Norm;
  readonly gateUp: Linear;
  readonly down: Linear;
}

export interface Idefics2Params {
  readonly vision: {
    /** [channels*patch*patch, hidden], rows in (channel, y, x) order like the Conv2d kernel. */
    readonly patchW: tf.Tensor2D;
    readonly patchB: tf.Tensor1D;
    /** [numPatchesPerSide^2, hidden] */
    readonly posEmb: tf.Tensor2D;
    readonly layers: VisionLayerParams[];
    readonly post: Norm;
  };
  readonly connector: {
    readonly projGateUp: Linear;
    readonly projDown: Linear;
    /** [latents, hidden] */
    readonly latents: tf.Tensor2D;
    readonly layers: PerceiverLayerParams[];
    readonly norm: Norm;
  };
  readonly text: {
    /** [vocab, hidden] */
    readonly embed: tf.Tensor2D;
    readonly layers: TextLayerParams[];
    readonly norm: Norm;
    /** [hidden, vocab] (single part 'lm_head') */
    readonly lmHead: Linear;
  };
}

export class Idefics2WeightsError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

export interface LoadReport {
  readonly tensorsRead: number;
  /** Checkpoint tensors the model does not use. */
  readonly unused: string[];
  /** canonical name -> name found in the checkpoint, where they differ. */
  readonly aliased: Record<string, string>;
}

export interface LoadWeightsOptions {
  onProgress?: (done: number, total: number, name: string) => void;
  /**
   * Frozen base precision: 32 = float32; 8 = int8 absmax per output channel; 4 = NF4 with blocks
   * of 64 (QLoRA). Applies to every Linear layer except the LM head (as bitsandbytes); embeddings,
   * norms and the patch embedding stay float32. Packed weights are unpacked one layer at a time.
   */
  baseBits?: BaseBits;
  /** 4 bits: quantize the NF4 block absmaxes again (QLoRA's double quantization, int8 here). */
  doubleQuant?: boolean;
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

class WeightSource {
  readonly used = new Set<string>();
  readonly aliased: Record<string, string> = {};
  done = 0;
  /** Everything created so far, disposed if loading fails half-way. */
  readonly created: tf.Tensor[] = [];
  constructor(
    private readonly reader: CheckpointReader,
    private readonly total: number,
    private readonly onProgress?: (done: number, total: number, name: string) => void,
    private readonly baseBits: BaseBits = 32,
    private readonly doubleQuant = false,
  ) {
    if (![32, 8, 4].includes(baseBits)) throw new Idefics2WeightsError(`base precision must be 32, 8 or 4 bits, got ${baseBits}`);
  }

  resolve(name: string): string | null {
    if (this.reader.has(name)) return name;
    for (const [canon, alts] of TENSOR_NAME_ALIASES) {
      if (!name.startsWith(canon)) continue;
      for (const alt of alts) {
        const cand = alt + name.slice(canon.length);
        if (this.reader.has(cand)) return cand;
      }
    }
    return null;
  }

  has(name: string): boolean {
    return this.resolve(name) !== null;
  }

  /** Reads `name`, checking its shape against what the config implies. */
  async read(name: string, shape: readonly number[]): Promise<Float32Array> {
    const actual = this.resolve(name);
    if (actual === null) throw new Idefics2WeightsError(`checkpoint ${this.reader.dir} has no tensor '${name}' (expected shape ${shapeStr(shape)} from config.json)`);
    if (actual !== name) this.aliased[name] = actual;
    const entry = this.reader.entry(actual);
    const same = entry.shape.length === shape.length && entry.shape.every((d, i) => d === shape[i]);
    if (!same) throw new Idefics2WeightsError(`tensor '${actual}' has shape ${shapeStr(entry.shape)} but config.json implies ${shapeStr(shape)}`);
    const data = await this.reader.readFloat32(actual);
    this.used.add(actual);
    this.done++;
    this.onProgress?.(this.done, this.total, actual);
    return data;
  }

  keep<T extends tf.Tensor>(t: T): T {
    this.created.push(t);
    return t;
  }

  async vector(name: string, n: number): Promise<tf.Tensor1D> {
    return this.keep(tf.tensor1d(await this.read(name, [n])));
  }

  async matrix(name: string, shape: [number, number]): Promise<tf.Tensor2D> {
    return this.keep(tf.tensor2d(await this.read(name, shape), shape));
  }

  /**
   * Reads the Linear modules `names` (HF weight [out_i, in]) into one [in, sum out_i] matrix,
   * transposed while copying, plus their biases when `bias`; or, with a packed base (and `pack`),
   * quantizes the stacked HF rows [sum out_i, in] (per output channel / per block of 64 within a
   * row, so fusing does not change the codes).
   */
  async linear(names: readonly string[], outs: readonly number[], inF: number, bias: boolean, pack = true): Promise<Linear> {
    const total = outs.reduce((a, b) => a + b, 0);
    if (pack && this.baseBits !== 32) {
      const hf = new Float32Array(total * inF);
      let row = 0;
      for (let p = 0; p < names.length; p++) {
        hf.set(await this.read(`${names[p]}.weight`, [outs[p], inF]), row * inF);
        row += outs[p];
      }
      const packed = PackedMatrix.quantize(hf, total, inF, { bits: this.baseBits, doubleQuant: this.doubleQuant });
      for (const t of packed.tensors()) this.keep(t);
      return new Linear(packed, bias ? await this.biases(names, outs, total) : null, names.map((name, i) => ({ name, out: outs[i], lora: null })));
    }
    const w = new Float32Array(inF * total);
    let col = 0;
    for (let p = 0; p < names.length; p++) {
      const out = outs[p];
      const src = await this.read(`${names[p]}.weight`, [out, inF]);
      for (let o = 0; o < out; o++) {
        const row = o * inF;
        for (let i = 0; i < inF; i++) w[i * total + col + o] = src[row + i];
      }
      col += out;
    }
    const b = bias ? await this.biases(names, outs, total) : null;
    const parts: LinearPart[] = names.map((name, i) => ({ name, out: outs[i], lora: null }));
    return new Linear(this.keep(tf.tensor2d(w, [inF, total])), b, parts);
  }

  private async biases(names: readonly string[], outs: readonly number[], total: number): Promise<tf.Tensor1D> {
    const bd = new Float32Array(total);
    let off = 0;
    for (let p = 0; p < names.length; p++) {
      bd.set(await this.read(`${names[p]}.bias`, [outs[p]]), off);
      off += outs[p];
    }
    return this.keep(tf.tensor1d(bd));
  }

  async norm(prefix: string, dim: number, withBias: boolean): Promise<Norm> {
    const w = await this.vector(`${prefix}.weight`, dim);
    return withBias ? { w, b: await this.vector(`${prefix}.bias`, dim) } : { w };
  }
}

/** Number of tensors Idefics2ForConditionalGeneration has for this config (progress totals). */
export function expectedTensorCount(c: Idefics2Config): number {
  return 3 + c.vision.numLayers * 16 + 2 + 3 + 1 + c.perceiver.depth * 10 + 1 + 1 + c.text.numLayers * 9 + 1 + 1;
}

export async function loadIdefics2Weights(dir: string, c: Idefics2Config, options: LoadWeightsOptions = {}): Promise<{ params: Idefics2Params; report: LoadReport }> {
  const reader = await CheckpointReader.open(dir);
  const src = new WeightSource(reader, expectedTensorCount(c), options.onProgress, options.baseBits ?? 32, options.doubleQuant ?? false);
  try {
    const params = await readAll(src, c);
    const unused = reader.names().filter((n) => !src.used.has(n));
    return { params, report: { tensorsRead: src.done, unused, aliased: src.aliased } };
  } catch (e) {
    for (const t of src.created) t.dispose();
    throw e;
  } finally {
    await reader.close();
  }
}

async function readAll(src: WeightSource, c: Idefics2Config): Promise<Idefics2Params> {
  const { vision: v, perceiver: p, text: t } = c;
  const vp = 'model.vision_model';
  const pp = v.numChannels * v.patchSize * v.patchSize;
  // Conv2d weight [hidden, C, p, p] -> [C*p*p, hidden]: the same transpose as a Linear.
  const convRaw = await src.read(`${vp}.embeddings.patch_embedding.weight`, [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize]);
  const patchW = new Float32Array(pp * v.hiddenSize);
  for (let o = 0; o < v.hiddenSize; o++) for (let i = 0; i < pp; i++) patchW[i * v.hiddenSize + o] = convRaw[o * pp + i];
  const patchWt = src.keep(tf.tensor2d(patchW, [pp, v.hiddenSize]));
  const patchB = await src.vector(`${vp}.embeddings.patch_embedding.bias`, v.hiddenSize);
  const posEmb = await src.matrix(`${vp}.embeddings.position_embedding.weight`, [v.numPatchesPerSide * v.numPatchesPerSide, v.hiddenSize]);
  const visionLayers: VisionLayerParams[] = [];
  const vd = v.hiddenSize;
  for (let l = 0; l < v.numLayers; l++) {
    const lp = `${vp}.encoder.layers.${l}`;
    visionLayers.push({
      ln1: await src.norm(`${lp}.layer_norm1`, vd, true),
      qkv: await src.linear([`${lp}.self_attn.q_proj`, `${lp}.self_attn.k_proj`, `${lp}.self_attn.v_proj`], [vd, vd, vd], vd, true),
      out: await src.linear([`${lp}.self_attn.out_proj`], [vd], vd, true),
      ln2: await src.norm(`${lp}.layer_norm2`, vd, true),
      fc1: await src.linear([`${lp}.mlp.fc1`], [v.intermediateSize], vd, true),
      fc2: await src.linear([`${lp}.mlp.fc2`], [vd], v.intermediateSize, true),
    });
  }
  const vision = { patchW: patchWt, patchB, posEmb, layers: visionLayers, post: await src.norm(`${vp}.post_layernorm`, vd, true) };

  const cp = 'model.connector';
  const td = t.hiddenSize;
  const mp = `${cp}.modality_projection`;
  const projGateUp = await src.linear([`${mp}.gate_proj`, `${mp}.up_proj`], [t.intermediateSize, t.intermediateSize], vd, false);
  const projDown = await src.linear([`${mp}.down_proj`], [td], t.intermediateSize, false);
  const rp = `${cp}.perceiver_resampler`;
  const latents = await src.matrix(`${rp}.latents`, [p.numLatents, p.hiddenSize]);
  const pq = p.numHeads * p.headDim;
  const pkv = p.numKvHeads * p.headDim;
  const pd = p.hiddenSize;
  const perceiverLayers: PerceiverLayerParams[] = [];
  for (let l = 0; l < p.depth; l++) {
    const lp = `${rp}.layers.${l}`;
    perceiverLayers.push({
      latentsNorm: await src.norm(`${lp}.input_latents_norm`, pd, false),
      contextNorm: await src.norm(`${lp}.input_context_norm`, pd, false),
      q: await src.linear([`${lp}.self_attn.q_proj`], [pq], pd, false),
      kv: await src.linear([`${lp}.self_attn.k_proj`, `${lp}.self_attn.v_proj`], [pkv, pkv], pd, false),
      o: await src.linear([`${lp}.self_attn.o_proj`], [pd], pq, false),
      postNorm: await src.norm(`${lp}.post_attention_layernorm`, pd, false),
      gateUp: await src.linear([`${lp}.mlp.gate_proj`, `${lp}.mlp.up_proj`], [4 * pd, 4 * pd], pd, false),
      down: await src.linear([`${lp}.mlp.down_proj`], [pd], 4 * pd, false),
    });
  }
  const connector = { projGateUp, projDown, latents, layers: perceiverLayers, norm: await src.norm(`${rp}.norm`, pd, false) };

  const tp = 'model.text_model';
  const embed = await src.matrix(`${tp}.embed_tokens.weight`, [t.vocabSize, td]);
  const qd = t.numHeads * t.headDim;
  const kvd = t.numKvHeads * t.headDim;
  const textLayers: TextLayerParams[] = [];
  for (let l = 0; l < t.numLayers; l++) {
    const lp = `${tp}.layers.${l}`;
    textLayers.push({
      inputNorm: await src.norm(`${lp}.input_layernorm`, td, false),
      qkv: await src.linear([`${lp}.self_attn.q_proj`, `${lp}.self_attn.k_proj`, `${lp}.self_attn.v_proj`], [qd, kvd, kvd], td, false),
      o: await src.linear([`${lp}.self_attn.o_proj`], [td], qd, false),
      postNorm: await src.norm(`${lp}.post_attention_layernorm`, td, false),
      gateUp: await src.linear([`${lp}.mlp.gate_proj`, `${lp}.mlp.up_proj`], [t.intermediateSize, t.intermediateSize], td, false),
      down: await src.linear([`${lp}.mlp.down_proj`], [td], t.intermediateSize, false),
    });
  }
  const norm = await src.norm(`${tp}.norm`, td, false);
  let lmHead: Linear;
  if (!src.has('lm_head.weight') && c.tieWordEmbeddings) {
    lmHead = new Linear(src.keep(tf.transpose(embed) as tf.Tensor2D), null, [{ name: 'lm_head', out: t.vocabSize, lora: null }]);
  } else {
    lmHead = await src.linear(['lm_head'], [t.vocabSize], td, false, false);
  }
  return { vision, connector, text: { embed, layers: textLayers, norm, lmHead } };
}

/** Every Linear of the model, for LoRA targeting, merging and disposal. */
export function allLinears(params: Idefics2Params): Linear[] {
  const out: Linear[] = [];
  for (const l of params.vision.layers) out.push(l.qkv, l.out, l.fc1, l.fc2);
  out.push(params.connector.projGateUp, params.connector.projDown);
  for (const l of params.connector.layers) out.push(l.q, l.kv, l.o, l.gateUp, l.down);
  for (const l of params.text.layers) out.push(l.qkv, l.o, l.gateUp, l.down);
  out.push(params.text.lmHead);
  return out;
}

export function disposeParams(params: Idefics2Params): void {
  const norms: Norm[] = [params.vision.post, params.connector.norm, params.text.norm];
  for (const l of params.vision.layers) norms.push(l.ln1, l.ln2);
  for (const l of params.connector.layers) norms.push(l.latentsNorm, l.contextNorm, l.postNorm);
  for (const l of params.text.layers) norms.push(l.inputNorm, l.postNorm);
  for (const n of norms) {
    n.w.dispose();
    n.b?.dispose();
  }
  for (const lin of allLinears(params)) lin.dispose();
  params.vision.patchW.dispose();
  params.vision.patchB.dispose();
  params.vision.posEmb.dispose();
  params.connector.latents.dispose();
  params.text.embed.dispose();
}
