/**
 * Split protocols and examples on a synthpick tiny set (through reader 1 and import):
 * no target among its own references, no held-out comparison in training, no user crossing
 * splits under by-user, determinism from the seed, reference redraws, likedFirst, and the
 * too-few-references policy.
 */
import * as fs from 'fs';
import * as path from 'path';
import { memoryLogger, type SplitName } from '@userpref/core';
import { PickapicDataset } from '../src/dataset';
import { importDataset } from '../src/import';
import { ProcessedStore } from '../src/store';
import { generateSynthpick } from '../src/synthpick';
import { fixture, options, tmpDir } from './helpers';

const SPLITS: SplitName[] = ['train', 'validation', 'test'];
const root = tmpDir('splits');
const raw = path.join(root, 'raw');
const byComparison = path.join(root, 'by-comparison');
const byUser = path.join(root, 'by-user');

beforeAll(async () => {
  await generateSynthpick({ preset: 'tiny', seed: 5, outDir: raw });
  await importDataset({ from: [raw], out: byComparison, splitProtocol: 'by-comparison', seed: 9, logger: memoryLogger(), validationFraction: 0.15, testFraction: 0.15 });
  await importDataset({ from: [raw], out: byUser, splitProtocol: 'by-user', seed: 9, logger: memoryLogger(), validationFraction: 0.25, testFraction: 0.25 });
});

async function open(dir: string, extra: Parameters<typeof options>[1] = {}, seed = 42): Promise<PickapicDataset> {
  const ds = new PickapicDataset(options(dir, { refPairNum: 3, imageSize: 16, ...extra }), { seed, baseDir: '/' });
  await ds.init();
  return ds;
}

/** Every example of every split: its target comparison and its references' comparison indices. */
function examples(ds: PickapicDataset, epoch = 0) {
  return SPLITS.flatMap((s) => {
    const split = ds.split(s);
    return split.targets().map((target, i) => ({ split: s, target, refs: split.referenceIndices(i, epoch) }));
  });
}

