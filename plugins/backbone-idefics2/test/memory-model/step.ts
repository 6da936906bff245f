/**
 * One LoRA training micro-step of the backbone as the trainer runs it (pairLogits in training mode
 * under tf.variableGrads, the gradients added into an accumulator), with the optimizer's resident
 * state (AdamW first and second moments and the accumulator, one LoRA-sized tensor each) live, and
 * the live tensor bytes metered throughout.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'crypto';
import type { PreferenceExample, PreferenceImage, RgbImage } from '@userpref/core';
import { Idefics2Backbone, writeIdefics2Checkpoint, type PresetName } from '@userpref/backbone-idefics2';
import { BufferMeter } from '@userpref/memory-model';
import type { Workload } from '@userpref/memory-model';

function image(seed: number, width: number, height: number): PreferenceImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * (seed * 2 + 3) + seed * 29 + ((i / 7) | 0)) % 256;
  const id = createHash('sha256').update(data).update(`${width}x${height}`).digest('hex');
  return { id, decode: async (): Promise<RgbImage> => ({ width, height, data }) };
}

/** An example with `refs` reference pairs; images of `side` x `side` pixels. */
export function example(user: string, refs: number, seed: number, side: number, prompt = 'a cat on a chair'): PreferenceExample {
  const references = Array.from({ length: refs }, (_, i) => ({ prompt: `${prompt} ${i}`, liked: image(seed * 100 + 2 * i, side, side), disliked: image(seed * 100 + 2 * i + 1, side, side) }));
  return {
    userId: user,
    references,
    likedFirst: references.map((_, i) => i % 2 === 0),
    target: { prompt: 'a red car at night', image0: image(seed * 100 + 90, side, side), image1: image(seed * 100 + 91, side, side), label0: 1 },
  };
}

export interface StepMeasurement {
  /** Live buffer bytes before the step (weights, LoRA, optimizer state, the prepared batch). */
  readonly resident: number;
  /** Peak live buffer bytes during the step. */
  readonly peak: number;
  /** tf.memory().numBytes at its peak during the step. */
  readonly peakTensorBytes: number;
  /** Live buffer bytes when the forward pass returned (what the tape saves + the loss). */
  readonly afterForward: number;
  readonly ms: number;
  /** The micro-batch as the memory model describes it (from the prepared batch). */
  readonly workload: Workload;
}

/** The workload of a prepared batch (its shared-prefix layout). */
function workloadOf(prepared: unknown, batch: PreferenceExample[]): Workload {
  const p = prepared as { size: number; context: tf.Tensor3D; shared: { prefixLengths: number[]; suffixLengths: number[] } };
  const uniq = (xs: number[]) => {
    if (new Set(xs).size !== 1) throw new Error(`examples of different lengths (${xs.join(', ')}): the model takes one length`);
    return xs[0];
  };
  return {
    batch: p.size,
    prefixLen: uniq(p.shared.prefixLengths),
    suffixLen: uniq(p.shared.suffixLengths),
    images: p.context.shape[0],
    patches: p.context.shape[1],
    prefixImages: uniq(batch.map((e) => 2 * e.references.length)),
  };
}

export async function writePreset(preset: PresetName): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `memory-model-${preset}-`));
  await writeIdefics2Checkpoint({ preset, outDir: dir, seed: 0 });
  return dir;
}

export async function openBackbone(dir: string, options: Record<string, unknown> = {}): Promise<Idefics2Backbone> {
  const b = new Idefics2Backbone({ path: path.basename(dir), maxPromptLen: 40, imageCacheBytes: 2 ** 28, ...options }, { seed: 1, baseDir: path.dirname(dir) });
  await b.init();
  return b;
}

/** Meters one training micro-step on `batch`. */
export async function measureStep(backbone: Idefics2Backbone, batch: PreferenceExample[], seed = 7): Promise<StepMeasurement> {
  const vars = backbone.adapterVariables();
  // Trainer-resident state: AdamW m and v, the gradient accumulator.
  const state: tf.Tensor[] = vars.flatMap((v) => [tf.zerosLike(v), tf.zerosLike(v), tf.zerosLike(v)]);
  const prepared = await backbone.prepare(batch);
  const meter = BufferMeter.install();
  const resident = meter.live;
  let afterForward = 0;
  const t0 = Date.now();
  meter.resetPeak();
  try {
    const { value, grads } = tf.variableGrads(() => {
      const z = backbone.pairLogits(prepared, { training: true, seed });
      const r = backbone.readout;
      const loss = tf.tidy(() => {
        const lp = tf.logSoftmax(z.liked);
        const ln = tf.logSoftmax(z.disliked);
        const pick = (t: tf.Tensor2D, id: number) => tf.slice(t, [0, id], [-1, 1]);
        return tf.neg(tf.mean(tf.add(pick(lp, r.positive), pick(ln, r.negative)))) as tf.Scalar;
      });
      tf.dispose([z.liked, z.disliked]);
      afterForward = meter.live;
      return loss;
    }, vars);
    value.dispose();
    // Accumulate as the trainer does (acc + g, then the old acc and g are freed).
    vars.forEach((v, i) => {
      const g = grads[v.name];
      const sum = tf.add(state[3 * i + 2], g);
      state[3 * i + 2].dispose();
      g.dispose();
      state[3 * i + 2] = sum;
    });
    return { resident, peak: meter.peak, peakTensorBytes: meter.peakTensorBytes, afterForward, ms: Date.now() - t0, workload: workloadOf(prepared, batch) };
  } finally {
    prepared.dispose();
    tf.dispose(state);
  }
}
