/**
 * Reading a vision-language checkpoint (model.safetensors or shards + index) into the layouts the
 * forward pass wants: Linear weights transposed to [in, out] and fused per shared input, the Conv2d
 * patch embedding flattened to a [channels*patch*patch, hidden] matrix for a matMul over unfolded
 * patches, the LM head as [hidden, vocab]. The SigLIP vision tower (`model.vision_model.*`) and the
 * Llama / Mistral text model (`model.text_model.*`, `lm_head.weight`) have the same names and
 * shapes in every family here; each family reads its own connector with the same WeightSource.
 *
 * Tensors are read one at a time (the reader decodes bf16/f16/f32 to float32 per tensor) and
 * handed to the backend straight away, so the JavaScript heap never holds more than one fused
 * layer besides the backend's copy. Every tensor the config implies must exist with the config's
 * shape; otherwise the error names the tensor and both shapes. Tensors the model does not use are
 * reported, not silently dropped.
 *
 * Besides the names transformers writes, the bare model's layout (base_model_prefix "model",
 * saved without the leading "model.") is accepted: TENSOR_NAME_ALIASES maps canonical names to it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { PackedMatrix, type BaseBits } from '@userpref/quant';
import type { CheckpointReader } from '@userpref/safetensors';
import type { TextConfig, VisionConfig } from './config';
import { Linear, type LinearPart } from './linear';
import { decoderSpecs, visionTowerSpecs, type TensorSpec } from './specs';

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

export interface TextLayerParams {
  readonly inputNorm: Norm;
  readonly qkv: Linear;
  readonly o: Linear;
  readonly postNorm: Norm;
  readonly gateUp: Linear;
  readonly down: Linear;
}

/** The SigLIP vision tower's weights. */
export interface VisionTowerParams {
  /** [channels*patch*patch, hidden], rows in (channel, y, x) order like the Conv2d kernel. */
  readonly patchW: tf.Tensor2D;
  readonly patchB: tf.Tensor1D;
  /** [numPatchesPerSide^2, hidden] */
  readonly posEmb: tf.Tensor2D;
  readonly layers: VisionLayerParams[];
  readonly post: Norm;
}

/** The decoder's weights. */
export interface DecoderParams {
  /** [vocab, hidden] */
  readonly embed: tf.Tensor2D;
  readonly layers: TextLayerParams[];
  readonly norm: Norm;
  /** [hidden, vocab] (single part 'lm_head') */
  readonly lmHead: Linear;
}

/** What the vision tower reads of a model's weights. */
export interface VisionModelParams {
  readonly vision: VisionTowerParams;
}

/** What the decoder and the input-embedding merge read of a model's weights. */
export interface DecoderModelParams {
  readonly text: DecoderParams;
}

export interface LoadReport {
  readonly tensorsRead: number;
  /** Checkpoint tensors the model does not use. */
  readonly unused: string[];
  /** canonical name -> name found in the checkpoint, where they differ. */
  readonly aliased: Record<string, string>;
}

export interface WeightSourceOptions {
  /** Called after each tensor read; `total` is the family's expected tensor count (0: unknown). */
  readonly onProgress?: (done: number, total: number, name: string) => void;
  readonly total?: number;
  /**
   * Frozen base precision: 32 = float32; 8 = int8 absmax per output channel; 4 = NF4 with blocks
   * of 64 (QLoRA). Applies to every Linear read with `pack` (the LM head is not).
   */
  readonly baseBits?: BaseBits;
  /** 4 bits: quantize the NF4 block absmaxes again (QLoRA's double quantization, int8 here). */
  readonly doubleQuant?: boolean;
  /** The family's user-facing error (a missing tensor, a wrong shape). */
  readonly makeError: (message: string) => Error;
  /**
   * The model's tensor list (specs.ts): every read must be one of them with its shape, the progress
   * total is its length, and checkAllRead() confirms each was read once.
   */
  readonly specs?: readonly TensorSpec[];
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Tensors of one open checkpoint, read by canonical name with their expected shapes. */
export class WeightSource {
  readonly used = new Set<string>();
  readonly aliased: Record<string, string> = {};
  done = 0;
  /** Everything created so far, disposed if loading fails half-way. */
  readonly created: tf.Tensor[] = [];
  private readonly baseBits: BaseBits;
  private readonly doubleQuant: boolean;
  private readonly specShapes: Map<string, readonly number[]> | null;
  /** Canonical names read, in order. */
  readonly visited: string[] = [];

