/**
 * Time and memory of one stage-1 step (LoRA training, base + contrastive loss, one example with 8
 * reference pairs = 17 images) and of scoring it, for an Idefics3 / SmolVLM checkpoint on this CPU.
 *
 *   node tools/scripts/run-ts.js plugins/backbone-idefics3/bench/step.ts <checkpoint dir> [--split] [--steps N] [--refs N]
 *
 * --steps 0 measures scoring only; --refs sets the reference pairs (default 8: 17 images). Each
 * measurement is printed as soon as it is taken, so a run stopped for memory still reports the
 * earlier ones.
 *
 * Images are random 512 x 512 RGB (SPEC §2 resizes every image to 512 x 512 first). Without --split the
 * backbone's imageSplitting option is false: one tile per image (image_seq_len tokens); with it, the
 * checkpoint's tiling (SmolVLM: 4 x 4 tiles + global per 512 image). Prints the wall time of the vision
 * tower over the 18 images (cached afterwards), of each training step (forward + backward through the
 * connector and text model) and of a scoring forward, the sequence length and the peak RSS.
 */
import { createHash } from 'crypto';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceExample, PreferenceImage, RgbImage } from '@userpref/core';
import { initRuntime, runtimeInfo } from '@userpref/runtime';
import { Idefics3Backbone } from '../src';

function image(seed: number, size = 512): PreferenceImage {
  const data = new Uint8Array(size * size * 3);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  const id = createHash('sha256').update(data).digest('hex');
  return { id, decode: async (): Promise<RgbImage> => ({ width: size, height: size, data }) };
}

function example(refs: number): PreferenceExample {
  const references = Array.from({ length: refs }, (_, r) => ({ prompt: 'a portrait of a cat in the style of van gogh, highly detailed', liked: image(2 * r), disliked: image(2 * r + 1) }));
  return { userId: 'u', references, likedFirst: references.map(() => false), target: { prompt: 'a castle on a hill at night, cinematic lighting', image0: image(900), image1: image(901), label0: 1 } };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dir = path.resolve(args[0]);
  const split = args.includes('--split');
  const opt = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
  const steps = opt('--steps', 2);
  const refs = opt('--refs', 8);
  const report = (what: string, value: unknown) => console.log(JSON.stringify({ [what]: value, rssMB: Math.round(process.memoryUsage().rss / 2 ** 20) }));
  await initRuntime({ device: 'cpu' });
  let peak = 0;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 200);
  const t0 = Date.now();
  const backbone = new Idefics3Backbone({ path: dir, imageSplitting: split, maxPromptLen: 100 }, { seed: 1, baseDir: process.cwd() });
  await backbone.init();
  const tInit = Date.now() - t0;
  const ex = example(refs);
  report('initMs', tInit);
  const t1 = Date.now();
  const prepared = await backbone.prepare([ex]);
  const tVision = Date.now() - t1;
  report('visionMs', tVision);
  const { positive: pos, negative: neg } = backbone.readout;
  const loss = () => {
    const out = backbone.pairLogits(prepared, { training: true, seed: 1 });
    const lsL = tf.logSoftmax(out.liked);
    const lsD = tf.logSoftmax(out.disliked);
    const at = (t: tf.Tensor2D, id: number) => tf.reshape(tf.slice(t, [0, id], [1, 1]), []);
    const base = tf.neg(tf.div(tf.add(at(lsL as tf.Tensor2D, pos), at(lsD as tf.Tensor2D, neg)), 2));
    const plus = tf.stack([at(out.liked, pos), at(out.disliked, pos)]);
    const minus = tf.stack([at(out.liked, neg), at(out.disliked, neg)]);
    const cp = tf.neg(tf.add(tf.slice(tf.logSoftmax(plus), [0], [1]), tf.slice(tf.logSoftmax(minus), [1], [1])));
    return tf.add(base, tf.sum(cp)) as tf.Scalar;
  };
  const stepTimes: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t = Date.now();
    const { value, grads } = tf.variableGrads(loss, backbone.adapterVariables());
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
    stepTimes.push(Date.now() - t);
    sample();
    report('trainStepMs', stepTimes[stepTimes.length - 1]);
  }
  const t2 = Date.now();
  const out = tf.tidy(() => backbone.pairLogits(prepared, { training: false }));
  await out.liked.data();
  const tScore = Date.now() - t2;
  tf.dispose([out.liked, out.disliked]);
  const m = backbone.idefics3.config;
  const rows = (prepared as unknown as { rows: Array<{ prefix: Int32Array; likedSuffix: Int32Array }> }).rows[0];
  clearInterval(timer);
  sample();
  console.log(JSON.stringify({
    checkpoint: dir,
    backend: runtimeInfo().backend,
    imageSplitting: split,
    textLayers: m.text.numLayers,
    imageSeqLen: m.imageSeqLen,
    sequenceTokens: rows.prefix.length + rows.likedSuffix.length,
    initMs: tInit,
    referencePairs: refs,
    visionMs: tVision,
    trainStepMs: stepTimes,
    scoreForwardMs: tScore,
    loraParameters: backbone.adapterVariables().reduce((s, v) => s + v.size, 0),
    peakRssMB: Math.round(peak / 2 ** 20),
  }));
  prepared.dispose();
  backbone.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
