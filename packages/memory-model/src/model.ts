/**
 * Predicted peak live tensor bytes of one LoRA training micro-step of the tfjs IDEFICS2 backbone
 * (packages/training's Trainer over @userpref/backbone-idefics2 with the shared reference prefix),
 * from the checkpoint's parsed config, the sequence lengths, the batch and the options.
 *
 * It is a count, not a fit: every tensor the forward pass makes is listed with its size, whether
 * the gradient tape keeps it (tfjs saves the inputs of Add, Mul, MatMul, Slice, Concat, Reshape and
 * the outputs of Softmax / custom gradients: see tfjs-core's gradient configs) and whether a
 * gradient reaches it (then the backward pass makes one buffer of its size, and tfjs keeps every
 * such buffer until the backward pass ends, as it keeps every saved tensor). So:
 *
 *   peak = resident + saved + gradients
 *   resident  = frozen weights (float32 or packed) + LoRA + AdamW m, v + gradient accumulator
 *               + the prepared batch's vision outputs
 *   saved     = what the tape keeps after the forward pass
 *   gradients = one buffer per tensor on the path from the LoRA variables to the loss
 *
 * With activation checkpointing the tape keeps each checkpointed layer's input only; the backward
 * recomputes one layer at a time (its saved set and gradients exist for that layer only) while the
 * gradients at the layer boundaries accumulate.
 *
 * Sizes come from the code of backbone-idefics2 at the time of writing (text.ts, vision.ts,
 * attention.ts, lora.ts); test/model.spec.ts checks the prediction against the measured peak on
 * three model sizes, so a change there that moves memory shows up as a failing test.
 */
import { packedBytes, type BaseBits } from '@userpref/quant';

/** The fields of backbone-idefics2's Idefics2Config the model reads (the parsed config fits). */
export interface ModelShape {
  readonly vision: { readonly hiddenSize: number; readonly intermediateSize: number; readonly numLayers: number; readonly numChannels: number; readonly patchSize: number; readonly numPatchesPerSide: number };
  readonly perceiver: { readonly hiddenSize: number; readonly numLatents: number; readonly depth: number; readonly numHeads: number; readonly headDim: number; readonly numKvHeads: number };
  readonly text: { readonly vocabSize: number; readonly hiddenSize: number; readonly intermediateSize: number; readonly numLayers: number; readonly numHeads: number; readonly numKvHeads: number; readonly headDim: number };
  readonly tieWordEmbeddings: boolean;
}

/** One micro-batch as the backbone runs it with the shared prefix. */
export interface Workload {
  /** Examples; each has its own reference prefix. */
  readonly batch: number;
  /** Tokens of each example's prefix (everything before the target image's <image> run). */
  readonly prefixLen: number;
  /** Tokens of the target turn (the image run to "Assistant:"), run twice (liked, disliked). */
  readonly suffixLen: number;
  /** Unique images of the micro-batch (references and both candidates). */
  readonly images: number;
  /** Vision patches per image (padded to the largest of the batch). */
  readonly patches: number;
  /** Images of each prefix (the references: 2 x pairs). */
  readonly prefixImages: number;
}

export interface MemoryOptions {
  /** Frozen base: float32 or packed 8-bit / 4-bit (NF4) Linear weights (embeddings and LM head stay float32). */
  readonly baseBits: BaseBits;
  readonly doubleQuant?: boolean;
  /** Activation checkpointing per decoder layer and per connector layer. */
  readonly checkpoint: boolean;
  readonly lora: { readonly r: number; readonly alpha: number; readonly dropout: number };
  /**
   * The attention kernel layout: 'per-head' (the wasm backend: one 2-D product per KV head) or
   * 'batched' (tensorflow, cpu, GPU). They keep different copies.
   */
  readonly attention: 'per-head' | 'batched';
}

