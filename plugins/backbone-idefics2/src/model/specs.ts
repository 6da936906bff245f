/**
 * Every tensor of Idefics2ForConditionalGeneration, from the parsed config alone: the names of
 * modeling_idefics2.py (model.vision_model.*, model.connector.{modality_projection,
 * perceiver_resampler}.*, model.text_model.*, lm_head unless tied), their shapes and their random
 * initialisation, in the order save_pretrained writes them. The loader, the export, the random
 * checkpoint writer and the load progress total all use this one list.
 *
 * One deliberate difference from transformers' `_init_weights`: it fills the perceiver latents with
 * ones, which makes every latent identical (each image would collapse to one repeated vector). Here
 * they are N(0, 1), like the original Idefics perceiver's torch.randn; they are RMS-normalised
 * before use, so their scale does not matter.
 */
import { SpecListBuilder, decoderSpecs, visionTowerSpecs, type TensorSpec } from '@userpref/mllm';
import type { Idefics2Config } from './config';

export function idefics2TensorSpecs(c: Idefics2Config): TensorSpec[] {
  const { vision: v, perceiver: p, text: t } = c;
  const b = new SpecListBuilder();
  // Connector: SwiGLU modality projection (vision width -> text intermediate -> text width), then
  // the perceiver resampler in the text width.
  const cp = 'model.connector';
  b.swiglu(`${cp}.modality_projection`, v.hiddenSize, t.intermediateSize, t.hiddenSize, t.initializerRange);
  const rp = `${cp}.perceiver_resampler`;
  const pd = p.hiddenSize;
  const std = p.initializerRange;
  b.tensor(`${rp}.latents`, [p.numLatents, pd], { kind: 'normal', std: 1 });
  for (let l = 0; l < p.depth; l++) {
    const lp = `${rp}.layers.${l}`;
    b.rmsNorm(`${lp}.input_latents_norm`, pd);
    b.rmsNorm(`${lp}.input_context_norm`, pd);
    b.linear(`${lp}.self_attn.q_proj`, p.numHeads * p.headDim, pd, std, false);
    b.linear(`${lp}.self_attn.k_proj`, p.numKvHeads * p.headDim, pd, std, false);
    b.linear(`${lp}.self_attn.v_proj`, p.numKvHeads * p.headDim, pd, std, false);
    b.linear(`${lp}.self_attn.o_proj`, pd, p.numHeads * p.headDim, std, false);
    b.rmsNorm(`${lp}.post_attention_layernorm`, pd);
    b.swiglu(`${lp}.mlp`, pd, 4 * pd, pd, std);
  }
  b.rmsNorm(`${rp}.norm`, pd);
  return [...visionTowerSpecs(v), ...b.specs, ...decoderSpecs(t, c.tieWordEmbeddings)];
}
