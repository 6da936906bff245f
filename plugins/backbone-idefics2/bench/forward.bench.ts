/**
 * Forward throughput of the tfjs IDEFICS2 on this CPU: for the `tiny` and `small` random presets,
 * one SPEC-shaped example (8 reference pairs + target = 17 images, two target sequences like
 * pairLogits) timed as: vision tower (once per image, what the cache saves), connector + text
 * forward in eval, and connector + text forward + backward w.r.t. LoRA (a training step's model
 * part). Reports text tokens/s and peak RSS.
 *
 * Run: node tools/scripts/run-ts.js plugins/backbone-idefics2/bench/forward.bench.ts [tiny|small ...]
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime, runtimeInfo } from '@userpref/runtime';
import { writeIdefics2Checkpoint, type PresetName } from '../src/checkpoint';
import { LoraAdapter } from '../src/lora/adapter';
import { PAPER_LORA } from '../src/lora/lora';
import { Idefics2Model } from '../src/model/idefics2';

export interface ForwardBenchResult {
  preset: PresetName;
  backend: string;
  parameters: number;
  images: number;
  sequences: number;
  tokensPerSequence: number;
  visionMsPerImage: number;
  forwardMs: number;
  forwardTokensPerSecond: number;
  trainStepMs: number;
  trainTokensPerSecond: number;
  peakRssMb: number;
}

function timeIt(fn: () => void, repeats: number): number {
  fn(); // warm-up (kernel set-up, allocation)
  const t = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e6 / repeats;
}

export async function benchForward(preset: PresetName, repeats = 3): Promise<ForwardBenchResult> {
  await initRuntime({ device: 'cpu' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `bench-idefics2-${preset}-`));
  let peak = process.memoryUsage().rss;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 20);
  try {
    const written = await writeIdefics2Checkpoint({ preset, outDir: dir, seed: 0 });
    const model = await Idefics2Model.load(dir);
    const adapter = LoraAdapter.attach(model, { ...PAPER_LORA, dropout: 0 }, 0);
    const c = model.config;
    const L = c.perceiver.numLatents;
    const size = c.vision.imageSize;
    const nImages = 17;
    // SPEC §2 layout: per image ~ "User:" + fake + L image tokens + fake + ~20 prompt tokens + answer turn.
    const ids: number[] = [c.text.bosTokenId ?? 1];
    for (let i = 0; i < nImages; i++) {
      ids.push(5, 6, 7);
      ids.push(c.imageTokenId - 1, ...Array(L).fill(c.imageTokenId), c.imageTokenId - 1);
      for (let k = 0; k < 20; k++) ids.push(10 + ((i * 7 + k) % 200));
      if (i < nImages - 1) ids.push(11, 12, 13, 14);
    }
    const T = ids.length;
    const pixels = tf.randomUniform([nImages, 3, size, size], -1, 1, 'float32', 1) as tf.Tensor4D;
    let vision = model.visionTower(pixels, null);
    const visionMs = timeIt(() => {
      vision.hidden.dispose();
      vision = model.visionTower(pixels, null);
    }, repeats);
    // Two sequences (liked / disliked target) as pairLogits runs them.
    const ids2 = [...ids, ...ids];
    const run = () => {
      const feats = model.connector(vision.hidden, vision.patchValid);
      const both = tf.concat([feats, feats], 0) as tf.Tensor3D;
      const emb = model.embed(ids2, 2, T, both);
      const out = model.textForward(emb.embeds, { lastIndex: emb.lastIndex, ctx: { training: false } });
      const v = out.logits.dataSync()[0];
      tf.dispose([feats, both, emb.embeds, out.logits]);
      return v;
    };
    const forwardMs = timeIt(() => void run(), repeats);
    const vars = adapter.variables();
    const trainStepMs = timeIt(() => {
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const feats = model.connector(vision.hidden, vision.patchValid, { training: true, seed: 1 });
          const both = tf.concat([feats, feats], 0) as tf.Tensor3D;
          const emb = model.embed(ids2, 2, T, both);
          const out = model.textForward(emb.embeds, { lastIndex: emb.lastIndex, ctx: { training: true, seed: 1 } });
          return tf.mean(out.logits) as tf.Scalar;
        }),
        vars,
      );
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    }, repeats);
    sample();
    tf.dispose([pixels, vision.hidden]);
    adapter.detach();
    model.dispose();
    return {
      preset,
      backend: runtimeInfo()?.backend ?? tf.getBackend(),
      parameters: written.parameters,
      images: nImages,
      sequences: 2,
      tokensPerSequence: T,
      visionMsPerImage: visionMs / nImages,
      forwardMs,
      forwardTokensPerSecond: (2 * T) / (forwardMs / 1000),
      trainStepMs,
      trainTokensPerSecond: (2 * T) / (trainStepMs / 1000),
      peakRssMb: peak / 2 ** 20,
    };
  } finally {
    clearInterval(timer);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module || process.argv[1] === __filename) {
  (async () => {
    const presets = (process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['tiny', 'small']) as PresetName[];
    for (const p of presets) {
      const r = await benchForward(p);
      console.log(JSON.stringify(r));
    }
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
