/**
 * The PreferenceDataset over a processed directory: per-user examples of `refPairNum` reference
 * pairs + one target comparison (SPEC §1, §2, §6).
 *
 * References are drawn with the run's seed from the example's pool (never its own target). Each
 * example has its own named Rng stream (keyed by its target comparison), so a draw never depends
 * on which other examples exist or in which order they are read: the paper's "drawn once" is the
 * same draw every epoch; with redrawReferencesEachEpoch the epoch joins the key (training only).
 * Training shows each pair liked-first or disliked-first at random; evaluation always
 * disliked-first (SPEC §2).
 */
import * as path from 'path';
import type { Logger, PreferenceDataset, PreferenceExample, PreferenceImage, PreferenceSplit, ReferencePair, RgbImage, SplitName, SplitStats, UserGroups, UserGroupsProvider } from '@userpref/core';
import { PATH_FORMAT, Rng, type OptionsOf } from '@userpref/core';
import { clustersFromProcessed } from './clusters';
import { decodeRgb } from './images';
import { ProcessedStore, SPLITS, dislikedOf, likedOf, type SplitIndex, type StoredComparison } from './store';

/** The options of the 'pickapic' dataset: validates run configs, fills defaults, documents them. */
export const pickapicOptionsSchema = {
  type: 'object',
  properties: {
    path: { type: 'string', format: PATH_FORMAT, description: 'Processed dataset directory written by `cli.ts import` (relative paths resolve against the config file folder).' },
    refPairNum: { type: 'integer', minimum: 0, default: 8, description: 'Reference pairs (liked, disliked, prompt) per example; the paper uses 8.' },
    tooFewReferences: {
      enum: ['skip', 'fewer'],
      default: 'skip',
      description: "A target whose user has fewer than refPairNum usable references: 'skip' drops it (counted in stats), 'fewer' keeps it with the references there are (at least one).",
    },
    redrawReferencesEachEpoch: { type: 'boolean', default: false, description: 'Training only: draw new references every epoch. The paper draws them once (false).' },
    imageSize: { type: 'integer', minimum: 1, default: 512, description: 'Images are resized (stretched) to imageSize x imageSize RGB before the backbone processor (SPEC §2: 512).' },
    tiePolicy: {
      enum: ['drop', 'keep'],
      default: 'drop',
      description: "Evaluation targets labelled as ties (label0 = 0.5; only present when imported with --keep-ties): 'drop' them or 'keep' them (then scored 0.5 by the Pick-a-Pic convention). Training never uses ties.",
    },
    limit: { type: 'integer', minimum: 1, description: 'At most this many examples per split (a seeded random subset, kept in order): for fast runs.' },
  },
  required: ['path'],
} as const;

/** The options after validation, as the schema above describes them (`limit` may be absent; every other key is filled). */
export type PickapicOptions = OptionsOf<typeof pickapicOptionsSchema>;

export interface PickapicSplitStats extends SplitStats {
  /** Targets dropped because the user had too few references (tooFewReferences: 'skip'). */
  readonly skippedTooFewReferences: number;
  /** Tie targets dropped by tiePolicy 'drop' (or present in training). */
  readonly skippedTies: number;
  /** Examples given fewer references than asked (tooFewReferences: 'fewer'). */
  readonly withFewerReferences: number;
  /** synthpick only: expected accuracy of the population-average taste (no personalisation). */
  readonly populationAccuracy?: number;
  /** synthpick only: taste clusters among this split's users. */
  readonly clusters?: number;
}

/** An image of the store, decoded on demand. */
class StoredImage implements PreferenceImage {
  constructor(readonly id: string, private readonly store: ProcessedStore, private readonly size: number) {}
  async decode(): Promise<RgbImage> {
    let bytes: Uint8Array;
    try {
      bytes = await this.store.imageBytes(this.id);
    } catch (err) {
      throw new Error(`cannot read image ${this.id} from ${this.store.dir}: ${(err as Error).message}`);
    }
    return decodeRgb(bytes, this.size, `${this.id} (${this.store.dir})`);
  }
}

interface Entry {
  readonly target: number;
  readonly pool: number;
  /** Position of the target inside its pool, -1 if absent. */
  readonly self: number;
  /** References this example gets. */
  readonly k: number;
}

