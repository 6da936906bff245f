/**
 * The inverse of weights.ts: the model's tensors back under their Hugging Face names and layouts,
 * and a whole checkpoint directory written from a (possibly trained) model, so a full-parameter
 * training (apps/pretrain) leaves a checkpoint that transformers and this loader both read.
 *
 * The loader transposed every Linear to [in, out] and fused q|k|v, gate|up and k|v column-wise;
 * the Conv2d patch embedding became a [C*p*p, hidden] matrix; the LM head is [hidden, vocab].
 * Here each fused Linear is split by its parts' widths (the parts keep their HF module names) and
 * transposed back to [out, in]; the patch matrix goes back to [hidden, C, p, p]. Tensors are listed
 * in the order of the spec list (model/specs.ts), i.e. of the modules in modeling_idefics2.py (what save_pretrained and the random
 * checkpoint writer produce), so exporting a freshly loaded F32 or BF16 checkpoint gives the same
 * bytes. With tie_word_embeddings, lm_head is not written (transformers ties it on load).
 *
 * LoRA adapters attached to the model are NOT folded in: merge them first (LoraAdapter.merge) if
 * that is wanted; a part with an attached adapter is an error, so nothing is silently dropped.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { inSpecOrder } from '@userpref/mllm';
import { TORCH_DTYPE, writeShardedCheckpoint, type TensorToWrite, type WeightDtype } from '@userpref/safetensors';
import type { Idefics2Config } from './config';
import type { Linear } from '@userpref/mllm';
import { idefics2TensorSpecs } from './specs';
import type { Idefics2Params, Norm } from './weights';

export interface ExportedTensor {
  /** Canonical Hugging Face name (model.vision_model.*, model.connector.*, model.text_model.*, lm_head.weight). */
  readonly name: string;
  /** Hugging Face shape (Linear weights [out, in], the patch Conv2d [hidden, C, p, p]). */
  readonly shape: number[];
  readonly data: Float32Array;
}

/** On-disk dtype of exported weights. */
export type ExportDtype = WeightDtype;

export interface SaveCheckpointOptions {
  /** On-disk dtype of the weights (default F32); config.json's torch_dtype follows. */
  dtype?: ExportDtype;
  /**
   * Directory whose non-weight files (config.json, tokenizer, processor, generation config, chat
   * template, ...) are copied next to the weights. Default: the directory the model was loaded from.
   */
  sourceDir?: string;
  /** Largest shard in bytes (default 5 GiB, as save_pretrained). */
  maxShardBytes?: number;
  /** Extra entries for the safetensors header's __metadata__ (strings; "format": "pt" is always set). */
  metadata?: Record<string, string>;
  /** Extra top-level keys merged into config.json (e.g. "_name_or_path"). */
  configOverrides?: Record<string, unknown>;
}