export interface MemoryPrediction {
  readonly weights: number;
  readonly lora: number;
  /** AdamW m and v and the gradient accumulator. */
  readonly optimizer: number;
  /** Vision outputs of the prepared micro-batch. */
  readonly batchInputs: number;
  readonly resident: number;
  /** Kept by the tape after the forward pass. */
  readonly saved: number;
  /** Gradient buffers alive at the end of the backward pass (with checkpointing: including one layer's recomputation). */
  readonly backward: number;
  readonly peak: number;
}

const F = 4; // bytes per float32

/** Float counts of one LoRA-adapted part per row: what the tape keeps. */
function loraSaved(inF: number, out: number, o: MemoryOptions): number {
  const { r, dropout } = o.lora;
  const scaled = o.lora.alpha / r !== 1;
  // dropout mask and x * mask (both kept by the Mul / MatMul), x A (and its scaled copy), the delta
  // and the frozen part's output (kept by the Add), their sum (kept by the consumer)
  return (dropout > 0 ? 2 * inF : 0) + r + (scaled ? r : 0) + 3 * out;
}

/** Gradient buffers of one LoRA part per row: d(x A) (and its scaled copy), d(x * mask) when x is on the gradient path. */
function loraGrad(inF: number, o: MemoryOptions, inputOnPath: boolean): number {
  const { r } = o.lora;
  const scaled = o.lora.alpha / r !== 1;
  return r + (scaled ? r : 0) + (inputOnPath ? inF : 0);
}

/** Query blocks of a causal segment as attention.ts plans them: sum of rows x visible keys. */
function causalProbRows(Tq: number, offset: number, Tk: number, maxBlocks: number): number {
  const bq = Math.max(128, Math.ceil(Tq / maxBlocks));
  let n = 0;
  for (let q0 = 0; q0 < Tq; q0 += bq) {
    const q1 = Math.min(Tq, q0 + bq);
    n += (q1 - q0) * Math.max(1, Math.min(Tk, offset + q1));
  }
  return n;
}

interface Seg {
  readonly Tq: number;
  readonly Tk: number;
  /** Key ranges concatenated (1 or 2). */
  readonly keyParts: number;
  /** The keys are the whole key matrix (no slice). */
  readonly whole: boolean;
  readonly offset: number | null;
}

/** Attention probabilities of a segment (floats). */
function probFloats(g: Seg, H: number, o: MemoryOptions): number {
  const maxBlocks = o.attention === 'per-head' ? 8 : 4;
  return H * (g.offset === null ? g.Tq * g.Tk : causalProbRows(g.Tq, g.offset, g.Tk, maxBlocks));
}

/**
 * One attention call over segments on packed rows: q [Nq, H hd], k and v [Nk, K hd].
 * Returns floats kept, gradient buffers kept to the end of the backward, and the largest transient
 * of one segment's custom gradient (its per-block temporaries live until it returns).
 */
function attentionCost(segs: readonly Seg[], Nk: number, H: number, K: number, hd: number, o: MemoryOptions): { saved: number; grad: number; transient: number; masks: number } {
  const qd = H * hd;
  const kvd = K * hd;
  const Nq = segs.reduce((a, g) => a + g.Tq, 0);
  const many = segs.length > 1;
  let saved = Nq * qd; // q / sqrt(hd)
  let grad = 0;
  let transient = 0;
  let masks = 0;
  // Slices: a slice's gradient is padded to its source's full size, one buffer per slice.
  const keySlices = segs.reduce((a, g) => a + (g.whole ? 0 : g.keyParts), 0);
  grad += 2 * keySlices * Nk * kvd;
  if (many) {
    saved += Nq * qd; // query slices
    grad += segs.length * Nq * qd;
  } else grad += Nq * qd;
  const perHead = o.attention === 'per-head';
  for (const g of segs) {
    if (!g.whole) {
      saved += 2 * g.Tk * kvd; // key / value slices
      if (g.keyParts > 1) {
        saved += 2 * g.Tk * kvd; // concatenated
        grad += 2 * g.Tk * kvd;
      }
    }
    if (perHead) {
      saved += 2 * g.Tq * qd + 2 * g.Tk * kvd + 3 * g.Tq * qd;
      grad += 3 * g.Tq * qd + 2 * 3 * g.Tk * kvd + 2 * g.Tq * qd;
    } else {
      saved += g.Tq * qd + 2 * g.Tk * kvd + 2 * g.Tq * qd;
      grad += 2 * g.Tq * qd + 2 * 2 * g.Tk * kvd + g.Tq * qd;
    }
    const p = probFloats(g, H, o);
    saved += p;
    masks += p / H; // one additive mask [rows, 1, keys] per block, shared by the heads
    // dP, dP * P, dP - rowsum, dS per block (per KV head at a time on the per-head path, plus two transposes)
    transient = Math.max(transient, perHead ? (6 * p) / K : 4 * p);
  }
  if (many) grad += Nq * qd; // the concatenated output's gradient, sliced per segment
  return { saved, grad, transient, masks };
}