describe.each([
  ['by-comparison', byComparison],
  ['by-user', byUser],
])('%s', (protocol, dir) => {
  it('never uses a target as one of its own references, and references are the same user\'s liked/disliked pairs', async () => {
    const ds = await open(dir);
    const all = examples(ds);
    expect(all.length).toBeGreaterThan(50);
    for (const e of all) {
      expect(e.refs).not.toContain(e.target);
      expect(new Set(e.refs).size).toBe(e.refs.length);
      for (const r of e.refs) expect(ds.comparisons[r].userId).toBe(ds.comparisons[e.target].userId);
    }
    // And through the public get(): reference images are never the target's own pair.
    const ex = await ds.split('train').get(0);
    const t = ds.comparisons[ds.split('train').targets()[0]];
    for (const r of ex.references) expect([r.liked.id, r.disliked.id].sort()).not.toEqual([t.image0, t.image1].sort());
    await ds.close();
  });

  it('keeps held-out comparisons out of training entirely (not as targets, not as references)', async () => {
    const ds = await open(dir);
    const all = examples(ds);
    const heldOut = new Set(all.filter((e) => e.split !== 'train').map((e) => e.target));
    expect(heldOut.size).toBeGreaterThan(0);
    for (const e of all.filter((x) => x.split === 'train')) {
      expect(heldOut.has(e.target)).toBe(false);
      for (const r of e.refs) expect(heldOut.has(r)).toBe(false);
    }
    if (protocol === 'by-comparison') {
      // the paper's protocol: evaluation references come from the user's training comparisons
      const trainTargets = new Set(all.filter((e) => e.split === 'train').map((e) => e.target));
      for (const e of all.filter((x) => x.split !== 'train')) for (const r of e.refs) expect(trainTargets.has(r)).toBe(true);
    }
    await ds.close();
  });

  it('is deterministic: the same seed gives the same examples; another seed other references', async () => {
    const a = await open(dir, {}, 42);
    const b = await open(dir, {}, 42);
    const c = await open(dir, {}, 43);
    expect(examples(a)).toEqual(examples(b));
    expect(examples(a)).not.toEqual(examples(c));
    const [ea, eb] = [await a.split('train').get(3), await b.split('train').get(3)];
    expect(ea.references.map((r) => [r.liked.id, r.disliked.id])).toEqual(eb.references.map((r) => [r.liked.id, r.disliked.id]));
    expect(ea.likedFirst).toEqual(eb.likedFirst);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});

describe('by-user', () => {
  it('puts every user in exactly one split', async () => {
    const ds = await open(byUser);
    const seen = new Map<string, SplitName>();
    for (const e of examples(ds)) {
      const u = ds.comparisons[e.target].userId;
      expect(seen.get(u) ?? e.split).toBe(e.split);
      seen.set(u, e.split);
    }
    expect(new Set(seen.values()).size).toBe(3);
    const stats = SPLITS.map((s) => ds.stats(s).users);
    expect(stats.reduce((a, b) => a + b, 0)).toBe(seen.size);
    await ds.close();
  });
});

describe('by-comparison', () => {
  it('has the same users in training and evaluation (held-out comparisons of known users)', async () => {
    const ds = await open(byComparison);
    const users = (s: SplitName) => new Set(ds.split(s).targets().map((t) => ds.comparisons[t].userId));
    const train = users('train');
    for (const u of [...users('validation'), ...users('test')]) expect(train.has(u)).toBe(true);
    await ds.close();
  });

  it('import is deterministic: the same seed writes identical split files', async () => {
    const again = path.join(root, 'again');
    await importDataset({ from: [raw], out: again, splitProtocol: 'by-comparison', seed: 9, logger: memoryLogger(), validationFraction: 0.15, testFraction: 0.15 });
    for (const s of SPLITS) expect(fs.readFileSync(path.join(again, `split-${s}.json`), 'utf8')).toBe(fs.readFileSync(path.join(byComparison, `split-${s}.json`), 'utf8'));
    expect(fs.readFileSync(path.join(again, 'images-00000.parquet'))).toEqual(fs.readFileSync(path.join(byComparison, 'images-00000.parquet')));
  });
});

describe('references across epochs', () => {
  it('are fixed once by default (the paper) and redrawn per epoch when asked, for training only', async () => {
    const fixed = await open(byComparison);
    const redraw = await open(byComparison, { redrawReferencesEachEpoch: true });
    const refsAt = (ds: PickapicDataset, s: SplitName, epoch: number) => ds.split(s).targets().map((_, i) => ds.split(s).referenceIndices(i, epoch));
    expect(refsAt(fixed, 'train', 0)).toEqual(refsAt(fixed, 'train', 1));
    expect(refsAt(redraw, 'train', 0)).not.toEqual(refsAt(redraw, 'train', 1));
    expect(refsAt(redraw, 'train', 1)).toEqual(refsAt(redraw, 'train', 1));
    expect(refsAt(redraw, 'test', 0)).toEqual(refsAt(redraw, 'test', 1));
    await Promise.all([fixed.close(), redraw.close()]);
  });

  it('likedFirst is random per pair in training and all false (disliked first) in evaluation', async () => {
    const ds = await open(byComparison);
    const flags = async (s: SplitName) => (await Promise.all(ds.split(s).targets().map((_, i) => ds.split(s).get(i)))).flatMap((e) => e.likedFirst);
    const train = await flags('train');
    const share = train.filter(Boolean).length / train.length;
    expect(share).toBeGreaterThan(0.35);
    expect(share).toBeLessThan(0.65);
    expect((await flags('validation')).every((f) => f === false)).toBe(true);
    expect((await flags('test')).every((f) => f === false)).toBe(true);
    await ds.close();
  });
});

describe('too few references', () => {
  const dir = tmpDir('toofew');
  beforeAll(async () => {
    // users of the fixture have 2-4 usable comparisons: fewer than 8 references
    await importDataset({ from: [fixture('pickapic_pyarrow.parquet')], out: dir, logger: memoryLogger(), split: 'train' });
  });

  it("'skip' drops and counts those targets, without a crash", async () => {
    const log = memoryLogger();
    const ds = new PickapicDataset(options(dir, { refPairNum: 8, tooFewReferences: 'skip' }), { seed: 1, baseDir: '/' }, log);
    await ds.init();
    expect(ds.split('train').size).toBe(0);
    expect(ds.stats('train')).toMatchObject({ examples: 0, skippedTooFewReferences: 9 });
    expect(log.records.some((r) => r.level === 'warn' && /train: 9 target\(s\) skipped, user had fewer than 8 references/.test(r.message))).toBe(true);
    await ds.close();
  });

  it("'fewer' keeps them with every other comparison of the user as references", async () => {
    const ds = new PickapicDataset(options(dir, { refPairNum: 8, tooFewReferences: 'fewer' }), { seed: 1, baseDir: '/' });
    await ds.init();
    const split = ds.split('train');
    expect(split.size).toBe(9);
    const perUser = new Map<string, number>();
    for (const t of split.targets()) perUser.set(ds.comparisons[t].userId, (perUser.get(ds.comparisons[t].userId) ?? 0) + 1);
    for (let i = 0; i < split.size; i++) {
      const ex = await split.get(i);
      expect(ex.references).toHaveLength(perUser.get(ex.userId)! - 1);
    }
    expect(ds.stats('train').withFewerReferences).toBe(9);
    await ds.close();
  });

  it('a processed dir without a manifest is a clear error', async () => {
    const ds = new PickapicDataset(options(tmpDir('nomanifest')), { seed: 1, baseDir: '/' });
    await expect(ds.init()).rejects.toThrow(/^processed dataset not found: .*nomanifest.* \(no manifest\.json in it\)$/);
  });
});

describe('store', () => {
  it('every comparison of the processed set refers to a stored image', async () => {
    const store = await ProcessedStore.open(byUser);
    for (const c of store.comparisons) expect(store.hasImage(c.image0) && store.hasImage(c.image1)).toBe(true);
    await store.close();
  });
});
