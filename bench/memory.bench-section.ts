/**
 * `npm run bench -- quant memory`: what the packed frozen base and activation checkpointing cost
 * and save.
 *
 * - quant: the error of 8-bit (absmax per output channel) and 4-bit (NF4, blocks of 64) weights
 *   against float32 for layers with idefics2-8b's shapes (random N(0, 0.02) weights, idefics2-8b's
 *   initializer_range; trained weights have heavier tails), and the time to unpack one.
 * - memory: the memory model's peak for idefics2-8b (float32 / 8-bit / 4-bit base, checkpointing
 *   off / on, batch 1 and 2) against 24 / 48 / 80 GB cards.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { PackedMatrix } from '@userpref/quant';
import { predictTrainingStep, type MemoryOptions, type ModelShape, type Workload } from '@userpref/memory-model';
import { registerSection } from './main';
import { benchQuick } from './quick';

/**
 * HuggingFaceM4/idefics2-8b's config.json as parseIdefics2Config reads it (vision 1152 x 27,
 * intermediate 4304, patch 14, image_size 980; perceiver 64 latents x 3 layers, 16 heads x 96, 4 KV
 * heads; Mistral-7B 4096 x 32, intermediate 14336, 32 heads / 8 KV, vocab 32003).
 */
export const IDEFICS2_8B: ModelShape = {
  vision: { hiddenSize: 1152, intermediateSize: 4304, numLayers: 27, numChannels: 3, patchSize: 14, numPatchesPerSide: 70 },
  perceiver: { hiddenSize: 4096, numLatents: 64, depth: 3, numHeads: 16, headDim: 96, numKvHeads: 4 },
  text: { vocabSize: 32003, hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128 },
  tieWordEmbeddings: false,
};

/**
 * The paper's example (SPEC §2): 8 reference pairs, 17 images of 378 x 378 (27 x 27 = 729 patches),
 * ~1.9k tokens: a prefix of 16 image turns and a ~110-token target turn (64 image tokens, the
 * prompt, "Assistant:"). Images: 16 references + 2 candidates per example.
 */
export function paperWorkload(batch: number): Workload {
  return { batch, prefixLen: 1800, suffixLen: 110, images: 18 * batch, patches: 729, prefixImages: 16 };
}

function relError(a: Float32Array, b: Float32Array): { frob: number; maxAbs: number } {
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const e = a[i] - b[i];
    num += e * e;
    den += b[i] * b[i];
    maxAbs = Math.max(maxAbs, Math.abs(e));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { frob: Math.sqrt(num / den), maxAbs: maxAbs / scale };
}

registerSection({
  name: 'quant',
  run: async () => {
    await initRuntime({ device: 'cpu' });
    const layers: Array<[string, number, number]> = benchQuick()
      ? [['quick: 256 -> 384', 256, 384]]
      : [
          ['text q|k|v (4096 -> 6144)', 4096, 6144],
          ['text down_proj (14336 -> 4096)', 14336, 4096],
        ];
    const rows = [];
    for (const [name, inF, out] of layers) {
      const n = inF * out;
      const w = new Float32Array(n);
      // Box-Muller normals, std 0.02 (a fixed LCG: the same weights every run)
      let s = 12345;
      const u = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) + 0.5) / 4294967296;
      for (let i = 0; i < n; i += 2) {
        const r = Math.sqrt(-2 * Math.log(u()));
        const t = 2 * Math.PI * u();
        w[i] = 0.02 * r * Math.cos(t);
        if (i + 1 < n) w[i + 1] = 0.02 * r * Math.sin(t);
      }
      const x = tf.randomNormal([64, inF], 0, 1, 'float32', 7) as tf.Tensor2D;
      const wt = tf.tensor2d(w, [inF, out]);
      const ref = tf.matMul(x, wt).dataSync() as Float32Array;
      wt.dispose();
      for (const opts of [{ bits: 8 as const }, { bits: 4 as const }, { bits: 4 as const, doubleQuant: true }]) {
        const t0 = Date.now();
        const p = PackedMatrix.quantizeInOut(w, inF, out, opts);
        const quantMs = Date.now() - t0;
        p.materialize().dispose(); // warm-up
        const t1 = Date.now();
        const m = p.materialize();
        const unpackMs = Date.now() - t1;
        const y = tf.matMul(x, m).dataSync() as Float32Array;
        const e = relError(y, ref);
        const label = `${opts.bits}-bit${'doubleQuant' in opts ? ' + double quant' : ''}`;
        const row = { layer: name, format: label, bytesPerWeight: p.bytes / n, outputRelErrorFrobenius: e.frob, outputMaxAbsErrorOverMaxAbs: e.maxAbs, quantizeMs: quantMs, unpackMs, backend: tf.getBackend() };
        console.log(`${name.padEnd(32)} ${label.padEnd(22)} ${row.bytesPerWeight.toFixed(3)} B/weight  output error ${(e.frob * 100).toFixed(2)}% (Frobenius), max ${(e.maxAbs * 100).toFixed(2)}% of max |y|  unpack ${unpackMs} ms on ${row.backend}`);
        rows.push(row);
        m.dispose();
        p.dispose();
      }
      x.dispose();
    }
    return { layers: rows };
  },
});

