/**
 * The IDEFICS2 connector: the SwiGLU modality projection, then the perceiver resampler (latent
 * queries attending to one image's real patches and the latents, per image). It carries LoRA and
 * runs every step, on the cached output of @userpref/mllm's vision tower.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkpointed, checkpointedMulti, recordingGradients } from '@userpref/quant';
import { gatedActivation, loraVariables, planSegments, rmsNorm, segmentAttention, type AttentionSegment, type RunContext } from '@userpref/mllm';
import type { Idefics2Config } from './config';
import type { Idefics2Params, PerceiverLayerParams } from './weights';

/**
 * Connector: modality projection (SwiGLU, text_config.hidden_act) then the perceiver resampler.
 * context [n, P, vision hidden] with patchValid [n*P] -> [n, latents, text hidden].
 */
export function connector(params: Idefics2Params, config: Idefics2Config, context: tf.Tensor3D, patchValid: ArrayLike<number> | null, ctx: RunContext): tf.Tensor3D {
  const c = params.connector;
  const pc = config.perceiver;
  const [n, P, dv] = context.shape;
  const L = pc.numLatents;
  const d = pc.hiddenSize;
  const ck = ctx.checkpoint === true && recordingGradients();
  return tf.tidy(() => {
    // Modality projection; checkpointed, one image at a time (its activations are [P, intermediate]
    // per image, the largest of the connector).
    // (A chunk draws the rows of the whole projection's dropout masks: the same numbers either way.)
    const project = (x: tf.Tensor2D, row = 0): tf.Tensor2D => {
      const cc = row === 0 ? ctx : { ...ctx, rowOffset: row };
      const [gate, up] = c.projGateUp.apply(x, cc);
      return c.projDown.apply1(gatedActivation(gate, up, config.text.hiddenAct) as tf.Tensor2D, cc);
    };
    const flat = tf.reshape(context, [n * P, dv]) as tf.Tensor2D;
    let projected2d: tf.Tensor2D;
    if (!ck) projected2d = project(flat);
    else {
      const vars = loraVariables([c.projGateUp, c.projDown]);
      const parts: tf.Tensor2D[] = [];
      for (let i = 0; i < n; i++) parts.push(checkpointed((x: tf.Tensor2D) => tf.tidy(() => project(x, i * P)), tf.slice(flat, [i * P, 0], [P, dv]) as tf.Tensor2D, vars));
      projected2d = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D);
    }
    const projected = tf.reshape(projected2d, [n, P, d]) as tf.Tensor3D;
    // Attention per chunk of images: each image's L latent queries see its real patches and its
    // latents only (block-diagonal mask over the chunk). Chunks of a few images keep the matMuls
    // 2-D and few (per-op overhead dominates tiny per-image products on wasm; a batched matMul
    // takes a slow path) while the masked waste stays bounded (~1k keys a chunk).
    const segments: AttentionSegment[] = [];
    const chunk = Math.max(1, Math.floor(1024 / (P + L)));
    for (let i0 = 0; i0 < n; i0 += chunk) {
      const cc = Math.min(chunk, n - i0);
      const qg = new Int32Array(cc * L);
      const kg = new Int32Array(cc * (P + L));
      const keyValid = new Uint8Array(cc * (P + L)).fill(1);
      for (let i = 0; i < cc; i++) {
        qg.fill(i, i * L, (i + 1) * L);
        kg.fill(i, i * (P + L), (i + 1) * (P + L));
        if (patchValid) for (let j = 0; j < P; j++) keyValid[i * (P + L) + j] = patchValid[(i0 + i) * P + j] ? 1 : 0;
      }
      segments.push({ query: { start: i0 * L, len: cc * L }, keys: [{ start: i0 * (P + L), len: cc * (P + L) }], causalOffset: null, keyValid, groups: { query: qg, key: kg } });
    }
    const sharedPlan = ck ? null : planSegments(segments);
    const dims = { heads: pc.numHeads, kvHeads: pc.numKvHeads, headDim: pc.headDim };
    const runLayer = (layer: PerceiverLayerParams, lat: tf.Tensor2D, proj: tf.Tensor3D): tf.Tensor2D => {
      const plan = sharedPlan ?? planSegments(segments);
      const latN = rmsNorm(lat, layer.latentsNorm.w, pc.rmsNormEps) as tf.Tensor2D;
      const ctxN = rmsNorm(proj, layer.contextNorm.w, pc.rmsNormEps);
      const q = layer.q.apply1(latN, ctx);
      const kvIn = tf.reshape(tf.concat([ctxN, tf.reshape(latN, [n, L, d])], 1), [n * (P + L), d]) as tf.Tensor2D;
      const [k, v] = layer.kv.apply(kvIn, ctx);
      const att = segmentAttention(q, k, v, plan, dims);
      const lat1 = tf.add(lat, layer.o.apply1(att.out, ctx));
      const m = rmsNorm(lat1, layer.postNorm.w, pc.rmsNormEps) as tf.Tensor2D;
      const [g, u] = layer.gateUp.apply(m, ctx);
      return tf.add(lat1, layer.down.apply1(gatedActivation(g, u, pc.hiddenAct) as tf.Tensor2D, ctx)) as tf.Tensor2D;
    };
    let latents = tf.reshape(tf.tile(tf.expandDims(c.latents, 0), [n, 1, 1]), [n * L, d]) as tf.Tensor2D;
    for (const layer of c.layers) {
      latents = ck
        ? checkpointedMulti((xs) => tf.tidy(() => runLayer(layer, xs[0] as tf.Tensor2D, xs[1] as tf.Tensor3D)), [latents, projected], loraVariables([layer.q, layer.kv, layer.o, layer.gateUp, layer.down]))
        : runLayer(layer, latents, projected);
    }
    return tf.reshape(rmsNorm(latents, c.norm.w, pc.rmsNormEps), [n, L, d]) as tf.Tensor3D;
  });
}