/** k distinct integers of [0, n) in random order (Floyd's algorithm, then a shuffle): O(k), not O(n). */
function sampleDistinct(rng: Rng, n: number, k: number): number[] {
  const chosen = new Set<number>();
  for (let j = n - k; j < n; j++) {
    const t = rng.int(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  return rng.shuffle([...chosen]);
}

class PickapicSplit implements PreferenceSplit {
  readonly size: number;
  constructor(
    readonly name: SplitName,
    private readonly index: SplitIndex,
    private readonly entries: readonly Entry[],
    private readonly ds: { store: ProcessedStore; options: PickapicOptions; seed: number; image(id: string): PreferenceImage },
  ) {
    this.size = entries.length;
  }

  /** Prompts pass through verbatim: whether and how they enter the sequence (--use_prompt,
   * --max_prompt_len) is the backbone processor's job, which builds the text. */
  private prompt(text: string): string {
    return text;
  }

  /** The comparison indices used as references of example `i` (in sequence order). */
  referenceIndices(i: number, epoch = 0): number[] {
    const e = this.entries[i];
    if (!e) throw new RangeError(`${this.name}: example ${i} out of range (size ${this.size})`);
    const pool = this.index.pools[e.pool];
    const available = pool.length - (e.self >= 0 ? 1 : 0);
    // Candidate j of the pool-without-target is pool[j] before the target's slot, pool[j + 1] after.
    const at = (j: number) => pool[e.self >= 0 && j >= e.self ? j + 1 : j];
    if (this.index.referenceSelection === 'first') return Array.from({ length: e.k }, (_, j) => at(j));
    const redraw = this.name === 'train' && this.ds.options.redrawReferencesEachEpoch;
    const rng = Rng.stream(this.ds.seed, redraw ? `refs/${this.name}/${e.target}/epoch${epoch}` : `refs/${this.name}/${e.target}`);
    return sampleDistinct(rng, available, e.k).map(at);
  }

  async get(i: number, epoch = 0): Promise<PreferenceExample> {
    const e = this.entries[i];
    if (!e) throw new RangeError(`${this.name}: example ${i} out of range (size ${this.size})`);
    const cmp = this.ds.store.comparisons;
    const t = cmp[e.target];
    const refs = this.referenceIndices(i, epoch);
    const references: ReferencePair[] = refs.map((r) => {
      const c = cmp[r];
      return { prompt: this.prompt(c.prompt), liked: this.ds.image(likedOf(c)!), disliked: this.ds.image(dislikedOf(c)!) };
    });
    let likedFirst: boolean[];
    if (this.name === 'train') {
      const order = Rng.stream(this.ds.seed, `order/${this.name}/${e.target}/epoch${this.ds.options.redrawReferencesEachEpoch ? epoch : 0}`);
      likedFirst = refs.map(() => order.bernoulli(0.5));
    } else likedFirst = refs.map(() => false);
    return {
      userId: t.userId,
      references,
      likedFirst,
      target: { prompt: this.prompt(t.prompt), image0: this.ds.image(t.image0), image1: this.ds.image(t.image1), label0: t.label0 },
    };
  }

  /** Target comparisons of the examples, in order (for tests and reports). */
  targets(): number[] {
    return this.entries.map((e) => e.target);
  }
}

export class PickapicDataset implements PreferenceDataset, UserGroupsProvider {
  private store: ProcessedStore | null = null;
  private readonly splits = new Map<SplitName, PickapicSplit>();
  private readonly statsBySplit = new Map<SplitName, PickapicSplitStats>();

  constructor(
    readonly options: PickapicOptions,
    private readonly run: { seed: number; baseDir: string },
    private readonly log?: Logger,
  ) {}

  get directory(): string {
    return path.resolve(this.run.baseDir, this.options.path);
  }

  async init(): Promise<void> {
    if (this.store) return;
    const o = this.options;
    const store = await ProcessedStore.open(this.directory);
    this.store = store;
    const images = new Map<string, PreferenceImage>();
    const image = (id: string): PreferenceImage => {
      let im = images.get(id);
      if (!im) images.set(id, (im = new StoredImage(id, store, o.imageSize)));
      return im;
    };
    const clusters = store.manifest.synthetic?.userClusters;
    for (const name of SPLITS) {
      const index = await store.readSplit(name);
      const entries: Entry[] = [];
      let tooFew = 0;
      let ties = 0;
      let fewer = 0;
      const poolPos = new Map<number, Map<number, number>>();
      const posIn = (pool: number, target: number): number => {
        let m = poolPos.get(pool);
        if (!m) poolPos.set(pool, (m = new Map(index!.pools[pool].map((c, j) => [c, j]))));
        return m.get(target) ?? -1;
      };
      for (const [target, pool] of index?.examples ?? []) {
        const c = store.comparisons[target];
        if (!c) throw new Error(`${this.directory}: split ${name} names comparison ${target}, but there are ${store.comparisons.length}`);
        const tie = c.label0 !== 0 && c.label0 !== 1;
        if (tie && (name === 'train' || o.tiePolicy === 'drop')) {
          ties++;
          continue;
        }
        const self = posIn(pool, target);
        const available = index!.pools[pool].length - (self >= 0 ? 1 : 0);
        let k = o.refPairNum;
        if (available < o.refPairNum) {
          if (o.tooFewReferences === 'skip' || available === 0) {
            tooFew++;
            continue;
          }
          k = available;
          fewer++;
        }
        entries.push({ target, pool, self, k });
      }
      let kept = entries;
      if (o.limit !== undefined && entries.length > o.limit) {
        const pick = Rng.stream(this.run.seed, `limit/${name}`).sample(entries.length, o.limit).sort((a, b) => a - b);
        kept = pick.map((j) => entries[j]);
      }
      const split = new PickapicSplit(name, index ?? emptyIndex(name), kept, { store, options: o, seed: this.run.seed, image });
      this.splits.set(name, split);
      this.statsBySplit.set(name, summarise(kept.map((e) => store.comparisons[e.target]), { tooFew, ties, fewer }, clusters));
      if (tooFew) this.log?.warn(`dataset pickapic: ${name}: ${tooFew} target(s) skipped, user had fewer than ${o.refPairNum} references (tooFewReferences: ${o.tooFewReferences})`);
    }
    this.log?.info('dataset pickapic ready', {
      dir: this.directory,
      ...Object.fromEntries(SPLITS.map((s) => [`${s}Examples`, this.splits.get(s)!.size])),
    });
  }

  split(name: SplitName): PreferenceSplit & { referenceIndices(i: number, epoch?: number): number[]; targets(): number[] } {
    const s = this.splits.get(name);
    if (!s) throw new Error(this.store ? `dataset pickapic has no split '${name}'` : 'dataset pickapic: call init() before split()');
    return s;
  }

  stats(name: SplitName): PickapicSplitStats {
    const s = this.statsBySplit.get(name);
    if (!s) throw new Error(this.store ? `dataset pickapic has no split '${name}'` : 'dataset pickapic: call init() before stats()');
    return s;
  }

  /** The synthetic users' hidden taste clusters recorded in the manifest (UserGroupsProvider); null for real data. */
  knownUserGroups(): Promise<UserGroups | null> {
    return clustersFromProcessed(this.directory);
  }

  /** The comparisons table (read-only), e.g. to check splits. */
  get comparisons(): readonly StoredComparison[] {
    if (!this.store) throw new Error('dataset pickapic: call init() first');
    return this.store.comparisons;
  }

  async close(): Promise<void> {
    await this.store?.close();
    this.store = null;
    this.splits.clear();
  }
}

function emptyIndex(split: SplitName): SplitIndex {
  return { format: 'userpref-pickapic-processed', split, protocol: 'none', referenceSelection: 'sample', users: 0, pools: [], examples: [] };
}

function summarise(targets: StoredComparison[], skipped: { tooFew: number; ties: number; fewer: number }, clusters?: Record<string, number>): PickapicSplitStats {
  const users = new Set(targets.map((t) => t.userId));
  const withTruth = targets.filter((t) => t.p0 !== null);
  const truth =
    withTruth.length && withTruth.length === targets.length
      ? {
          bayesOptimalAccuracy: withTruth.reduce((a, t) => a + Math.max(t.p0!, 1 - t.p0!), 0) / withTruth.length,
          populationAccuracy: withTruth.reduce((a, t) => a + (t.populationPick0 ? t.p0! : 1 - t.p0!), 0) / withTruth.length,
        }
      : {};
  return {
    examples: targets.length,
    users: users.size,
    skippedTooFewReferences: skipped.tooFew,
    skippedTies: skipped.ties,
    withFewerReferences: skipped.fewer,
    ...truth,
    ...(clusters ? { clusters: new Set([...users].map((u) => clusters[u])).size } : {}),
  };
}
