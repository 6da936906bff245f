/**
 * The memory model against the measured peak of a real training micro-step (test/step.ts) on three
 * model sizes: the tiny and small presets and a third, wider size made here. Measured on the plain
 * cpu backend, whose tensor sharing is the model's (a saved tensor, a clone and a reshape share
 * their buffer, as in TensorFlow on a GPU). The wasm backend copies every tensor the tape saves
 * and tfjs-node counts every reshape as a new buffer, so their registries read higher.
 */
import * as tf from '@tensorflow/tfjs-core';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PRESETS, writeIdefics2Checkpoint, type Idefics2Backbone, type PresetName } from '@userpref/backbone-idefics2';
import { initRuntime } from '@userpref/runtime';
import { BufferMeter, predictTrainingStep } from '@userpref/memory-model';
import { example, measureStep, openBackbone } from './step';

/** A third size, wider and deeper than `small` in the text model (test only). */
const MEDIUM = {
  vision: { hiddenSize: 48, intermediateSize: 96, layers: 1, heads: 2, patchSize: 8 },
  perceiver: { latents: 12, depth: 1, heads: 4, headDim: 24, kvHeads: 2 },
  text: { hiddenSize: 96, intermediateSize: 256, layers: 3, heads: 4, kvHeads: 2, maxPositions: 4096 },
  baseVocabSize: 397,
  image: { shortestEdge: 56, longestEdge: 64 },
};

describe('memory model vs measured peak of a training micro-step (cpu backend)', () => {
  const dirs: string[] = [];
  beforeAll(async () => {
    BufferMeter.install();
    await initRuntime({ device: 'cpu', prefer: 'cpu' });
    (PRESETS as Record<string, typeof MEDIUM>).medium = MEDIUM;
  });
  afterAll(async () => {
    delete (PRESETS as Record<string, unknown>).medium;
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  // (The cpu backend is slow: a few reference pairs keep each case near a minute here.)
  type Case = [preset: string, batch: number, refs: number, baseBits: 32 | 8 | 4, checkpoint: boolean];
  const cases: Case[] = [
    ['tiny', 2, 4, 32, false],
    ['tiny', 2, 4, 32, true],
    ['tiny', 1, 4, 4, false],
    ['tiny', 1, 4, 4, true],
    ['small', 1, 4, 32, false],
    ['small', 1, 4, 32, true],
    ['medium', 1, 3, 32, false],
    ['medium', 1, 3, 8, true],
  ];
  for (const [preset, B, refs, baseBits, checkpoint] of cases) {
    it(`${preset}: batch ${B}, ${refs} reference pairs, ${baseBits === 32 ? 'float32' : `${baseBits}-bit`} base, checkpointing ${checkpoint ? 'on' : 'off'}: predicted peak within 10%`, async () => {
      // Bytes alive before this case (earlier cases' leftovers) are not this model's.
      const base = BufferMeter.install().live;
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), `memory-model-${preset}-`));
      dirs.push(dir);
      await writeIdefics2Checkpoint({ preset: preset as PresetName, outDir: dir, seed: 0 });
      const backbone: Idefics2Backbone = await openBackbone(dir, { baseBits, checkpointing: checkpoint });
      try {
        expect(tf.getBackend()).toBe('cpu');
        const batch = Array.from({ length: B }, (_, i) => example(`u${i}`, refs, i + 1, 48));
        const m = await measureStep(backbone, batch);
        const p = predictTrainingStep(backbone.idefics2.config, m.workload, { baseBits, checkpoint, lora: { r: 8, alpha: 8, dropout: 0.1 }, attention: 'batched' });
        const resident = m.resident - base;
        const peak = m.peak - base;
        console.log(JSON.stringify({ preset, B, refs, baseBits, checkpoint, workload: m.workload, residentMB: [resident / 1e6, p.resident / 1e6], peakMB: [peak / 1e6, p.peak / 1e6], ratio: p.peak / peak }));
        expect(Math.abs(p.resident / resident - 1)).toBeLessThan(0.01);
        expect(Math.abs(p.peak / peak - 1)).toBeLessThan(0.1);
      } finally {
        backbone.dispose();
      }
    }, 600000);
  }
});
