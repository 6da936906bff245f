/**
 * The SigLIP vision tower of IDEFICS2 and Idefics3 / SmolVLM (an encoder adapted to variable
 * resolution, NaViT-style; Idefics3's tiles are full grids, where this reduces to plain SigLIP).
 * Kept apart from the text model and each family's connector: the tower is frozen, so its output
 * per image can be computed once and cached; the connector carries LoRA and runs every step.
 *
 * Variable resolution (modeling_idefics2.py, Idefics2VisionEmbeddings): a patch is real when all
 * its pixels are real; each image's real patch grid (rows h, columns w) is spread over the full
 * position grid by bucketing the fractional coordinates i/h into numPatchesPerSide buckets. The
 * float32 arithmetic of torch is reproduced exactly so the ids match (see positionBoundaries and
 * bucketPosition; tested against a table made by transformers for every grid up to 128).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkpointed, recordingGradients } from '@userpref/quant';
import type { VisionModelConfig } from './config';
import { loraVariables, type RunContext } from './linear';
import { activate, attention, keyPaddingMask, layerNorm } from './ops';
import type { VisionLayerParams, VisionModelParams } from './weights';

/** Output of the vision tower for n images padded to a common patch count. */
export interface VisionOutput {
  /** [n, patches, vision hidden] after post_layernorm. */
  readonly hidden: tf.Tensor3D;
  /** [n * patches], 1 = real patch. */
  readonly patchValid: Uint8Array;
}

/** Lanes of Vectorized<float> in torch's CPU arange kernel: 8 on x86 (measured with torch 2.13 on
 *  an AVX512 machine: 8 fits every grid up to 128, 4 and 16 do not; its AVX2 kernel is the one
 *  that runs). Other CPU builds (ARM) may vectorise differently; the reference is x86 torch. */
const ARANGE_LANES = 8;

const boundaryCache = new Map<number, Float32Array>();

/**
 * `torch.arange(1/P, 1.0, 1/P)` in float32 exactly as CPU torch computes it (aten arange_out +
 * cpu/RangeFactoriesKernel.cpp): the length is ceil((1 - 1/P) / (1/P)) in double; start and step
 * are doubles (the CPU accumulate type of float); the kernel (cpu_serial_kernel_vec) fills whole
 * blocks of 2 x 8 elements with Vectorized<float>::arange(base, step), where base =
 * float(start + step * j) at the block's first index j and lane l is float(double(base) + l * step),
 * and the remaining tail element by element as float(start + step * k). So an element inside a
 * block is rounded twice, which is why e.g. P = 19, k = 11 gives 0.63157898, not float(12/19) =
 * 0.63157892.
 */
export function positionBoundaries(perSide: number): Float32Array {
  let b = boundaryCache.get(perSide);
  if (b) return b;
  const f = Math.fround;
  const step = 1 / perSide;
  const n = Math.max(0, Math.ceil((1.0 - step) / step));
  const vectorized = Math.floor(n / (2 * ARANGE_LANES)) * 2 * ARANGE_LANES;
  b = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    if (k < vectorized) {
      const j = k - (k % ARANGE_LANES);
      const base = f(step + step * j);
      b[k] = base + (k - j) * step;
    } else {
      b[k] = step + step * k;
    }
  }
  boundaryCache.set(perSide, b);
  return b;
}

/**
 * Bucket index of grid coordinate i of `count` real patches in a `perSide` grid, as transformers'
 * Idefics2VisionEmbeddings computes it on CPU float32: step = 1.0 / count (int64 reciprocal to
 * float32), coord = float(i) * step in float32, clamped at float(1 - 1e-6), then
 * torch.bucketize(coord, positionBoundaries(perSide), right=True) = the number of boundaries <= coord.
 */