interface LayerCost {
  saved: number;
  grad: number;
  transient: number;
  /** Gradient buffers that exist when the attention's backward runs (those of the ops after it). */
  gradAfterAttention: number;
  /** Attention masks the layer makes (a checkpointed layer makes its own again when recomputed). */
  masks?: number;
}

/** One decoder layer on a packed group of N rows. */
function textLayer(s: ModelShape, N: number, segs: readonly Seg[], o: MemoryOptions): LayerCost {
  const t = s.text;
  const d = t.hiddenSize;
  const qd = t.numHeads * t.headDim;
  const kvd = t.numKvHeads * t.headDim;
  const I = t.intermediateSize;
  const drop = o.lora.dropout > 0;
  let saved = 0;
  let grad = 0;
  // input norm (inverse rms + output); the input's gradient: the norm's and the residual sum
  saved += N * (1 + d);
  grad += N * 2 * d;
  // q|k|v: product (split at once), parts, LoRA, sums
  saved += N * (loraSaved(d, qd, o) + 2 * loraSaved(d, kvd, o));
  grad += N * ((qd + 2 * kvd) + 4 * d + loraGrad(d, o, drop) * 3);
  // RoPE on q and k: swapped halves, two products, their sum
  saved += N * 4 * (qd + kvd);
  grad += N * 4 * (qd + kvd);
  const att = attentionCost(segs, N, t.numHeads, t.numKvHeads, t.headDim, o);
  saved += att.saved;
  grad += att.grad;
  const before = grad;
  // o projection (input reaches the product and the LoRA) and the residual
  saved += N * (loraSaved(qd, d, o) + d);
  grad += N * (2 * qd + loraGrad(qd, o, drop) + 2 * d);
  // post-attention norm, gate|up, silu(gate) * up, down, residual
  saved += N * (1 + d);
  grad += N * 3 * d;
  saved += N * (2 * loraSaved(d, I, o) + I);
  grad += N * (2 * I + 2 * loraGrad(d, o, drop) + 2 * I + 2 * I);
  saved += N * (loraSaved(I, d, o) + d);
  grad += N * loraGrad(I, o, drop);
  return { saved, grad, transient: att.transient, gradAfterAttention: grad - before, masks: att.masks };
}

