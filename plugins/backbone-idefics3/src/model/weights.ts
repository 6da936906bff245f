/**
 * Loads the weights of Idefics3ForConditionalGeneration from a Hugging Face checkpoint directory
 * (model.safetensors or shards + index) into the IDEFICS2 plugin's layouts: the vision tower and
 * the text model are exactly its `Idefics2Params['vision']` / `['text']` (Linear weights [in, out],
 * fused q|k|v and gate|up, the patch Conv2d as a matrix), so its forward code runs them. The
 * connector is one Linear: modality_projection.proj [d_vision * s^2 -> d_text], no bias.
 *
 * Tensor names are those transformers writes (model.vision_model.*, model.connector.*,
 * model.text_model.*, lm_head.weight); the bare Idefics3Model layout without the leading "model."
 * is accepted too. With tie_word_embeddings and no lm_head.weight in the file (SmolVLM 256M /
 * 500M), the LM head is the embedding matrix. Every tensor the config implies must exist with the
 * config's shape; unused tensors are reported.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, type Idefics2Params, type Norm, type TextLayerParams, type VisionLayerParams } from '@userpref/backbone-idefics2';
import { CheckpointReader } from '@userpref/safetensors';
import type { Idefics3Config } from './config';

export const TENSOR_NAME_ALIASES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['model.vision_model.', ['vision_model.']],
  ['model.connector.', ['connector.']],
  ['model.text_model.', ['text_model.']],
];

export interface Idefics3Params {
  readonly vision: Idefics2Params['vision'];
  readonly connector: {
    /** [d_vision * s^2, d_text], part 'model.connector.modality_projection.proj'. */
    readonly proj: Linear;
  };
  readonly text: Idefics2Params['text'];
}

export class Idefics3WeightsError extends Error {
  readonly expected = true;
}

export interface LoadReport {
  readonly tensorsRead: number;
  readonly unused: string[];
  readonly aliased: Record<string, string>;
  /** The LM head was taken from the embedding matrix (tied, no lm_head.weight in the file). */
  readonly tiedHead: boolean;
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

class WeightSource {
  readonly used = new Set<string>();
  readonly aliased: Record<string, string> = {};
  readonly created: tf.Tensor[] = [];
  constructor(private readonly reader: CheckpointReader) {}

  resolve(name: string): string | null {
    if (this.reader.has(name)) return name;
    for (const [canon, alts] of TENSOR_NAME_ALIASES) {
      if (!name.startsWith(canon)) continue;
      for (const alt of alts) if (this.reader.has(alt + name.slice(canon.length))) return alt + name.slice(canon.length);
    }
    return null;
  }

  async read(name: string, shape: readonly number[]): Promise<Float32Array> {
    const actual = this.resolve(name);
    if (actual === null) throw new Idefics3WeightsError(`checkpoint ${this.reader.dir} has no tensor '${name}' (expected shape ${shapeStr(shape)} from config.json)`);
    if (actual !== name) this.aliased[name] = actual;
    const entry = this.reader.entry(actual);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new Idefics3WeightsError(`tensor '${actual}' has shape ${shapeStr(entry.shape)} but config.json implies ${shapeStr(shape)}`);
    }
    const data = await this.reader.readFloat32(actual);
    this.used.add(actual);
    return data;
  }

  keep<T extends tf.Tensor>(t: T): T {
    this.created.push(t);
    return t;
  }

  async vector(name: string, n: number): Promise<tf.Tensor1D> {
    return this.keep(tf.tensor1d(await this.read(name, [n])));
  }

  /** Linear modules `names` (HF [out_i, in]) fused into one [in, sum out_i] weight. */
  async linear(names: readonly string[], outs: readonly number[], inF: number, bias: boolean): Promise<Linear> {
    const total = outs.reduce((a, b) => a + b, 0);
    const w = new Float32Array(inF * total);
    let col = 0;
    for (let p = 0; p < names.length; p++) {
      const src = await this.read(`${names[p]}.weight`, [outs[p], inF]);
      for (let o = 0; o < outs[p]; o++) for (let i = 0; i < inF; i++) w[i * total + col + o] = src[o * inF + i];
      col += outs[p];
    }
    let b: tf.Tensor1D | null = null;
    if (bias) {
      const bd = new Float32Array(total);
      let off = 0;
      for (let p = 0; p < names.length; p++) {
        bd.set(await this.read(`${names[p]}.bias`, [outs[p]]), off);
        off += outs[p];
      }
      b = this.keep(tf.tensor1d(bd));
    }
    return new Linear(this.keep(tf.tensor2d(w, [inF, total])), b, names.map((name, i) => ({ name, out: outs[i], lora: null })));
  }

