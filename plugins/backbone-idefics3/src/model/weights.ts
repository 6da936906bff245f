/**
 * Loads the weights of Idefics3ForConditionalGeneration from a Hugging Face checkpoint directory
 * (model.safetensors or shards + index) through @userpref/mllm's WeightSource: the vision tower and
 * the text model are its shared `VisionTowerParams` / `DecoderParams` (Linear weights [in, out],
 * fused q|k|v and gate|up, the patch Conv2d as a matrix), read by its shared readers, as IDEFICS2's
 * are. The connector is one Linear: modality_projection.proj [d_vision * s^2 -> d_text], no bias.
 *
 * Tensor names are those transformers writes (model.vision_model.*, model.connector.*,
 * model.text_model.*, lm_head.weight); the bare Idefics3Model layout without the leading "model."
 * is accepted too. With tie_word_embeddings and no lm_head.weight in the file (SmolVLM 256M /
 * 500M), the LM head is the embedding matrix. Every tensor the config implies must exist with the
 * config's shape; unused tensors are reported.
 */
import * as tf from '@tensorflow/tfjs-core';
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
  type LoadReport as SharedLoadReport,
  type VisionTowerParams,
} from '@userpref/mllm';
import type { Idefics3Config } from './config';

export interface Idefics3Params {
  readonly vision: VisionTowerParams;
  readonly connector: {
    /** [d_vision * s^2, d_text], part 'model.connector.modality_projection.proj'. */
    readonly proj: Linear;
  };
  readonly text: DecoderParams;
}

export class Idefics3WeightsError extends Error {
  readonly expected = true;
}

export interface LoadReport extends SharedLoadReport {
  /** The LM head was taken from the embedding matrix (tied, no lm_head.weight in the file). */
  readonly tiedHead: boolean;
}

export async function loadIdefics3Weights(dir: string, c: Idefics3Config): Promise<{ params: Idefics3Params; report: LoadReport }> {
  const reader = await CheckpointReader.open(dir);
  const src = new WeightSource(reader, { makeError: (message) => new Idefics3WeightsError(message) });
  try {
    const vision = await readVisionTower(src, c.vision);
    const proj = await src.linear(['model.connector.modality_projection.proj'], [c.text.hiddenSize], c.vision.hiddenSize * c.scaleFactor * c.scaleFactor, false);
    const { text, tiedHead } = await readDecoder(src, c.text, c.tieWordEmbeddings);
    const unused = reader.names().filter((n) => !src.used.has(n));
    return { params: { vision, connector: { proj }, text }, report: { tensorsRead: src.used.size, unused, aliased: src.aliased, tiedHead } };
  } catch (e) {
    for (const t of src.created) t.dispose();
    throw e;
  } finally {
    await reader.close();
  }
}

/** Every Linear of the model (LoRA targeting, merging, disposal). */
export function allLinears(p: Idefics3Params): Linear[] {
  return [...visionLinears(p.vision), p.connector.proj, ...decoderLinears(p.text)];
}

export function disposeParams(p: Idefics3Params): void {
  disposeNorms([...visionNorms(p.vision), ...decoderNorms(p.text)]);
  for (const lin of allLinears(p)) lin.dispose();
  tf.dispose([p.vision.patchW, p.vision.patchB, p.vision.posEmb, p.text.embed]);
}