export function bucketPosition(i: number, count: number, perSide: number): number {
  const f = Math.fround;
  const step = f(1 / count);
  let coord = f(i * step);
  const maxCoord = f(1 - 1e-6);
  if (coord > maxCoord) coord = maxCoord;
  const b = positionBoundaries(perSide);
  // upper bound: first index whose boundary is > coord
  let lo = 0;
  let hi = b.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (b[mid] <= coord) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Patch validity and position ids of n images from the pixel mask [n, H, W] (1 = real pixel; null
 * = all real), for a grid of nh x nw patches.
 */
export function patchLayout(pixelMask: ArrayLike<number> | null, n: number, H: number, W: number, patch: number, perSide: number): { valid: Uint8Array; positionIds: Int32Array } {
  const nh = Math.floor(H / patch);
  const nw = Math.floor(W / patch);
  const P = nh * nw;
  const valid = new Uint8Array(n * P);
  const positionIds = new Int32Array(n * P);
  for (let img = 0; img < n; img++) {
    for (let r = 0; r < nh; r++) {
      for (let c = 0; c < nw; c++) {
        let ok = 1;
        if (pixelMask) {
          const base = img * H * W;
          for (let y = r * patch; y < (r + 1) * patch && ok; y++) {
            for (let x = c * patch; x < (c + 1) * patch; x++) {
              if (!pixelMask[base + y * W + x]) {
                ok = 0;
                break;
              }
            }
          }
        }
        valid[img * P + r * nw + c] = ok;
      }
    }
    // transformers: rows = real patches in the first column, columns = real patches in the first row.
    let rows = 0;
    for (let r = 0; r < nh; r++) rows += valid[img * P + r * nw];
    let cols = 0;
    for (let c = 0; c < nw; c++) cols += valid[img * P + c];
    if (rows === 0 || cols === 0) throw new Error(`image ${img}: no complete ${patch}x${patch} patch of real pixels (image smaller than one patch?)`);
    const bh = new Int32Array(nh);
    const bw = new Int32Array(nw);
    for (let r = 0; r < nh; r++) bh[r] = bucketPosition(r, rows, perSide);
    for (let c = 0; c < nw; c++) bw[c] = bucketPosition(c, cols, perSide);
    for (let r = 0; r < nh; r++) {
      for (let c = 0; c < nw; c++) {
        const i = img * P + r * nw + c;
        positionIds[i] = valid[i] ? bh[r] * perSide + bw[c] : 0;
      }
    }
  }
  return { valid, positionIds };
}

/**
 * Vision tower: pixelValues [n, C, H, W] (normalised, padded bottom/right), pixelMask [n, H, W]
 * (1 = real pixel) or null. Conv2d(stride = kernel = patch) is a matMul over unfolded patches.
 */
export function visionTower(params: VisionModelParams, config: VisionModelConfig, pixelValues: tf.Tensor4D, pixelMask: ArrayLike<number> | null, ctx: RunContext): VisionOutput {
  const v = config.vision;
  const [n, C, H, W] = pixelValues.shape;
  if (C !== v.numChannels) throw new Error(`pixelValues have ${C} channels; vision_config.num_channels is ${v.numChannels}`);
  const p = v.patchSize;
  const nh = Math.floor(H / p);
  const nw = Math.floor(W / p);
  if (nh === 0 || nw === 0) throw new Error(`images of ${H}x${W} pixels are smaller than one ${p}x${p} patch`);
  const P = nh * nw;
  const { valid, positionIds } = patchLayout(pixelMask, n, H, W, p, v.numPatchesPerSide);
  const hidden = tf.tidy(() => {
    const px = H === nh * p && W === nw * p ? pixelValues : tf.slice(pixelValues, [0, 0, 0, 0], [n, C, nh * p, nw * p]);
    const patches = tf.reshape(tf.transpose(tf.reshape(px, [n, C, nh, p, nw, p]), [0, 2, 4, 1, 3, 5]), [n * P, C * p * p]);
    const pos = tf.gather(params.vision.posEmb, tf.tensor1d(positionIds, 'int32'));
    let h = tf.add(tf.add(tf.matMul(patches, params.vision.patchW), params.vision.patchB), pos) as tf.Tensor2D;
    const shape = { batch: n, queryLen: P, keyLen: P, heads: v.numHeads, kvHeads: v.numHeads, headDim: v.headDim };
    // Checkpointed layers (ctx.checkpoint while a gradient is recorded) make their mask themselves:
    // they run again in the backward, after this scope.
    const ck = ctx.checkpoint === true && recordingGradients();
    const shared = ck ? null : keyPaddingMask(valid, n, P);
    const runLayer = (layer: VisionLayerParams, x: tf.Tensor2D): tf.Tensor2D => {
      const mask = ck ? keyPaddingMask(valid, n, P) : shared;
      const a = layerNorm(x, layer.ln1.w, layer.ln1.b!, v.layerNormEps) as tf.Tensor2D;
      const [q, k, vv] = layer.qkv.apply(a, ctx);
      const att = attention(q, k, vv, shape, mask ? [mask] : [], false);
      const h1 = tf.add(x, layer.out.apply1(att.out, ctx));
      const m = layerNorm(h1, layer.ln2.w, layer.ln2.b!, v.layerNormEps) as tf.Tensor2D;
      return tf.add(h1, layer.fc2.apply1(activate(layer.fc1.apply1(m, ctx), v.hiddenAct) as tf.Tensor2D, ctx)) as tf.Tensor2D;
    };
    for (const layer of params.vision.layers) {
      h = ck ? checkpointed((x: tf.Tensor2D) => tf.tidy(() => runLayer(layer, x)), h, loraVariables([layer.qkv, layer.out, layer.fc1, layer.fc2])) : runLayer(layer, h);
    }
    h = layerNorm(h, params.vision.post.w, params.vision.post.b!, v.layerNormEps) as tf.Tensor2D;
    return tf.reshape(h, [n, P, v.hiddenSize]) as tf.Tensor3D;
  });
  return { hidden, patchValid: valid };
}
