/**
 * The 'idefics3' Backbone on the committed tiny checkpoints: its liked-target logits equal
 * transformers' on the golden sequence; the shared-prefix path equals two full sequences (with and
 * without preference tokens, candidates of different tile layouts); history sessions equal
 * pairLogits; PEFT adapters made by PEFT reproduce PEFT's logits and survive a save / load.
 */
import { promises as fs } from 'fs';
import { spawnSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceExample, PrefixContext, PrefixProvider } from '@userpref/core';
import { LoraAdapter, padRows } from '@userpref/mllm';
import { initRuntime } from '@userpref/runtime';
import { Idefics3Backbone, Idefics3Model, processIdefics3Image } from '../src';
import { ARCHS, FIXTURES, checkpointDir, fixtureImage, readGolden, readImage, relErr } from './fixtures';

const TOL = 1e-5;

/** The golden script's single sequence: pairs (0 disliked, 1 liked), (2, 3), target image 4 vs `other`. */
function goldenExample(other: number, label0 = 1): PreferenceExample {
  return {
    userId: 'u',
    references: [
      { prompt: 'a red car', disliked: fixtureImage(0), liked: fixtureImage(1) },
      { prompt: 'a cat on a chair', disliked: fixtureImage(2), liked: fixtureImage(3) },
    ],
    likedFirst: [false, false],
    target: { prompt: 'a red car', image0: label0 >= 0.5 ? fixtureImage(4) : fixtureImage(other), image1: label0 >= 0.5 ? fixtureImage(other) : fixtureImage(4), label0 },
  };
}

class FixedPrefix implements PrefixProvider {
  readonly variable: tf.Variable;
  constructor(readonly length: number, d: number) {
    this.variable = tf.variable(tf.randomUniform([length, d], 0, 1, 'float32', 5), true);
  }
  prefix(ctx: PrefixContext): { embeddings: tf.Tensor3D } {
    return { embeddings: tf.tile(tf.expandDims(this.variable, 0), [ctx.historyMean.shape[0], 1, 1]) as tf.Tensor3D };
  }
}

const read = (t: tf.Tensor) => Array.from(t.dataSync());