/** The connector on U images: modality projection, perceiver layers, final norm. */
function connectorCost(s: ModelShape, w: Workload, o: MemoryOptions): { projection: LayerCost; layers: LayerCost[]; rest: LayerCost } {
  const U = w.images;
  const P = w.patches;
  const L = s.perceiver.numLatents;
  const d = s.perceiver.hiddenSize;
  const dv = s.vision.hiddenSize;
  const I = s.text.intermediateSize;
  const pq = s.perceiver.numHeads * s.perceiver.headDim;
  const pkv = s.perceiver.numKvHeads * s.perceiver.headDim;
  const drop = o.lora.dropout > 0;
  const D = s.perceiver.depth;
  const ctx = U * P;
  const lat = U * L;
  const kv = U * (P + L);
  // The projection's input (the frozen tower's output) is a constant: no gradient reaches it.
  const projection: LayerCost = {
    saved: ctx * (2 * loraSaved(dv, I, o) + I + loraSaved(I, d, o)),
    grad: ctx * (2 * I + 2 * loraGrad(dv, o, false) + 2 * I + 2 * I + loraGrad(I, o, drop)) + D * ctx * d,
    transient: 0,
    gradAfterAttention: 0,
  };
  const chunk = Math.max(1, Math.floor(1024 / (P + L)));
  const segs: Seg[] = [];
  for (let i0 = 0; i0 < U; i0 += chunk) {
    const c = Math.min(chunk, U - i0);
    segs.push({ Tq: c * L, Tk: c * (P + L), keyParts: 1, whole: U <= chunk, offset: null });
  }
  const layers: LayerCost[] = [];
  for (let l = 0; l < D; l++) {
    let saved = lat + ctx + lat * d + ctx * d; // two norms
    let grad = (l === 0 ? 0 : 2 * lat * d) + 3 * lat * d + ctx * d;
    saved += lat * loraSaved(d, pq, o);
    grad += lat * (loraGrad(d, o, drop) + pq);
    saved += kv * d; // [context; latents]
    grad += kv * 3 * d;
    saved += kv * 2 * loraSaved(d, pkv, o);
    grad += kv * (2 * pkv + 2 * loraGrad(d, o, drop));
    const att = attentionCost(segs, kv, s.perceiver.numHeads, s.perceiver.numKvHeads, s.perceiver.headDim, o);
    saved += att.saved;
    grad += att.grad;
    const before = grad;
    saved += lat * (loraSaved(pq, d, o) + d);
    grad += lat * (2 * pq + loraGrad(pq, o, drop) + 2 * d);
    saved += lat * (1 + d);
    grad += lat * 3 * d;
    saved += lat * (2 * loraSaved(d, 4 * d, o) + 4 * d + loraSaved(4 * d, d, o) + d);
    grad += lat * (8 * d + 2 * loraGrad(d, o, drop) + 8 * d + 8 * d + loraGrad(4 * d, o, drop));
    layers.push({ saved, grad, transient: att.transient, gradAfterAttention: grad - before, masks: att.masks });
  }
  // the learned latents tiled per image (kept by the first residual), the final norm
  const rest: LayerCost = { saved: lat * d + lat + lat * d, grad: lat * d, transient: 0, gradAfterAttention: 0 };
  return { projection, layers, rest };
}

/** Frozen weight bytes of the model at `bits` (Linear layers packed, the rest float32). */
export function weightBytes(s: ModelShape, bits: BaseBits, doubleQuant = false): number {
  const v = s.vision;
  const p = s.perceiver;
  const t = s.text;
  const lin = (inF: number, out: number, bias = false) => (bits === 32 ? F * inF * out : packedBytes(inF, out, { bits, doubleQuant })) + (bias ? F * out : 0);
  let b = 0;
  const dv = v.hiddenSize;
  b += F * (v.numChannels * v.patchSize * v.patchSize * dv + dv + v.numPatchesPerSide * v.numPatchesPerSide * dv);
  for (let l = 0; l < v.numLayers; l++) b += F * 4 * dv + lin(dv, 3 * dv, true) + lin(dv, dv, true) + lin(dv, v.intermediateSize, true) + lin(v.intermediateSize, dv, true);
  b += F * 2 * dv;
  const d = t.hiddenSize;
  b += lin(dv, 2 * t.intermediateSize) + lin(t.intermediateSize, d);
  b += F * p.numLatents * d;
  const pq = p.numHeads * p.headDim;
  const pkv = p.numKvHeads * p.headDim;
  for (let l = 0; l < p.depth; l++) b += F * 3 * d + lin(d, pq) + lin(d, 2 * pkv) + lin(pq, d) + lin(d, 8 * d) + lin(4 * d, d);
  b += F * d;
  const qd = t.numHeads * t.headDim;
  const kvd = t.numKvHeads * t.headDim;
  b += F * t.vocabSize * d; // embeddings
  for (let l = 0; l < t.numLayers; l++) b += F * 2 * d + lin(d, qd + 2 * kvd) + lin(qd, d) + lin(d, 2 * t.intermediateSize) + lin(t.intermediateSize, d);
  b += F * d;
  b += F * t.vocabSize * d; // LM head (float32; a copy of the embedding when tied)
  return b;
}