  async norm(prefix: string, dim: number, withBias: boolean): Promise<Norm> {
    const w = await this.vector(`${prefix}.weight`, dim);
    return withBias ? { w, b: await this.vector(`${prefix}.bias`, dim) } : { w };
  }
}

export async function loadIdefics3Weights(dir: string, c: Idefics3Config): Promise<{ params: Idefics3Params; report: LoadReport }> {
  const reader = await CheckpointReader.open(dir);
  const src = new WeightSource(reader);
  try {
    const { params, tiedHead } = await readAll(src, c);
    const unused = reader.names().filter((n) => !src.used.has(n));
    return { params, report: { tensorsRead: src.used.size, unused, aliased: src.aliased, tiedHead } };
  } catch (e) {
    for (const t of src.created) t.dispose();
    throw e;
  } finally {
    await reader.close();
  }
}

async function readAll(src: WeightSource, c: Idefics3Config): Promise<{ params: Idefics3Params; tiedHead: boolean }> {
  const { vision: v, text: t } = c;
  const vp = 'model.vision_model';
  const pp = v.numChannels * v.patchSize * v.patchSize;
  const conv = await src.read(`${vp}.embeddings.patch_embedding.weight`, [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize]);
  const patchW = new Float32Array(pp * v.hiddenSize);
  for (let o = 0; o < v.hiddenSize; o++) for (let i = 0; i < pp; i++) patchW[i * v.hiddenSize + o] = conv[o * pp + i];
  const vd = v.hiddenSize;
  const layers: VisionLayerParams[] = [];
  const patchWt = src.keep(tf.tensor2d(patchW, [pp, vd]));
  const patchB = await src.vector(`${vp}.embeddings.patch_embedding.bias`, vd);
  const npos = v.numPatchesPerSide * v.numPatchesPerSide;
  const posEmb = src.keep(tf.tensor2d(await src.read(`${vp}.embeddings.position_embedding.weight`, [npos, vd]), [npos, vd]));
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
  const vision = { patchW: patchWt, patchB, posEmb, layers, post: await src.norm(`${vp}.post_layernorm`, vd, true) };

  const td = t.hiddenSize;
  const proj = await src.linear(['model.connector.modality_projection.proj'], [td], vd * c.scaleFactor * c.scaleFactor, false);

  const tp = 'model.text_model';
  const embed = src.keep(tf.tensor2d(await src.read(`${tp}.embed_tokens.weight`, [t.vocabSize, td]), [t.vocabSize, td]));
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
  const tiedHead = c.tieWordEmbeddings && src.resolve('lm_head.weight') === null;
  const lmHead = tiedHead
    ? new Linear(src.keep(tf.transpose(embed) as tf.Tensor2D), null, [{ name: 'lm_head', out: t.vocabSize, lora: null }])
    : await src.linear(['lm_head'], [t.vocabSize], td, false);
  return { params: { vision, connector: { proj }, text: { embed, layers: textLayers, norm, lmHead } }, tiedHead };
}

/** Every Linear of the model (LoRA targeting, merging, disposal). */
export function allLinears(p: Idefics3Params): Linear[] {
  const out: Linear[] = [];
  for (const l of p.vision.layers) out.push(l.qkv, l.out, l.fc1, l.fc2);
  out.push(p.connector.proj);
  for (const l of p.text.layers) out.push(l.qkv, l.o, l.gateUp, l.down);
  out.push(p.text.lmHead);
  return out;
}

export function disposeParams(p: Idefics3Params): void {
  const norms: Norm[] = [p.vision.post, p.text.norm];
  for (const l of p.vision.layers) norms.push(l.ln1, l.ln2);
  for (const l of p.text.layers) norms.push(l.inputNorm, l.postNorm);
  for (const n of norms) {
    n.w.dispose();
    n.b?.dispose();
  }
  for (const lin of allLinears(p)) lin.dispose();
  tf.dispose([p.vision.patchW, p.vision.patchB, p.vision.posEmb, p.text.embed]);
}
