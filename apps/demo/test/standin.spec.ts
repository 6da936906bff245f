/**
 * The demo's stand-in base (apps/demo/base/idefics2-small-standin) was written by transformers 5
 * (research/standin/build_reader_base.py), in its layout: rope_parameters, chat_template.jinja, the
 * image processor inside processor_config.json. Our processor and model must read it and give
 * transformers' own output (golden: goldens/make_standin_golden.py), and through the
 * backbone it must do what it was built for: prefer the candidate that resembles the liked
 * references, whichever that is, and have next to no preference without references.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceExample, PreferenceImage } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone, Idefics2Model, Idefics2Processor } from '@userpref/backbone-idefics2';
import { renderImage } from '@userpref/dataset-pickapic';

const BASE = path.join(__dirname, '..', 'base', 'idefics2-small-standin');

interface StandinGolden {
  model_sha256: string;
  input_ids: number[];
  images: number[];
  image_size: number;
  readout: { positive: number; negative: number };
  logits: number[];
  score: number;
}

/** The pixel recipe of goldens/make_idefics2_goldens.py, full size. */
function recipe(img: number, size: number): Float32Array {
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) out[c * size * size + y * size + x] = ((img * 7 + c * 11 + y * y * 3 + x * (img + 1) * 5 + x * y) % 33) / 16 - 1;
    }
  }
  return out;
}

const image = (id: string): PreferenceImage => ({ id, decode: () => Promise.reject(new Error('token ids need no pixels')) });

describe("the demo's stand-in base, as transformers wrote it", () => {
  let golden: StandinGolden;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = JSON.parse(await fs.readFile(path.join(__dirname, 'fixtures', 'standin_golden.json'), 'utf8')) as StandinGolden;
  });

  it('is the checkpoint the golden was made from', async () => {
    const sha = createHash('sha256').update(await fs.readFile(path.join(BASE, 'model.safetensors'))).digest('hex');
    expect(sha).toBe(golden.model_sha256);
  });

  it("the processor reads transformers 5's layout and builds Idefics2Processor's ids", async () => {
    const processor = await Idefics2Processor.fromPretrained(BASE, { usePrompt: false, maxPromptLen: null });
    const example: PreferenceExample = {
      userId: 'u',
      references: [{ prompt: 'not shown without prompts', liked: image('liked'), disliked: image('disliked') }],
      likedFirst: [false],
      target: { prompt: 'not shown', image0: image('a'), image1: image('b'), label0: 1 },
    };
    const enc = processor.encodeExample(example);
    expect(Array.from(enc.inputIds)).toEqual(golden.input_ids);
    expect(enc.imageSlots.map((s) => (s.image === 'target' ? 'target' : s.image.id))).toEqual(['disliked', 'liked', 'target']);
    expect(processor.readout).toEqual(golden.readout);
  });

  it("the model gives transformers' last-position logits and score", async () => {
    const model = await Idefics2Model.load(BASE);
    try {
      expect(model.loadReport.unused).toEqual([]);
      const n = golden.images.length;
      const size = golden.image_size;
      const px = new Float32Array(n * 3 * size * size);
      golden.images.forEach((img, i) => px.set(recipe(img, size), i * 3 * size * size));
      const pixelValues = tf.tensor4d(px, [n, 3, size, size]);
      const T = golden.input_ids.length;
      const out = model.forward({ inputIds: golden.input_ids, batch: 1, seqLen: T, pixelValues, pixelAttentionMask: new Uint8Array(n * size * size).fill(1) });
      const logits = out.logits.dataSync();
      let num = 0;
      let den = 0;
      logits.forEach((v, i) => {
        num = Math.max(num, Math.abs(v - golden.logits[i]));
        den = Math.max(den, Math.abs(golden.logits[i]));
      });
      expect(num / den).toBeLessThan(1e-5);
      const { positive, negative } = golden.readout;
      expect(1 / (1 + Math.exp(logits[negative] - logits[positive]))).toBeCloseTo(golden.score, 5);
      tf.dispose([pixelValues, out.logits]);
    } finally {
      model.dispose();
    }
  });
});

type Attrs = Parameters<typeof renderImage>[0]['attrs'];

describe('the stand-in base reads a history through the backbone (usePrompt 0, as in the demo)', () => {
  let backbone: Idefics2Backbone;
  // Two image types that differ in every attribute (value indices into synthpick ATTRIBUTES).
  const A: Attrs = { shape: 0, colour: 0, texture: 1, layout: 0, background: 0, style: 0 };
  const B: Attrs = { shape: 2, colour: 4, texture: 3, layout: 2, background: 1, style: 2 };

  const drawn = (attrs: Attrs, seed: number): PreferenceImage => ({
    id: `${JSON.stringify(attrs)}#${seed}`,
    decode: () => Promise.resolve(renderImage({ attrs, seed, uid: String(seed) }, 64)),
  });

  /** `pairs` references in which the user liked `liked` over the other type; target: a new A (image0) vs a new B. */
  function example(liked: Attrs | null, pairs: number): PreferenceExample {
    const disliked = liked === A ? B : A;
    return {
      userId: 'u',
      references: liked ? Array.from({ length: pairs }, (_, i) => ({ prompt: 'x', liked: drawn(liked, 10 + i), disliked: drawn(disliked, 20 + i) })) : [],
      likedFirst: Array.from({ length: liked ? pairs : 0 }, () => false),
      target: { prompt: 'x', image0: drawn(A, 99), image1: drawn(B, 98), label0: 1 },
    };
  }

  /** P("+") of image0 and image1 (label0 = 1: the liked sequence ends with image0). */
  async function scores(ex: PreferenceExample): Promise<[number, number]> {
    const out = backbone.pairLogits(await backbone.prepare([ex]), { training: false });
    const { positive, negative } = backbone.readout;
    const p = (z: tf.Tensor2D) => {
      const v = z.dataSync();
      return 1 / (1 + Math.exp(v[negative] - v[positive]));
    };
    const r: [number, number] = [p(out.liked), p(out.disliked)];
    tf.dispose([out.liked, out.disliked]);
    return r;
  }

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    backbone = new Idefics2Backbone({ path: path.basename(BASE), usePrompt: false }, { seed: 1, baseDir: path.dirname(BASE) });
    await backbone.init();
  });

  afterAll(() => backbone?.dispose());

  it('prefers the candidate like the liked references, and turns with the labels', async () => {
    const [likesA0, likesA1] = await scores(example(A, 4));
    const [likesB0, likesB1] = await scores(example(B, 4));
    expect(likesA0 - likesA1).toBeGreaterThan(0.5);
    expect(likesB1 - likesB0).toBeGreaterThan(0.5);
  });

  it('has next to no opinion without references: the vote is read from the answers', async () => {
    // Only the "+"/"-" answers carry a sign to read; what leaks from the image tokens (their fitted
    // codes are not exactly zero there) moves the score by well under 0.02.
    const [s0, s1] = await scores(example(null, 0));
    expect(Math.abs(s0 - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(s1 - 0.5)).toBeLessThan(0.02);
  });
});
