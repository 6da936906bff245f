/**
 * The tfjs IDEFICS2 against transformers' Idefics2ForConditionalGeneration on the tiny random
 * checkpoint (goldens: goldens/make_idefics2_goldens.py).
 */
import { promises as fs } from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Model } from '../src/model/idefics2';
import { bucketPosition } from '@userpref/mllm';
import { checkFingerprint, goldenPaddedInputs, readGolden, recipeBatch, relErr, tinyCheckpoint, type ModelGolden } from './model-fixtures';

// The brief asks for 1e-4 relative; float32 on wasm reaches ~3e-7, so a tighter bound catches more.
const TOL = 1e-5;

describe('Idefics2Model vs transformers (tiny checkpoint)', () => {
  let dir: string;
  let golden: ModelGolden;
  let model: Idefics2Model;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = await readGolden<ModelGolden>('idefics2_tiny.json');
    dir = await tinyCheckpoint();
    await checkFingerprint(dir, golden.fingerprint);
    model = await Idefics2Model.load(dir);
  });

  afterAll(async () => {
    model?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads every size from config.json and uses every tensor of the checkpoint', () => {
    expect(model.config.text.hiddenSize).toBe(64);
    expect(model.config.perceiver.numLatents).toBe(8);
    expect(model.config.vision.numPatchesPerSide).toBe(8);
    expect(model.loadReport.unused).toEqual([]);
    expect(model.loadReport.tensorsRead).toBe(83);
  });

  it('position buckets equal Idefics2VisionEmbeddings for grids of 70 (idefics2-8b) and 8', () => {
    for (const [perSide, table] of Object.entries(golden.buckets)) {
      for (const [count, ids] of Object.entries(table)) {
        const ours = ids.map((_, i) => bucketPosition(i, Number(count), Number(perSide)));
        expect({ perSide, count, ours }).toEqual({ perSide, count, ours: ids });
      }
    }
  });

  it('vision tower and connector match on variable-resolution images', () => {
    const g = golden.single;
    const { pixelValues, mask } = recipeBatch([0, 1], golden.image_sizes, golden.image_size);
    const vis = model.visionTower(pixelValues, mask);
    const conn = model.connector(vis.hidden, vis.patchValid);
    const hidden = vis.hidden.dataSync();
    expect(relErr(hidden.slice(0, 64), g.vision_image0_first64)).toBeLessThan(TOL);
    // Image 1 is 28 x 32: 7 x 8 real patches of 8 x 8.
    const P = vis.hidden.shape[1];
    let valid = 0;
    let absSum = 0;
    for (let i = 0; i < P; i++) valid += vis.patchValid[P + i];
    for (let i = P * 32; i < 2 * P * 32; i++) absSum += Math.abs(hidden[i]);
    expect(valid).toBe(g.vision_image1_valid_patches);
    expect(Math.abs(absSum - g.vision_image1_abs_sum) / g.vision_image1_abs_sum).toBeLessThan(TOL);
    expect(relErr(conn.dataSync(), g.connector_images01)).toBeLessThan(TOL);
    tf.dispose([pixelValues, vis.hidden, conn]);
  });

  it('last-position logits, attention and hidden state of 8 pairs + target (17 images) match', () => {
    const g = golden.single;
    const { pixelValues, mask } = recipeBatch(g.images, golden.image_sizes, golden.image_size);
    const T = g.input_ids.length;
    const before = tf.memory().numTensors;
    const out = model.forward(
      { inputIds: g.input_ids, batch: 1, seqLen: T, pixelValues, pixelAttentionMask: mask },
      { outputAttentions: [model.config.text.numLayers - 1], outputHiddenStates: true },
    );
    expect(out.logits.shape).toEqual([1, model.config.text.vocabSize]);
    expect(relErr(out.logits.dataSync(), g.logits)).toBeLessThan(TOL);
    const att = out.attentions![model.config.text.numLayers - 1]!;
    expect(att.shape).toEqual([1, model.config.text.numHeads, T, T]);
    const H = model.config.text.numHeads;
    const lastRow: number[] = [];
    const a = att.dataSync();
    for (let h = 0; h < H; h++) for (let k = 0; k < T; k++) lastRow.push(a[((h * T) + T - 1) * T + k]);
    expect(relErr(lastRow, g.attention_last_layer_last_query)).toBeLessThan(TOL);
    const hs = out.hiddenStates!;
    expect(hs).toHaveLength(model.config.text.numLayers + 1);
    // transformers' last hidden state is after the final norm; ours are the raw layer outputs.
    const lastH = tf.tidy(() => {
      const row = tf.slice(hs[hs.length - 1], [0, T - 1, 0], [1, 1, 64]).reshape([1, 64]);
      const v = tf.mean(tf.square(row), -1, true);
      return tf.mul(tf.mul(row, tf.rsqrt(tf.add(v, model.config.text.rmsNormEps))), model.params.text.norm.w);
    });
    expect(relErr(lastH.dataSync(), g.hidden_last_layer_last_position)).toBeLessThan(TOL);
    tf.dispose([out.logits, ...hs, att, lastH]);
    expect(tf.memory().numTensors).toBe(before);
    pixelValues.dispose();
  });

  it('a right-padded batch of two lengths gives each sequence its unpadded logits', () => {
    const g = golden.padded;
    const { ids, am, T, pixelValues, mask } = goldenPaddedInputs(golden);
    const out = model.forward({ inputIds: ids, batch: 2, seqLen: T, attentionMask: am, pixelValues, pixelAttentionMask: mask });
    const logits = out.logits.arraySync();
    for (let b = 0; b < 2; b++) {
      expect(relErr(logits[b], g.logits[b])).toBeLessThan(TOL);
      expect(relErr(logits[b], g.logits_unpadded[b])).toBeLessThan(TOL);
    }
    // Each alone, unpadded.
    for (let b = 0; b < 2; b++) {
      const n = g.images[b].length;
      const start = b === 0 ? 0 : g.images[0].length;
      const px = tf.slice(pixelValues, [start, 0, 0, 0], [n, -1, -1, -1]);
      const per = golden.image_size * golden.image_size;
      const one = model.forward({ inputIds: g.input_ids[b], batch: 1, seqLen: g.input_ids[b].length, pixelValues: px, pixelAttentionMask: mask.slice(start * per, (start + n) * per) });
      expect(relErr(one.logits.dataSync(), g.logits_unpadded[b])).toBeLessThan(TOL);
      tf.dispose([px, one.logits]);
    }
    tf.dispose([pixelValues, out.logits]);
  });

  it('left padding with an explicit mask keeps real keys only (mask respected, last real index read)', () => {
    const g = golden.padded;
    // Sequence 0 left-padded by 5: positions shift by 5, so compare with transformers' semantics
    // only through invariance of what the mask hides: pads with two different ids give equal logits.
    const s = g.input_ids[0];
    const T = s.length + 5;
    const run = (padId: number) => {
      const ids = new Int32Array(T).fill(padId);
      ids.set(s, 5);
      const am = new Uint8Array(T).fill(1);
      am.fill(0, 0, 5);
      const { pixelValues, mask } = recipeBatch(g.images[0], golden.image_sizes, golden.image_size);
      const out = model.forward({ inputIds: ids, batch: 1, seqLen: T, attentionMask: am, pixelValues, pixelAttentionMask: mask });
      const v = out.logits.dataSync().slice();
      tf.dispose([out.logits, pixelValues]);
      return v;
    };
    const a = run(0);
    const b = run(5);
    expect(relErr(a, b)).toBeLessThan(1e-6);
    // RoPE scores depend on relative positions only, so the shift by 5 leaves the logits unchanged.
    expect(relErr(a, g.logits_unpadded[0])).toBeLessThan(TOL);
  });
});