registerSection({
  name: 'memory',
  run: async () => {
    const GB = 1e9;
    const rows = [];
    console.log('idefics2-8b, LoRA r 8 (paper targets), 8 reference pairs (~1.9k tokens), memory model (GPU sharing: saved tensors and reshapes alias):');
    console.log(`${'base'.padEnd(8)} ${'ckpt'.padEnd(5)} ${'batch'.padEnd(6)} ${'weights'.padStart(8)} ${'saved'.padStart(8)} ${'backward'.padStart(9)} ${'peak'.padStart(8)}  fits`);
    for (const bits of [32, 8, 4] as const) {
      for (const checkpoint of [false, true]) {
        for (const batch of [1, 2]) {
          const o: MemoryOptions = { baseBits: bits, checkpoint, lora: { r: 8, alpha: 8, dropout: 0.1 }, attention: 'batched' };
          const p = predictTrainingStep(IDEFICS2_8B, paperWorkload(batch), o);
          const fits = [24, 48, 80].filter((g) => p.peak <= g * GB * 0.95);
          const row = { baseBits: bits, checkpoint, batch, weightsGB: p.weights / GB, residentGB: p.resident / GB, savedGB: p.saved / GB, backwardGB: p.backward / GB, peakGB: p.peak / GB, fits: fits.map((g) => `${g} GB`) };
          rows.push(row);
          console.log(`${(bits === 32 ? 'float32' : `${bits}-bit`).padEnd(8)} ${(checkpoint ? 'on' : 'off').padEnd(5)} ${String(batch).padEnd(6)} ${row.weightsGB.toFixed(1).padStart(8)} ${row.savedGB.toFixed(1).padStart(8)} ${row.backwardGB.toFixed(1).padStart(9)} ${row.peakGB.toFixed(1).padStart(8)}  ${fits.length ? fits.join(', ') : 'none of 24/48/80 GB'}`);
        }
      }
    }
    return { idefics2_8b: rows };
  },
});

registerSection({
  name: 'memory-step',
  run: async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { BufferMeter } = require('@userpref/memory-model') as typeof import('@userpref/memory-model');
    BufferMeter.install();
    await initRuntime({ device: 'cpu' });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const step = require('../plugins/backbone-idefics2/test/memory-model/step') as typeof import('../plugins/backbone-idefics2/test/memory-model/step');
    const rows = [];
    console.log(`one training micro-step (batch 1, 8 reference pairs, LoRA r 8, dropout 0.1) on ${tf.getBackend()}; peak = live tensor buffers (tf.memory().numBytes in brackets), predicted = the memory model`);
    // Quick: tiny only, one measured step after the warm-up.
    const repeats = benchQuick() ? 0 : 2;
    for (const preset of benchQuick() ? (['tiny'] as const) : (['tiny', 'small'] as const)) {
      const dir = await step.writePreset(preset);
      const batch = [step.example('u0', 8, 1, 48)];
      let ref: Float32Array | null = null;
      for (const baseBits of [32, 8, 4] as const) {
        for (const checkpointing of [false, true]) {
          const base = BufferMeter.install().live;
          const b = await step.openBackbone(dir, { baseBits, checkpointing });
          await step.measureStep(b, batch); // warm-up
          const times: number[] = [];
          let m = await step.measureStep(b, batch);
          times.push(m.ms);
          for (let i = 0; i < repeats; i++) {
            const again = await step.measureStep(b, batch);
            times.push(again.ms);
            if (again.peak > m.peak) m = again;
          }
          const ms = times.sort((x, y) => x - y)[Math.floor(times.length / 2)];
          const o: MemoryOptions = { baseBits, checkpoint: checkpointing, lora: { r: 8, alpha: 8, dropout: 0.1 }, attention: tf.getBackend() === 'wasm' ? 'per-head' : 'batched' };
          const pred = predictTrainingStep(b.idefics2.config, m.workload, o);
          // logits of the same batch in evaluation, against the float32 base
          const p = await b.prepare(batch);
          const z = b.pairLogits(p, { training: false });
          const logits = Float32Array.from([...z.liked.dataSync(), ...z.disliked.dataSync()]);
          tf.dispose([z.liked, z.disliked]);
          p.dispose();
          if (baseBits === 32 && !checkpointing) ref = logits;
          const err = ref ? relError(logits, ref) : null;
          const row = { preset, baseBits, checkpointing, tokens: m.workload.prefixLen + 2 * m.workload.suffixLen, stepMs: ms, residentMB: (m.resident - base) / 1e6, peakMB: (m.peak - base) / 1e6, peakTensorBytesMB: m.peakTensorBytes / 1e6, predictedPeakMB: pred.peak / 1e6, logitsRelErrorVsFloat32: err?.maxAbs ?? null };
          rows.push(row);
          console.log(`${preset.padEnd(6)} ${(baseBits === 32 ? 'float32' : `${baseBits}-bit`).padEnd(8)} checkpointing ${checkpointing ? 'on ' : 'off'}  step ${String(ms).padStart(6)} ms  resident ${row.residentMB.toFixed(1).padStart(6)} MB  peak ${row.peakMB.toFixed(1).padStart(7)} MB [${row.peakTensorBytesMB.toFixed(1)}]  predicted ${row.predictedPeakMB.toFixed(1).padStart(7)} MB  logits vs float32 ${err ? (err.maxAbs * 100).toFixed(3) + '% of max |logit|' : '-'}`);
          b.dispose();
        }
      }
    }
    return { steps: rows };
  },
});
