/** scoreSplit's reuse of scores the backbone already gave (the reference-pairs curve at the full history). */
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import type { PreferenceBatch, PreferenceSplit } from '@userpref/core';
import { scoreSplit } from '../src';
import { ToyBackbone, toyDataset } from './toy';

/** The toy backbone, counting the examples it is asked to prepare. */
class CountingBackbone extends ToyBackbone {
  prepared = 0;
  override async prepare(batch: PreferenceBatch) {
    this.prepared += batch.length;
    return super.prepare(batch);
  }
}

describe('scoreSplit with known scores', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  // 3 reference pairs each, except every third example, which keeps only 1.
  const base = toyDataset(6, 12, 3, 5).split('test');
  const split: PreferenceSplit = {
    ...base,
    get: async (i) => {
      const ex = await base.get(i);
      return i % 3 ? ex : { ...ex, references: ex.references.slice(0, 1), likedFirst: ex.likedFirst.slice(0, 1) };
    },
  };

  it('takes the examples a truncation leaves unchanged from the known scores and scores only the rest, with the same results', async () => {
    const bb = new CountingBackbone(9);
    tf.tidy(() => bb.w.assign(tf.tensor2d([[0.5, -0.5, 0], [0.1, 0, 0.2]])));
    const all = await scoreSplit(bb, split, { batchSize: 4 });
    expect(bb.prepared).toBe(split.size);
    for (const k of [0, 1, 2, 3, 8]) {
      const plain = await scoreSplit(bb, split, { batchSize: 4, referencePairs: k });
      bb.prepared = 0;
      const reused = await scoreSplit(bb, split, { batchSize: 4, referencePairs: k, known: { scores: all } });
      // Examples with n references: k reads the same history as "all" when k >= n.
      const changed = await Promise.all(Array.from({ length: split.size }, async (_, i) => (await split.get(i)).references.length > k));
      expect(bb.prepared).toBe(changed.filter(Boolean).length);
      expect(reused).toEqual(plain);
    }
  });

  it('compares against the reference count the known scores were read with', async () => {
    const bb = new CountingBackbone(3);
    const two = await scoreSplit(bb, split, { batchSize: 5, referencePairs: 2 });
    bb.prepared = 0;
    // k = 1 matches k = 2 only where an example has 1 reference (every third one).
    const one = await scoreSplit(bb, split, { batchSize: 5, referencePairs: 1, known: { referencePairs: 2, scores: two } });
    expect(bb.prepared).toBe(split.size - Math.ceil(split.size / 3));
    expect(one).toEqual(await scoreSplit(bb, split, { batchSize: 5, referencePairs: 1 }));
  });
});
