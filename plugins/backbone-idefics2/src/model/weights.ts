/**
 * Loads the weights of Idefics2ForConditionalGeneration from a Hugging Face checkpoint directory
 * (model.safetensors or shards + index) through @userpref/mllm's WeightSource: the SigLIP vision
 * tower and the Mistral text model are read by its shared readers, the connector (SwiGLU modality
 * projection + perceiver resampler) here. Every tensor the config implies must exist with the
 * config's shape; otherwise the error names the tensor and both shapes. Tensors the model does not
 * use are reported, not silently dropped.
 *
 * Tensor names: the released HuggingFaceM4/idefics2-8b checkpoint and transformers 5.x
 * save_pretrained use the same names (model.vision_model.*, model.connector.modality_projection.*,
 * model.connector.perceiver_resampler.*, model.text_model.*, lm_head.weight). The one other layout
 * in circulation is the bare Idefics2Model (base_model_prefix "model"), saved without the leading
 * "model."; TENSOR_NAME_ALIASES maps canonical names to such alternatives.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BaseBits } from '@userpref/quant';
import { CheckpointReader } from '@userpref/safetensors';
import {
  decoderLinears,
  decoderNorms,
  disposeNorms,
  readDecoder,
  readVisionTower,
  visionLinears,
  visionNorms,
  WeightSource,
  type DecoderParams,
  type Linear,
  type LoadReport,
  type Norm,
  type VisionTowerParams,
} from '@userpref/mllm';
import type { Idefics2Config } from './config';
import { idefics2TensorSpecs } from './specs';

export { TENSOR_NAME_ALIASES } from '@userpref/mllm';
export type { LoadReport, Norm, TextLayerParams, VisionLayerParams } from '@userpref/mllm';

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

export interface Idefics2Params {
  readonly vision: VisionTowerParams;
  readonly connector: {
    readonly projGateUp: Linear;
    readonly projDown: Linear;
    /** [latents, hidden] */
    readonly latents: tf.Tensor2D;
    readonly layers: PerceiverLayerParams[];
    readonly norm: Norm;
  };
  readonly text: DecoderParams;
}

export class Idefics2WeightsError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
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

/** Number of tensors Idefics2ForConditionalGeneration has for this config (the spec list's length). */
export function expectedTensorCount(c: Idefics2Config): number {
  return idefics2TensorSpecs(c).length;
}

export async function loadIdefics2Weights(dir: string, c: Idefics2Config, options: LoadWeightsOptions = {}): Promise<{ params: Idefics2Params; report: LoadReport }> {
  const reader = await CheckpointReader.open(dir);
  const src = new WeightSource(reader, {
    specs: idefics2TensorSpecs(c),
    onProgress: options.onProgress,
    baseBits: options.baseBits ?? 32,
    doubleQuant: options.doubleQuant ?? false,
    makeError: (message) => new Idefics2WeightsError(message),
  });
  try {
    const params = await readAll(src, c);
    src.checkAllRead();
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
  const vision = await readVisionTower(src, v);

  const cp = 'model.connector';
  const vd = v.hiddenSize;
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
  const { text } = await readDecoder(src, t, c.tieWordEmbeddings);
  return { vision, connector, text };
}

/** Every Linear of the model, for LoRA targeting, merging and disposal. */
export function allLinears(params: Idefics2Params): Linear[] {
  const out: Linear[] = visionLinears(params.vision);
  out.push(params.connector.projGateUp, params.connector.projDown);
  for (const l of params.connector.layers) out.push(l.q, l.kv, l.o, l.gateUp, l.down);
  out.push(...decoderLinears(params.text));
  return out;
}

export function disposeParams(params: Idefics2Params): void {
  const norms: Norm[] = [...visionNorms(params.vision), params.connector.norm, ...decoderNorms(params.text)];
  for (const l of params.connector.layers) norms.push(l.latentsNorm, l.contextNorm, l.postNorm);
  disposeNorms(norms);
  for (const lin of allLinears(params)) lin.dispose();
  params.vision.patchW.dispose();
  params.vision.patchB.dispose();
  params.vision.posEmb.dispose();
  params.connector.latents.dispose();
  params.text.embed.dispose();
}