describe.each(ARCHS)('Idefics3Backbone on %s', (arch) => {
  let backbone: Idefics3Backbone;
  let tmp: string;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics3-backbone-'));
    backbone = new Idefics3Backbone({ path: arch, maxPromptLen: null }, { seed: 3, baseDir: FIXTURES });
    await backbone.init();
  });

  afterAll(async () => {
    backbone?.dispose();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it('liked-target logits equal transformers on the golden sequence (shared prefix and full path)', async () => {
    const golden = await readGolden(arch);
    // Image 5 has another tile layout than image 4 in both checkpoints: the two target turns differ in length.
    const g = golden.images;
    expect(`${g[4].rows}x${g[4].cols}`).not.toBe(`${g[5].rows}x${g[5].cols}`);
    const prepared = await backbone.prepare([goldenExample(5)]);
    const shared = backbone.pairLogits(prepared, { training: false });
    const full = backbone.pairLogitsFull(prepared, { training: false });
    expect(relErr(read(shared.liked), golden.single.logits)).toBeLessThan(TOL);
    expect(relErr(read(full.liked), golden.single.logits)).toBeLessThan(TOL);
    expect(relErr(read(shared.disliked), read(full.disliked))).toBeLessThan(TOL);
    tf.dispose([shared.liked, shared.disliked, full.liked, full.disliked]);
    prepared.dispose();
  });

  it('shared prefix equals full sequences for a batch with a shared history, LoRA active and preference tokens', async () => {
    for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i), 0.05) as tf.Tensor2D);
    const batch = [goldenExample(5), goldenExample(5, 0), goldenExample(3)];
    for (const provider of [null, new FixedPrefix(3, backbone.textHiddenSize)]) {
      backbone.setPrefixProvider(provider);
      const prepared = await backbone.prepare(batch);
      const a = backbone.pairLogits(prepared, { training: false });
      const b = backbone.pairLogitsFull(prepared, { training: false });
      expect(relErr(read(a.liked), read(b.liked))).toBeLessThan(TOL);
      expect(relErr(read(a.disliked), read(b.disliked))).toBeLessThan(TOL);
      // Example 1 is example 0 with image0 / image1 swapped and label0 = 0: the same liked and disliked rows.
      const vocab = a.liked.shape[1];
      expect(relErr(read(a.liked).slice(vocab, 2 * vocab), read(a.liked).slice(0, vocab))).toBeLessThan(TOL);
      expect(relErr(read(a.disliked).slice(vocab, 2 * vocab), read(a.disliked).slice(0, vocab))).toBeLessThan(TOL);
      tf.dispose([a.liked, a.disliked, b.liked, b.disliked]);
      prepared.dispose();
    }
    backbone.setPrefixProvider(null);
    // Gradients reach the adapter through the shared path.
    const prepared = await backbone.prepare([goldenExample(5)]);
    const { grads } = tf.variableGrads(() => {
      const out = backbone.pairLogits(prepared, { training: true, seed: 7 });
      return tf.sum(tf.sub(out.liked, out.disliked)) as tf.Scalar;
    }, backbone.adapterVariables());
    const norms = Object.values(grads).map((g) => tf.norm(g).dataSync()[0]);
    expect(norms.some((n) => n > 0)).toBe(true);
    expect(norms.every((n) => Number.isFinite(n))).toBe(true);
    tf.dispose(Object.values(grads));
    prepared.dispose();
  });

  it('a history session scores candidates as pairLogits does', async () => {
    const ex = goldenExample(5);
    const prepared = await backbone.prepare([ex]);
    const out = backbone.pairLogits(prepared, { training: false });
    const { positive, negative } = backbone.readout;
    const liked = read(out.liked);
    const disliked = read(out.disliked);
    const session = await backbone.openHistory({ references: ex.references, likedFirst: ex.likedFirst });
    const [s4, s5] = await session.score(ex.target.prompt, [fixtureImage(4), fixtureImage(5)]);
    session.dispose();
    expect(Math.abs(s4.positive - liked[positive])).toBeLessThan(1e-4 * Math.max(1, Math.abs(liked[positive])));
    expect(Math.abs(s4.negative - liked[negative])).toBeLessThan(1e-4 * Math.max(1, Math.abs(liked[negative])));
    expect(Math.abs(s5.positive - disliked[positive])).toBeLessThan(1e-4 * Math.max(1, Math.abs(disliked[positive])));
    tf.dispose([out.liked, out.disliked]);
    prepared.dispose();
  });

  it('PrefixContext.preferenceDirection weighs each reference image by its tokens (tiles), the same in every path', async () => {
    const contexts: Array<{ mean: number[]; direction: number[] }> = [];
    const recorder: PrefixProvider = {
      length: 1,
      prefix: (ctx) => {
        const B = ctx.historyMean.shape[0];
        const mean = ctx.historyMean.arraySync();
        const direction = ctx.preferenceDirection.arraySync();
        for (let b = 0; b < B; b++) contexts.push({ mean: mean[b], direction: direction[b] });
        return { embeddings: tf.zeros([B, 1, ctx.historyMean.shape[1]]) as tf.Tensor3D };
      },
    };
    const onePair = (disliked: number, liked: number): PreferenceExample => ({
      userId: 'u',
      references: [{ prompt: 'a red car', disliked: fixtureImage(disliked), liked: fixtureImage(liked) }],
      likedFirst: [false],
      target: { prompt: 'a red car', image0: fixtureImage(4), image1: fixtureImage(5), label0: 1 },
    });
    const direction = async (ex: PreferenceExample, path: 'shared' | 'full' = 'shared') => {
      contexts.length = 0;
      const prepared = await backbone.prepare([ex]);
      const out = path === 'shared' ? backbone.pairLogits(prepared, { training: false }) : backbone.pairLogitsFull(prepared, { training: false });
      tf.dispose([out.liked, out.disliked]);
      prepared.dispose();
      return contexts[0];
    };
    backbone.setPrefixProvider(recorder);
    try {
      // One pair: the direction is mu(liked) - mu(disliked), mu = an image's mean token embedding.
      const d01 = (await direction(onePair(0, 1))).direction;
      const d02 = (await direction(onePair(0, 2))).direction;
      const d03 = (await direction(onePair(0, 3))).direction;
      // The golden example (0 disliked, 1 liked), (2, 3): with n_i image i's <image> tokens
      // ((rows * cols + 1) tiles, per transformers' processor in the golden file),
      //   direction = (n1 mu1 + n3 mu3) / (n1 + n3) - (n0 mu0 + n2 mu2) / (n0 + n2)
      //             = (n1 d01 + n3 d03) / (n1 + n3) - n2 d02 / (n0 + n2).
      const imgs = (await readGolden(arch)).images;
      const n = [0, 1, 2, 3].map((i) => imgs[i].rows * imgs[i].cols + 1);
      expect(new Set(n).size).toBeGreaterThan(1);
      const want = d01.map((_, k) => (n[1] * d01[k] + n[3] * d03[k]) / (n[1] + n[3]) - (n[2] * d02[k]) / (n[0] + n[2]));
      const ex = goldenExample(5);
      const shared = await direction(ex);
      expect(relErr(shared.direction, want)).toBeLessThan(1e-4);
      expect(relErr((await direction(ex, 'full')).direction, shared.direction)).toBeLessThan(1e-5);
      contexts.length = 0;
      const session = await backbone.openHistory({ references: ex.references, likedFirst: ex.likedFirst });
      session.dispose();
      expect(relErr(contexts[0].direction, shared.direction)).toBeLessThan(1e-5);
      // The same images with each pair's answers swapped: the direction turns round, the mean stays.
      const flipped = await direction({ ...ex, references: ex.references.map((r) => ({ ...r, liked: r.disliked, disliked: r.liked })), likedFirst: [true, true] });
      expect(relErr(flipped.direction.map((v) => -v), shared.direction)).toBeLessThan(1e-6);
      expect(relErr(flipped.mean, shared.mean)).toBeLessThan(1e-6);
    } finally {
      backbone.setPrefixProvider(null);
    }
  });

  it('PrefixContext.training says whether the forward pass trains, in every path (what starved-prompt re-seating keys on)', async () => {
    const flags: Array<boolean | undefined> = [];
    const recorder: PrefixProvider = {
      length: 1,
      prefix: (ctx) => {
        flags.push(ctx.training);
        return { embeddings: tf.zeros([ctx.historyMean.shape[0], 1, ctx.historyMean.shape[1]]) as tf.Tensor3D };
      },
    };
    backbone.setPrefixProvider(recorder);
    try {
      const ex = goldenExample(5);
      const prepared = await backbone.prepare([ex]);
      for (const training of [true, false]) {
        tf.dispose(Object.values(backbone.pairLogits(prepared, { training, seed: 3 })));
        tf.dispose(Object.values(backbone.pairLogitsFull(prepared, { training, seed: 3 })));
      }
      prepared.dispose();
      (await backbone.openHistory({ references: ex.references, likedFirst: ex.likedFirst })).dispose();
      expect(flags).toEqual([true, true, false, false, false]);
    } finally {
      backbone.setPrefixProvider(null);
    }
  });

  it('image embeddings are the mean vision output over all tiles', async () => {
    const e = await backbone.imageEmbeddings([fixtureImage(0), fixtureImage(3)]);
    expect(e.shape).toEqual([2, backbone.idefics3.config.vision.hiddenSize]);
    const v = read(e);
    expect(v.every(Number.isFinite)).toBe(true);
    expect(relErr(v.slice(0, 4), v.slice(e.shape[1], e.shape[1] + 4))).toBeGreaterThan(1e-3);
    e.dispose();
  });

  it("PEFT's adapter gives PEFT's logits; saved and reloaded it gives them again (and PEFT reads ours when a Python is given)", async () => {
    const golden = await readGolden(arch);
    const model = await Idefics3Model.load(checkpointDir(arch));
    const g = golden.padded;
    const { ids, mask, len: T } = padRows(g.input_ids.map((s) => Int32Array.from(s)), g.pad_token_id);
    const tiles: Float32Array[] = [];
    let M = 0;
    for (const i of [...g.images[0], ...g.images[1]]) {
      const p = processIdefics3Image(await readImage(i), backbone['p'].imageConfig);
      tiles.push(p.pixelValues);
      M = p.size;
    }
    const n = tiles.reduce((s, t) => s + t.length, 0) / (3 * M * M);
    const data = new Float32Array(n * 3 * M * M);
    tiles.reduce((off, t) => (data.set(t, off), off + t.length), 0);
    const px = tf.tensor4d(data, [n, 3, M, M]);
    const logits = () => {
      const l = model.forward(ids, 2, T, px, mask);
      const out = [read(tf.slice(l, [0, 0], [1, -1])), read(tf.slice(l, [1, 0], [1, -1]))];
      l.dispose();
      return out;
    };
    const adapter = await LoraAdapter.load(model, path.join(checkpointDir(arch), 'peft'));
    expect(adapter.modules.map((m) => m.name).sort()).toEqual(golden.peft.modules);
    const ours = logits();
    expect(relErr(ours[0], golden.peft.logits[0])).toBeLessThan(TOL);
    expect(relErr(ours[1], golden.peft.logits[1])).toBeLessThan(TOL);
    const out = path.join(tmp, `peft-${arch}`);
    await adapter.save(out, checkpointDir(arch));
    await fs.writeFile(path.join(out, 'ours_logits.json'), JSON.stringify({ logits: ours }));
    adapter.detach();
    const again = await LoraAdapter.load(model, out);
    const reloaded = logits();
    expect(relErr(reloaded[0], ours[0])).toBe(0);
    again.detach();
    const py = process.env.USERPREF_PEFT_PYTHON;
    if (py) {
      const script = path.join(__dirname, '..', '..', '..', 'tools', 'goldens', 'make_idefics3_goldens.py');
      const r = spawnSync(py, [script, '--arch', arch, '--verify', out], { encoding: 'utf8' });
      expect({ status: r.status, out: r.stdout.trim().split('\n').pop() }).toEqual({ status: 0, out: expect.stringContaining('max relative error') });
    }
    px.dispose();
    model.dispose();
  });
});