/** LoRA parameters of the paper's target modules (text_model, modality_projection, perceiver_resampler). */
export function loraParameters(s: ModelShape, r: number): number {
  const t = s.text;
  const p = s.perceiver;
  const d = t.hiddenSize;
  const qd = t.numHeads * t.headDim;
  const kvd = t.numKvHeads * t.headDim;
  const I = t.intermediateSize;
  const mod = (inF: number, out: number) => r * (inF + out);
  const text = t.numLayers * (mod(d, qd) + 2 * mod(d, kvd) + mod(qd, d) + 2 * mod(d, I) + mod(I, d));
  const dv = s.vision.hiddenSize;
  const proj = 2 * mod(dv, I) + mod(I, d);
  const pq = p.numHeads * p.headDim;
  const pkv = p.numKvHeads * p.headDim;
  const perc = p.depth * (mod(d, pq) + 2 * mod(d, pkv) + mod(pq, d) + 2 * mod(d, 4 * d) + mod(4 * d, d));
  return text + proj + perc;
}

/** float32 floats of the Linear weights one decoder layer, one perceiver layer and the projection unpack. */
function layerWeightFloats(s: ModelShape): { text: number; perceiver: number; projection: number; largest: number } {
  const t = s.text;
  const p = s.perceiver;
  const d = t.hiddenSize;
  const qd = t.numHeads * t.headDim;
  const kvd = t.numKvHeads * t.headDim;
  const I = t.intermediateSize;
  const pq = p.numHeads * p.headDim;
  const pkv = p.numKvHeads * p.headDim;
  const dv = s.vision.hiddenSize;
  const text = d * (qd + 2 * kvd) + qd * d + d * 2 * I + I * d;
  const perceiver = d * pq + d * 2 * pkv + pq * d + d * 8 * d + 4 * d * d;
  const projection = dv * 2 * I + I * d;
  const largest = Math.max(d * (qd + 2 * kvd), d * 2 * I, I * d, d * 8 * d, dv * 2 * I);
  return { text, perceiver, projection, largest };
}