  constructor(
    private readonly reader: CheckpointReader,
    private readonly options: WeightSourceOptions,
  ) {
    this.baseBits = options.baseBits ?? 32;
    this.doubleQuant = options.doubleQuant ?? false;
    if (![32, 8, 4].includes(this.baseBits)) throw options.makeError(`base precision must be 32, 8 or 4 bits, got ${this.baseBits}`);
    this.specShapes = options.specs ? new Map(options.specs.map((s) => [s.name, s.shape])) : null;
  }

  /** Tensors to read in all (the spec list's length when given). */
  get total(): number {
    return this.options.specs?.length ?? this.options.total ?? 0;
  }

  /** Throws unless every tensor of the spec list was read exactly once (a reader that skipped or repeated one is a bug). */
  checkAllRead(): void {
    const specs = this.options.specs;
    if (!specs) return;
    const seen = new Set(this.visited);
    const missing = specs.filter((s) => !seen.has(s.name)).map((s) => s.name);
    if (missing.length > 0 || seen.size !== this.visited.length) {
      throw new Error(`internal: the weight reader read ${this.visited.length} tensors (${seen.size} distinct) of the ${specs.length} in the spec list; not read: ${missing.slice(0, 5).join(', ') || 'none'}`);
    }
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
    if (this.specShapes) {
      const spec = this.specShapes.get(name);
      if (!spec || spec.length !== shape.length || spec.some((d, i) => d !== shape[i])) throw new Error(`internal: the weight reader asks for '${name}' ${shapeStr(shape)}, which the spec list ${spec ? `has as ${shapeStr(spec)}` : 'does not have'}`);
    }
    const actual = this.resolve(name);
    if (actual === null) throw this.options.makeError(`checkpoint ${this.reader.dir} has no tensor '${name}' (expected shape ${shapeStr(shape)} from config.json)`);
    if (actual !== name) this.aliased[name] = actual;
    const entry = this.reader.entry(actual);
    const same = entry.shape.length === shape.length && entry.shape.every((d, i) => d === shape[i]);
    if (!same) throw this.options.makeError(`tensor '${actual}' has shape ${shapeStr(entry.shape)} but config.json implies ${shapeStr(shape)}`);
    const data = await this.reader.readFloat32(actual);
    this.used.add(actual);
    this.done++;
    this.visited.push(name);
    this.options.onProgress?.(this.done, this.total, actual);
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

/** Tensors of the vision tower (progress totals). */
export function visionTensorCount(v: VisionConfig): number {
  return visionTowerSpecs(v).length;
}

/** Tensors of the text model and the LM head (none when tied) (progress totals). */
export function decoderTensorCount(t: TextConfig, tied = false): number {
  return decoderSpecs(t, tied).length;
}

/** The SigLIP tower under `prefix` (model.vision_model). */
export async function readVisionTower(src: WeightSource, v: VisionConfig, prefix = 'model.vision_model'): Promise<VisionTowerParams> {
  const vp = prefix;
  const pp = v.numChannels * v.patchSize * v.patchSize;
  // Conv2d weight [hidden, C, p, p] -> [C*p*p, hidden]: the same transpose as a Linear.
  const convRaw = await src.read(`${vp}.embeddings.patch_embedding.weight`, [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize]);
  const patchW = new Float32Array(pp * v.hiddenSize);
  for (let o = 0; o < v.hiddenSize; o++) for (let i = 0; i < pp; i++) patchW[i * v.hiddenSize + o] = convRaw[o * pp + i];
  const patchWt = src.keep(tf.tensor2d(patchW, [pp, v.hiddenSize]));
  const patchB = await src.vector(`${vp}.embeddings.patch_embedding.bias`, v.hiddenSize);
  const posEmb = await src.matrix(`${vp}.embeddings.position_embedding.weight`, [v.numPatchesPerSide * v.numPatchesPerSide, v.hiddenSize]);
  const layers: VisionLayerParams[] = [];
  const vd = v.hiddenSize;
  for (let l = 0; l < v.numLayers; l++) {
    const lp = `${vp}.encoder.layers.${l}`;
    layers.push({
      ln1: await src.norm(`${lp}.layer_norm1`, vd, true),
      qkv: await src.linear([`${lp}.self_attn.q_proj`, `${lp}.self_attn.k_proj`, `${lp}.self_attn.v_proj`], [vd, vd, vd], vd, true),
      out: await src.linear([`${lp}.self_attn.out_proj`], [vd], vd, true),
      ln2: await src.norm(`${lp}.layer_norm2`, vd, true),
      fc1: await src.linear([`${lp}.mlp.fc1`], [v.intermediateSize], vd, true),
      fc2: await src.linear([`${lp}.mlp.fc2`], [vd], v.intermediateSize, true),
    });
  }
  return { patchW: patchWt, patchB, posEmb, layers, post: await src.norm(`${vp}.post_layernorm`, vd, true) };
}

/**
 * The text model under `prefix` (model.text_model) and the LM head: with `tied`, the head is the
 * embedding matrix (`tiedHead`), as transformers ties it. The head is never packed.
 */
export async function readDecoder(src: WeightSource, t: TextConfig, tied: boolean, prefix = 'model.text_model'): Promise<{ text: DecoderParams; tiedHead: boolean }> {
  const tp = prefix;
  const td = t.hiddenSize;
  const embed = await src.matrix(`${tp}.embed_tokens.weight`, [t.vocabSize, td]);
  const qd = t.numHeads * t.headDim;
  const kvd = t.numKvHeads * t.headDim;
  const layers: TextLayerParams[] = [];
  for (let l = 0; l < t.numLayers; l++) {
    const lp = `${tp}.layers.${l}`;
    layers.push({
      inputNorm: await src.norm(`${lp}.input_layernorm`, td, false),
      qkv: await src.linear([`${lp}.self_attn.q_proj`, `${lp}.self_attn.k_proj`, `${lp}.self_attn.v_proj`], [qd, kvd, kvd], td, t.attentionBias),
      o: await src.linear([`${lp}.self_attn.o_proj`], [td], qd, t.attentionBias),
      postNorm: await src.norm(`${lp}.post_attention_layernorm`, td, false),
      gateUp: await src.linear([`${lp}.mlp.gate_proj`, `${lp}.mlp.up_proj`], [t.intermediateSize, t.intermediateSize], td, t.mlpBias),
      down: await src.linear([`${lp}.mlp.down_proj`], [td], t.intermediateSize, t.mlpBias),
    });
  }
  const norm = await src.norm(`${tp}.norm`, td, false);
  // As transformers' tie_weights: with tied embeddings the head IS the embedding, whether or not
  // the file also holds an lm_head.weight (which is then reported unused).
  const tiedHead = tied;
  const lmHead = tiedHead
    ? new Linear(src.keep(tf.transpose(embed) as tf.Tensor2D), null, [{ name: 'lm_head', out: t.vocabSize, lora: null }])
    : await src.linear(['lm_head'], [t.vocabSize], td, false, false);
  return { text: { embed, layers, norm, lmHead }, tiedHead };
}

/** The vision tower's Linears (LoRA targeting, merging, disposal). */
export function visionLinears(v: VisionTowerParams): Linear[] {
  const out: Linear[] = [];
  for (const l of v.layers) out.push(l.qkv, l.out, l.fc1, l.fc2);
  return out;
}

/** The decoder's Linears, the LM head last. */
export function decoderLinears(t: DecoderParams): Linear[] {
  const out: Linear[] = [];
  for (const l of t.layers) out.push(l.qkv, l.o, l.gateUp, l.down);
  out.push(t.lmHead);
  return out;
}

export function disposeNorms(norms: readonly Norm[]): void {
  for (const n of norms) {
    n.w.dispose();
    n.b?.dispose();
  }
}

/** The tower's norms (a model disposes them with disposeNorms, its Linears all at once). */
export function visionNorms(v: VisionTowerParams): Norm[] {
  const norms: Norm[] = [v.post];
  for (const l of v.layers) norms.push(l.ln1, l.ln2);
  return norms;
}

export function decoderNorms(t: DecoderParams): Norm[] {
  const norms: Norm[] = [t.norm];
  for (const l of t.layers) norms.push(l.inputNorm, l.postNorm);
  return norms;
}
