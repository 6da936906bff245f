/**
 * rankCandidates: scores, probabilities and order by hand on a backbone whose logits are known
 * (the prepare / pairLogits fallback: which candidate lands where), and on the tiny IDEFICS2 the
 * history session and the fallback agree candidate by candidate.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone, PairLogits, PreferenceBatch, PreferenceImage, PreparedBatch, RgbImage } from '@userpref/core';
import { Idefics2Backbone, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { initRuntime } from '@userpref/runtime';
import { pairHistory, rankCandidates, RankRequestError, type RankCandidate } from '@userpref/ranking';

/** A flat grey image of `level` (id from the level and size). */
function grey(level: number, w = 6, h = 6): PreferenceImage {
  const data = new Uint8Array(w * h * 3).fill(level);
  return { id: `grey-${level}-${w}x${h}`, decode: async (): Promise<RgbImage> => ({ width: w, height: h, data }) };
}

/**
 * z+ = (mean pixel of the target) / 100, z- = 0.5 * (number of reference pairs): by hand, a
 * candidate of level v after k pairs scores v / 100 - k / 2.
 */
class BrightnessBackbone implements Backbone {
  readonly textHiddenSize = 4;
  readonly readout = { positive: 1, negative: 2 };
  batches = 0;
  async init(): Promise<void> {}
  async prepare(batch: PreferenceBatch): Promise<PreparedBatch & { rows: number[][] }> {
    this.batches++;
    const mean = async (img: PreferenceImage) => {
      const rgb = await img.decode();
      return rgb.data.reduce((s, v) => s + v, 0) / rgb.data.length;
    };
    const rows: number[][] = [];
    for (const ex of batch) {
      const liked = ex.target.label0 >= 0.5 ? ex.target.image0 : ex.target.image1;
      const disliked = ex.target.label0 >= 0.5 ? ex.target.image1 : ex.target.image0;
      rows.push([await mean(liked), await mean(disliked), ex.references.length]);
    }
    return { size: batch.length, rows, dispose: () => undefined };
  }
  pairLogits(prepared: PreparedBatch): PairLogits {
    const rows = (prepared as PreparedBatch & { rows: number[][] }).rows;
    const logits = (which: 0 | 1) => tf.tensor2d(rows.flatMap((r) => [9, r[which] / 100, 0.5 * r[2], -9]), [rows.length, 4]);
    return { liked: logits(0), disliked: logits(1) };
  }
  setPrefixProvider(): void {}
  adapterVariables(): tf.Variable[] {
    return [];
  }
  async saveAdapter(): Promise<void> {}
  async loadAdapter(): Promise<void> {}
}

const cands = (levels: number[]): RankCandidate[] => levels.map((v) => ({ name: `level-${v}.png`, image: grey(v) }));

describe('rankCandidates through prepare / pairLogits (a backbone without openHistory)', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it('scores each candidate z+ - z- by hand, with sigmoid probabilities, best first (odd count, several batches)', async () => {
    const backbone = new BrightnessBackbone();
    const history = pairHistory([grey(1), grey(2)], [grey(3), grey(4)]);
    const levels = [120, 30, 250, 30, 80];
    const progress: number[] = [];
    const r = await rankCandidates(backbone, { history, candidates: cands(levels) }, { chunk: 2, onProgress: (d) => progress.push(d) });
    expect(r.method).toBe('pairs');
    expect(backbone.batches).toBe(3);
    expect(progress).toEqual([2, 4, 5]);
    const want = levels.map((v) => v / 100 - 1);
    r.candidates.forEach((c, i) => {
      expect(c.index).toBe(i);
      expect(c.name).toBe(`level-${levels[i]}.png`);
      expect(c.score).toBeCloseTo(want[i], 5);
      expect(c.probability).toBeCloseTo(1 / (1 + Math.exp(-want[i])), 5);
      expect(c.negative).toBeCloseTo(1, 6);
    });
    // 250 > 120 > 80 > 30 = 30 (the tie keeps request order).
    expect(r.order).toEqual([2, 0, 4, 1, 3]);
    expect(r.candidates.map((c) => c.rank)).toEqual([2, 4, 1, 5, 3]);
  });

  it('refuses an empty candidate list, unpaired history images and mismatched orientation flags', async () => {
    const backbone = new BrightnessBackbone();
    await expect(rankCandidates(backbone, { history: { references: [] }, candidates: [] })).rejects.toThrow(new RankRequestError('no candidate images to rank'));
    expect(() => pairHistory([grey(1), grey(2)], [grey(3)])).toThrow('the history is made of pairs: 2 liked and 1 disliked images');
    const history = { ...pairHistory([grey(1)], [grey(2)]), likedFirst: [true, false] };
    await expect(rankCandidates(backbone, { history, candidates: cands([1]) })).rejects.toThrow('1 reference pairs but 2 likedFirst flags');
  });

  it('stops between chunks when the signal is aborted', async () => {
    const backbone = new BrightnessBackbone();
    const controller = new AbortController();
    const run = rankCandidates(backbone, { history: { references: [] }, candidates: cands([1, 2, 3, 4, 5, 6]) }, { chunk: 2, signal: controller.signal, onProgress: (d) => d === 2 && controller.abort(new Error('deadline passed')) });
    await expect(run).rejects.toThrow('deadline passed');
    expect(backbone.batches).toBe(1);
  });
});

describe('rankCandidates on the tiny IDEFICS2', () => {
  let dir: string;
  let backbone: Idefics2Backbone;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ranking-tiny-'));
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: dir, seed: 0 });
    backbone = new Idefics2Backbone({ path: dir, maxPromptLen: 40 }, { seed: 1, baseDir: dir });
    await backbone.init();
    for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 80 + i), 0.05) as tf.Tensor2D);
  });

  afterAll(async () => {
    backbone?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('the history session and the prepare / pairLogits fallback give every candidate the same score', async () => {
    const stripes = (seed: number): PreferenceImage => {
      const w = 24 + (seed % 3) * 8;
      const h = 20 + (seed % 4) * 6;
      const data = new Uint8Array(w * h * 3);
      for (let i = 0; i < data.length; i++) data[i] = (i * (seed + 3) + seed * 41 + ((i / 9) | 0)) % 256;
      return { id: `stripes-${seed}`, decode: async () => ({ width: w, height: h, data }) };
    };
    const history = pairHistory([stripes(1), stripes(2)], [stripes(3), stripes(4)], ['a red cube', 'a blue ball']);
    const candidates = Array.from({ length: 5 }, (_, i) => ({ name: `c${i}`, image: stripes(10 + i) }));
    const fast = await rankCandidates(backbone, { history, prompt: 'a cat', candidates }, { chunk: 3 });
    const slow = await rankCandidates(backbone, { history, prompt: 'a cat', candidates }, { method: 'pairs', chunk: 3 });
    expect(fast.method).toBe('history-session');
    expect(slow.method).toBe('pairs');
    const scale = Math.max(...slow.candidates.map((c) => Math.abs(c.positive)), 1e-3);
    fast.candidates.forEach((c, i) => {
      expect(Math.abs(c.positive - slow.candidates[i].positive) / scale).toBeLessThan(2e-5);
      expect(Math.abs(c.negative - slow.candidates[i].negative) / scale).toBeLessThan(2e-5);
    });
    expect(new Set(slow.candidates.map((c) => c.score.toFixed(5))).size).toBe(5);
    expect(fast.order).toEqual(slow.order);
  });
});