/** The prediction (bytes). */
export function predictTrainingStep(s: ModelShape, w: Workload, o: MemoryOptions): MemoryPrediction {
  const d = s.text.hiddenSize;
  const hd = s.text.headDim;
  const V = s.text.vocabSize;
  const L = s.perceiver.numLatents;
  const weights = weightBytes(s, o.baseBits, o.doubleQuant);
  const loraParams = loraParameters(s, o.lora.r);
  const lora = F * loraParams;
  const optimizer = 3 * lora;
  const batchInputs = F * w.images * w.patches * s.vision.hiddenSize;
  const resident = weights + lora + optimizer + batchInputs;

  // Text: one packed forward per example (prefix, liked turn, disliked turn).
  const B = w.batch;
  const Tp = w.prefixLen;
  const Ts = w.suffixLen;
  const N = Tp + 2 * Ts;
  const segs: Seg[] = [
    { Tq: Tp, Tk: Tp, keyParts: 1, whole: false, offset: 0 },
    { Tq: Ts, Tk: Tp + Ts, keyParts: 2, whole: false, offset: Tp },
    { Tq: Ts, Tk: Tp + Ts, keyParts: 2, whole: false, offset: Tp },
  ];
  const layer = textLayer(s, N, segs, o);
  const nLayers = s.text.numLayers;
  // Around the layers, per example: the prefix's and the turns' merged embeddings (image rows
  // sliced out of the features: each slice's gradient is padded to the features' size), the packed
  // rows, RoPE tables, the read rows, final norm, logits and the loss.
  const prefixImageRows = w.prefixImages * L;
  const aroundSaved = 2 * Tp * d + 2 * 2 * Ts * d + N * d + 2 * N * hd + 4 * d + 4 * V;
  const aroundGrad = w.prefixImages * prefixImageRows * d + Tp * d + 2 * (2 * Ts * d) + 2 * 2 * Ts * d + N * d + 4 * V + 4 * d;
  // Image features: the connector's output picked per prefix and per target turn.
  const picksSaved = (w.prefixImages + 2) * L * d;
  const picksGrad = (w.prefixImages + 2) * L * d + w.images * L * d;
  const conn = connectorCost(s, w, o);
  const sum = (xs: LayerCost[], k: 'saved' | 'grad') => xs.reduce((a, x) => a + x[k], 0);
  const transient = Math.max(layer.transient, ...conn.layers.map((l) => l.transient));
  let saved: number;
  let backward: number;
  // A packed base unpacks each Linear to float32 when it runs; the tape keeps what a product used.
  const lw = layerWeightFloats(s);
  const packed = o.baseBits !== 32;
  if (!o.checkpoint) {
    saved = B * (nLayers * layer.saved + aroundSaved + picksSaved) + conn.projection.saved + sum(conn.layers, 'saved') + conn.rest.saved;
    // every layer's unpacked weights stay on the tape (each example's forward unpacks its own copy)
    if (packed) saved += B * nLayers * lw.text + lw.projection + s.perceiver.depth * lw.perceiver;
    backward = B * (nLayers * layer.grad + aroundGrad + picksGrad) + conn.projection.grad + sum(conn.layers, 'grad') + conn.rest.grad + loraParams + transient;
  } else {
    const U = w.images;
    const P = w.patches;
    const dv = s.vision.hiddenSize;
    const D = s.perceiver.depth;
    // Kept: each decoder layer's input; the projection's per-image inputs (slices of the context),
    // outputs and their concatenation; each perceiver layer's latents (the projected context is
    // one buffer all of them keep); what is outside the layers.
    const textInputs = B * nLayers * N * d;
    const connInputs = U * P * dv + 2 * U * P * d + D * U * L * d;
    saved = textInputs + B * (aroundSaved + picksSaved) + connInputs + conn.rest.saved;
    // Backward: the gradients at the layer boundaries accumulate (a perceiver layer returns one for
    // its latents and one for the projected context; each image's projection one for its input);
    // one layer, or one image's projection, is recomputed at a time (its saved set, its gradients,
    // its attention transient).
    const boundary = B * nLayers * N * d + D * (U * L * d + U * P * d) + U * P * dv + U * P * d;
    // A packed base: the recomputed layer's unpacked weights (kept by its tape) and one matrix being unpacked.
    const unpacked = (n: number) => (packed ? n + 2 * lw.largest : 0);
    // The recomputed layer peaks either when its backward ends (saved set + all its gradients) or
    // inside its attention's backward (saved set + the gradients of the ops after the attention +
    // that backward's temporaries).
    const one = (c: LayerCost, wf: number, share = 1) => (c.saved + Math.max(c.grad, c.gradAfterAttention + c.transient)) / share + (c.masks ?? 0) + unpacked(wf);
    const oneLayer = Math.max(one(layer, lw.text), one(conn.projection, lw.projection, U), ...conn.layers.map((c) => one(c, lw.perceiver)));
    backward = boundary + B * (aroundGrad + picksGrad) + conn.rest.grad + loraParams + oneLayer;
  }
  saved *= F;
  backward *= F;
  return { weights, lora, optimizer, batchInputs, resident, saved, backward, peak: resident + saved + backward };
}

/** Floats one decoder layer keeps on the tape and its gradient buffers, for a packed group (inspection). */
export function textLayerFloats(s: ModelShape, prefixLen: number, suffixLen: number, o: MemoryOptions): LayerCost {
  const Tp = prefixLen;
  const Ts = suffixLen;
  return textLayer(s, Tp + 2 * Ts, [
    { Tq: Tp, Tk: Tp, keyParts: 1, whole: false, offset: 0 },
    { Tq: Ts, Tk: Tp + Ts, keyParts: 2, whole: false, offset: Tp },
    { Tq: Ts, Tk: Tp + Ts, keyParts: 2, whole: false, offset: Tp },
  ], o);
}
