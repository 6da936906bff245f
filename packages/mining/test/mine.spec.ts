/**
 * Mining against the core contracts only (a scripted AttentionProbe, an in-memory split): what is
 * asked of the probe, how the vectors are averaged and laid out, purity against the known groups,
 * where the groups come from, and the refusal of a backbone without the probe capability. The same
 * flow on the real IDEFICS2 probe and synthpick data is tested in apps/mine/test.
 */
import type { AttentionProbe, AttentionSelection, Backbone, PreferenceDataset, PreferenceExample, PreferenceImage, PreferenceSplit, PreferenceTokens, PrefixProvider, UserGroups } from '@userpref/core';
import { memoryLogger } from '@userpref/core';
import { findUserGroups, mineSimilarUsers, runMining } from '../src';

const image = (id: string): PreferenceImage => ({ id, decode: () => Promise.reject(new Error('not decoded in these tests')) });

/** Users "10", "2", "3", "4" in this order in the split (clusters 1, 0, 0, 1), two reference pairs each. */
const USERS: Array<[string, number]> = [['10', 1], ['2', 0], ['3', 0], ['4', 1]];
const CLUSTER: Record<string, number> = Object.fromEntries(USERS);
const examples: PreferenceExample[] = USERS.map(([u]) => ({
  userId: u,
  references: [0, 1].map((i) => ({ prompt: `p${u}.${i}`, liked: image(`${u}l${i}`), disliked: image(`${u}d${i}`) })),
  likedFirst: [true, false],
  target: { prompt: `t${u}`, image0: image(`${u}t0`), image1: image(`${u}t1`), label0: 1 },
}));
const split: PreferenceSplit = { name: 'test', size: examples.length, get: async (i) => examples[i] };
const prefix: PrefixProvider = { length: 2, prefix: () => { throw new Error('the scripted probe never runs the prefix'); } };

/** Attention [cluster, 1 - cluster] shifted by layer / 10 and by the first reference's position (so orderings differ). */
class ScriptedProbe implements AttentionProbe {
  readonly numLayers = 3;
  readonly numHeads = 2;
  readonly calls: Array<{ examples: readonly PreferenceExample[]; selection: AttentionSelection }> = [];
  async preferenceAttention(batch: readonly PreferenceExample[], _prefix: PrefixProvider, selection: AttentionSelection): Promise<Float32Array[][]> {
    this.calls.push({ examples: batch, selection });
    return batch.map((ex) => {
      const c = CLUSTER[ex.userId];
      const order = ex.references[0].prompt.endsWith('.0') ? 0 : 0.02;
      return selection.layers.map((l) => Float32Array.from([c + l / 10 + order, 1 - c + l / 10]));
    });
  }
}

describe('mineSimilarUsers (scripted probe)', () => {
  it('asks the probe for the resolved selection, one fixed target after each re-ordered history', async () => {
    const probe = new ScriptedProbe();
    const r = await mineSimilarUsers({ probe, split, prefix }, { orders: 2, k: 1, layers: [-1, 0], heads: [1], layersPerPass: 1 });
    expect(r.layers).toEqual([2, 0]);
    expect(r.heads).toEqual([1]);
    expect(probe.calls).toHaveLength(4); // one batch of 2 orderings per user
    for (const { examples: batch, selection } of probe.calls) {
      expect(selection).toEqual({ layers: [2, 0], heads: [1], layersPerPass: 1 });
      expect(batch).toHaveLength(2);
      for (const ex of batch) {
        // the target is split example 0's image0, the same for everyone; references disliked first
        expect([ex.target.image0.id, ex.target.image1.id, ex.target.prompt]).toEqual(['10t0', '10t0', 't10']);
        expect(ex.likedFirst).toEqual([false, false]);
      }
    }
    expect(r.users.map((u) => u.userId)).toEqual(['2', '3', '4', '10']); // numeric id order
  });

  it("averages over orderings and layers ('mean') or lays layers out one after another ('per-layer')", async () => {
    const mean = await mineSimilarUsers({ probe: new ScriptedProbe(), split, prefix }, { orders: 4, k: 1, layers: [0, 2], seed: 3 });
    const perLayer = await mineSimilarUsers({ probe: new ScriptedProbe(), split, prefix }, { orders: 4, k: 1, layers: [0, 2], seed: 3, vector: 'per-layer', batchSize: 1 });
    for (const [i, u] of mean.users.entries()) {
      const c = CLUSTER[u.userId];
      expect(u.vector).toHaveLength(2);
      expect(u.vector[1]).toBeCloseTo(1 - c + 0.1, 6); // mean of layers 0 and 2: + 0.1
      expect(u.vector[0]).toBeGreaterThanOrEqual(c + 0.1 - 1e-6);
      expect(u.vector[0]).toBeLessThanOrEqual(c + 0.12 + 1e-6);
      const pl = perLayer.users[i].vector;
      expect(pl).toHaveLength(4);
      for (let t = 0; t < 2; t++) expect((pl[t] + pl[2 + t]) / 2).toBeCloseTo(u.vector[t], 6);
    }
  });

  it('computes purity against the known groups, with its random baseline', async () => {
    const clusters = new Map(Object.entries(CLUSTER));
    const r = await mineSimilarUsers({ probe: new ScriptedProbe(), split, prefix, clusters }, { orders: 1, k: 1 });
    expect(r.users.map((u) => u.cluster)).toEqual([0, 0, 1, 1]);
    expect(r.purity?.purity).toBe(1); // each user's nearest user is in its cluster
    expect(r.purity?.randomBaseline).toBeCloseTo(1 / 3, 12);
    const none = await mineSimilarUsers({ probe: new ScriptedProbe(), split, prefix }, { orders: 1, k: 1 });
    expect(none.purity).toBeUndefined();
  });
});

describe('runMining and the optional capabilities', () => {
  const groups: UserGroups = { source: 'given', groups: new Map([['2', 0]]) };
  const plain = { init: async () => {}, split: () => split, stats: () => ({ examples: 4, users: 4 }) } as PreferenceDataset;

  it('takes the given groups first, else the dataset\'s own when it offers them, else none', async () => {
    const own: UserGroups = { source: 'dataset', groups: new Map() };
    const offering = { ...plain, knownUserGroups: async () => own } as PreferenceDataset;
    expect(await findUserGroups(offering, groups)).toBe(groups);
    expect(await findUserGroups(offering)).toBe(own);
    expect(await findUserGroups(plain)).toBeNull();
    expect(await findUserGroups(plain, null)).toBeNull();
  });

  it('refuses a backbone that offers no attention probe, naming the capability', async () => {
    const backbone = { textHiddenSize: 8 } as unknown as Backbone;
    const tokens = { build: () => {}, load: async () => {} } as unknown as PreferenceTokens;
    await expect(runMining({ backbone, dataset: plain, tokens, logger: memoryLogger() }, { tokensPath: 'tokens', outDir: 'out' })).rejects.toThrow(/attentionProbe\(\) capability/);
  });
});
