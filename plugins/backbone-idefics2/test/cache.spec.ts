/**
 * Vision-output cache: lookups are counted (memory hits, disk hits, misses), the memory budget is in
 * bytes, a changed vision weight invalidates (new fingerprint, recomputed outputs), and the disk
 * cache (safetensors named by content hash + weights fingerprint) is reused by a new Backbone.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceExample } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone } from '../src';
import { tinyCheckpoint } from './model-fixtures';
import { syntheticImage } from './synthetic';

const image = (seed: number, width: number, height: number) => syntheticImage(seed, width, height, { step: 5, add: 17, every: 3 });

/** refs reference pairs + a target: 2 * refs + 2 distinct images. */
function example(seed: number, refs: number): PreferenceExample {
  const references = Array.from({ length: refs }, (_, i) => ({ prompt: `p${i}`, liked: image(seed * 10 + 2 * i, 30, 28), disliked: image(seed * 10 + 2 * i + 1, 28, 30) }));
  return {
    userId: `u${seed}`,
    references,
    likedFirst: references.map(() => true),
    target: { prompt: 't', image0: image(seed * 10 + 8, 32, 32), image1: image(seed * 10 + 9, 26, 32), label0: 1 },
  };
}

describe('vision-output cache (tiny checkpoint)', () => {
  let dir: string;
  let tmp: string;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await tinyCheckpoint('idefics2-cache-');
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vision-cache-'));
  });

  afterAll(async () => {
    for (const d of [dir, tmp]) if (d) await fs.rm(d, { recursive: true, force: true });
  });

  const make = async (opts: Record<string, unknown> = {}) => {
    const b = new Idefics2Backbone({ path: dir, ...opts }, { seed: 1, baseDir: tmp });
    await b.init();
    return b;
  };

  const logits = async (b: Idefics2Backbone, ex: PreferenceExample[]) => {
    const prepared = await b.prepare(ex);
    const o = b.pairLogits(prepared, { training: false });
    const v = Array.from(o.liked.dataSync());
    tf.dispose([o.liked, o.disliked]);
    prepared.dispose();
    return v;
  };

  it('counts hits and misses: each image runs the tower once, across sequences, examples and epochs', async () => {
    const b = await make();
    try {
      const ex1 = example(1, 2); // 6 images
      await logits(b, [ex1]);
      expect(b.visionCacheStats()).toMatchObject({ hits: 0, misses: 6, entries: 6 });
      // Second "epoch" of the same example: all from memory.
      await logits(b, [ex1]);
      expect(b.visionCacheStats()).toMatchObject({ hits: 6, misses: 6 });
      // A batch where two examples share the references: 4 shared + 2 + 2 targets, one lookup each.
      const ex2 = { ...example(2, 2), references: ex1.references };
      await logits(b, [ex1, ex2]);
      expect(b.visionCacheStats()).toMatchObject({ hits: 12, misses: 8, entries: 8 });
      // Per patch: 32 float32 values + 1 validity byte; 7..8 x 7..8 patches per image.
      const { bytes } = b.visionCacheStats();
      expect(bytes % (32 * 4 + 1)).toBe(0);
      expect(bytes / (32 * 4 + 1)).toBeGreaterThanOrEqual(8 * 49);
      expect(bytes / (32 * 4 + 1)).toBeLessThanOrEqual(8 * 64);
    } finally {
      b.dispose();
    }
  });

  it('keeps the memory cache within its byte budget (LRU)', async () => {
    // Entries hold 49..64 patches of 129 bytes: three always fit, four never do.
    const entry = 64 * (32 * 4 + 1);
    const b = await make({ imageCacheBytes: 3 * entry });
    try {
      await logits(b, [example(3, 2)]);
      const s = b.visionCacheStats();
      expect(s).toMatchObject({ misses: 6, entries: 3, evictions: 3 });
      expect(s.bytes).toBeLessThanOrEqual(3 * entry);
      // The three most recent survive: the first three images miss again.
      await logits(b, [example(3, 2)]);
      expect(b.visionCacheStats().misses).toBeGreaterThan(6);
    } finally {
      b.dispose();
    }
  });

  it('a changed vision weight invalidates the cache and changes the outputs', async () => {
    const b = await make();
    try {
      const ex = [example(4, 1)];
      const before = await logits(b, ex);
      const fp = b.visionFingerprint();
      const fc1 = b.idefics2.params.vision.layers[0].fc1;
      const old = fc1.w;
      fc1.w = tf.tidy(() => tf.add(old, tf.randomNormal(old.shape, 0, 0.5, 'float32', 3))) as tf.Tensor2D;
      const after = await logits(b, ex);
      expect(b.visionCacheStats()).toMatchObject({ invalidations: 1, misses: 8, hits: 0 });
      expect(b.visionFingerprint()).not.toBe(fp);
      expect(after).not.toEqual(before);
      // Restoring the weights restores the fingerprint (content hash, not identity).
      fc1.w.dispose();
      fc1.w = old;
      expect(b.visionFingerprint()).toBe(fp);
      expect(await logits(b, ex)).toEqual(before);
    } finally {
      b.dispose();
    }
  });

  it('the disk cache survives a new Backbone and is keyed by the weights fingerprint', async () => {
    const cacheDir = 'vcache';
    const ex = [example(5, 2)];
    const a = await make({ imageCacheDir: cacheDir });
    let want: number[];
    let fp: string;
    try {
      want = await logits(a, ex);
      fp = a.visionFingerprint();
      expect(a.visionCacheStats()).toMatchObject({ misses: 6, diskHits: 0 });
    } finally {
      a.dispose();
    }
    const files = (await fs.readdir(path.join(tmp, cacheDir))).sort();
    expect(files).toHaveLength(6);
    for (const f of files) expect(f).toMatch(new RegExp(`^[0-9a-f]{64}-${fp}\\.safetensors$`));

    const b = await make({ imageCacheDir: cacheDir });
    try {
      expect(b.visionFingerprint()).toBe(fp);
      expect(await logits(b, ex)).toEqual(want);
      expect(b.visionCacheStats()).toMatchObject({ misses: 0, diskHits: 6, hits: 0 });
      // Other weights: the files are not used, new ones are written beside them.
      const ln = b.idefics2.params.vision.post;
      (ln as { w: tf.Tensor1D }).w = tf.tidy(() => tf.mul(ln.w, 1.5)) as tf.Tensor1D;
      await logits(b, ex);
      expect(b.visionCacheStats()).toMatchObject({ misses: 6, diskHits: 6 });
      expect(await fs.readdir(path.join(tmp, cacheDir))).toHaveLength(12);
      // A damaged file is counted and recomputed, not fatal.
      await fs.writeFile(path.join(tmp, cacheDir, files[0]), 'not a safetensors file');
      const c = await make({ imageCacheDir: cacheDir, imageCacheBytes: 0 });
      try {
        expect(await logits(c, ex)).toEqual(want);
        expect(c.visionCacheStats()).toMatchObject({ diskHits: 5, misses: 1, diskErrors: 1 });
      } finally {
        c.dispose();
      }
    } finally {
      b.dispose();
    }
  });
});