/** The weight files of a checkpoint directory (never copied from the source). */
const WEIGHT_FILE = /^(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?$/;

export class Idefics2ExportError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

function values(t: tf.Tensor): Float32Array {
  if (t.isDisposed) throw new Idefics2ExportError('a weight tensor of the model has been disposed');
  return t.dataSync() as Float32Array;
}

/** A Linear back to one HF weight [out, in] (and bias) per part. */
function splitLinear(lin: Linear, out: ExportedTensor[], bias: boolean): void {
  // A packed base exports its dequantized float32 values.
  const fw = lin.frozenWeight();
  const inF = fw.w.shape[0];
  const total = fw.w.shape[1];
  const w = values(fw.w);
  if (fw.owned) fw.w.dispose();
  const b = lin.b ? values(lin.b) : null;
  if (bias !== (b !== null)) throw new Idefics2ExportError(`Linear ${lin.parts.map((p) => p.name).join('|')}: expected ${bias ? 'a bias' : 'no bias'}`);
  let col = 0;
  for (const part of lin.parts) {
    if (part.lora) throw new Idefics2ExportError(`'${part.name}' has a LoRA adapter attached; merge it (LoraAdapter.merge) or detach it before exporting the base weights`);
    const hf = new Float32Array(part.out * inF);
    for (let o = 0; o < part.out; o++) {
      const row = o * inF;
      const c = col + o;
      for (let i = 0; i < inF; i++) hf[row + i] = w[i * total + c];
    }
    out.push({ name: `${part.name}.weight`, shape: [part.out, inF], data: hf });
    if (b) out.push({ name: `${part.name}.bias`, shape: [part.out], data: b.slice(col, col + part.out) });
    col += part.out;
  }
}

function pushNorm(prefix: string, n: Norm, out: ExportedTensor[]): void {
  out.push({ name: `${prefix}.weight`, shape: [...n.w.shape], data: values(n.w).slice() });
  if (n.b) out.push({ name: `${prefix}.bias`, shape: [...n.b.shape], data: values(n.b).slice() });
}

function pushPlain(name: string, t: tf.Tensor, out: ExportedTensor[]): void {
  out.push({ name, shape: [...t.shape], data: values(t).slice() });
}

/** Every weight of the model under its Hugging Face name and layout, in modeling_idefics2.py order. */
export function exportIdefics2Weights(params: Idefics2Params, c: Idefics2Config): ExportedTensor[] {
  const out: ExportedTensor[] = [];
  const v = c.vision;
  const vp = 'model.vision_model';
  const pp = v.numChannels * v.patchSize * v.patchSize;
  const patch = values(params.vision.patchW);
  const conv = new Float32Array(pp * v.hiddenSize);
  for (let o = 0; o < v.hiddenSize; o++) for (let i = 0; i < pp; i++) conv[o * pp + i] = patch[i * v.hiddenSize + o];
  out.push({ name: `${vp}.embeddings.patch_embedding.weight`, shape: [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize], data: conv });
  pushPlain(`${vp}.embeddings.patch_embedding.bias`, params.vision.patchB, out);
  pushPlain(`${vp}.embeddings.position_embedding.weight`, params.vision.posEmb, out);
  params.vision.layers.forEach((l, i) => {
    const lp = `${vp}.encoder.layers.${i}`;
    // The fused q|k|v comes out as q, k, v; inSpecOrder puts it in SiglipEncoderLayer's k, v, q order.
    splitLinear(l.qkv, out, true);
    splitLinear(l.out, out, true);
    pushNorm(`${lp}.layer_norm1`, l.ln1, out);
    splitLinear(l.fc1, out, true);
    splitLinear(l.fc2, out, true);
    pushNorm(`${lp}.layer_norm2`, l.ln2, out);
  });
  pushNorm(`${vp}.post_layernorm`, params.vision.post, out);

  const cn = params.connector;
  splitLinear(cn.projGateUp, out, false);
  splitLinear(cn.projDown, out, false);
  const rp = 'model.connector.perceiver_resampler';
  pushPlain(`${rp}.latents`, cn.latents, out);
  cn.layers.forEach((l, i) => {
    const lp = `${rp}.layers.${i}`;
    pushNorm(`${lp}.input_latents_norm`, l.latentsNorm, out);
    pushNorm(`${lp}.input_context_norm`, l.contextNorm, out);
    splitLinear(l.q, out, false);
    splitLinear(l.kv, out, false);
    splitLinear(l.o, out, false);
    pushNorm(`${lp}.post_attention_layernorm`, l.postNorm, out);
    splitLinear(l.gateUp, out, false);
    splitLinear(l.down, out, false);
  });
  pushNorm(`${rp}.norm`, cn.norm, out);

  const tp = 'model.text_model';
  pushPlain(`${tp}.embed_tokens.weight`, params.text.embed, out);
  params.text.layers.forEach((l, i) => {
    const lp = `${tp}.layers.${i}`;
    splitLinear(l.qkv, out, false);
    splitLinear(l.o, out, false);
    splitLinear(l.gateUp, out, false);
    splitLinear(l.down, out, false);
    pushNorm(`${lp}.input_layernorm`, l.inputNorm, out);
    pushNorm(`${lp}.post_attention_layernorm`, l.postNorm, out);
  });
  pushNorm(`${tp}.norm`, params.text.norm, out);
  if (!c.tieWordEmbeddings) splitLinear(params.text.lmHead, out, false);
  return inSpecOrder(out, idefics2TensorSpecs(c), (m) => new Idefics2ExportError(m));
}

/**
 * Writes `dir` as a Hugging Face checkpoint of the model: the non-weight files of `sourceDir`
 * copied (config.json with torch_dtype set to the written dtype), then model.safetensors (or
 * shards + index). Deterministic: the same weights give the same bytes. Returns the files written.
 */
export async function saveIdefics2Checkpoint(params: Idefics2Params, c: Idefics2Config, dir: string, options: SaveCheckpointOptions & { sourceDir: string }): Promise<string[]> {
  const dtype = options.dtype ?? 'F32';
  if (!(dtype in TORCH_DTYPE)) throw new Idefics2ExportError(`dtype must be F32, F16 or BF16, got '${dtype}'`);
  const src = path.resolve(options.sourceDir);
  const dst = path.resolve(dir);
  if (src === dst) throw new Idefics2ExportError(`refusing to overwrite the checkpoint the model was loaded from (${src}); choose another directory`);
  const tensors = exportIdefics2Weights(params, c);
  await fs.mkdir(dst, { recursive: true });
  for (const f of await fs.readdir(dst)) if (WEIGHT_FILE.test(f)) await fs.rm(path.join(dst, f));
  const files: string[] = [];
  let sawConfig = false;
  for (const entry of (await fs.readdir(src, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isFile() || WEIGHT_FILE.test(entry.name)) continue;
    const to = path.join(dst, entry.name);
    if (entry.name === 'config.json') {
      sawConfig = true;
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(await fs.readFile(path.join(src, entry.name), 'utf8'));
      } catch (e) {
        throw new Idefics2ExportError(`${path.join(src, entry.name)}: not valid JSON (${(e as Error).message})`);
      }
      json = { ...json, ...(options.configOverrides ?? {}), torch_dtype: TORCH_DTYPE[dtype] };
      const text = json.text_config as Record<string, unknown> | undefined;
      if (text && typeof text === 'object' && 'torch_dtype' in text) json.text_config = { ...text, torch_dtype: TORCH_DTYPE[dtype] };
      await fs.writeFile(to, JSON.stringify(json, null, 2) + '\n');
    } else {
      await fs.copyFile(path.join(src, entry.name), to);
    }
    files.push(to);
  }
  if (!sawConfig) throw new Idefics2ExportError(`${src} has no config.json to copy`);
  const toWrite: TensorToWrite[] = tensors.map((t) => ({ name: t.name, dtype, shape: t.shape, data: t.data }));
  files.push(...(await writeShardedCheckpoint(dst, toWrite, { maxShardBytes: options.maxShardBytes, metadata: options.metadata })));
  return files;
}
