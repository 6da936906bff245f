/**
 * Similar-user mining (the paper's Figure 3; no code was released, SPEC §5): the same target image
 * is put after each user's history; the attention from the target image's tokens to the preference
 * tokens, averaged over heads and layers and over several seeded re-orderings of the user's
 * reference pairs, is the user's vector; cosine similarity between vectors ranks each user's
 * nearest users. Where the hidden taste clusters are known (synthpick), purity of the neighbour
 * lists is compared with its exact random baseline.
 *
 * Sequence of a user: their reference pairs from their first example of the split (each pair
 * disliked-first, the evaluation convention of SPEC §2), permuted per re-ordering, then the target
 * turn with the fixed target image and that image's own prompt.
 */
import { Rng, type AttentionProbe, type Logger, type PreferenceExample, type PreferenceImage, type PreferenceSplit, type PrefixProvider } from '@userpref/core';
import { MINING_DEFAULTS, type MiningOptions } from './options';
import { resolveHeads, resolveLayers } from './selection';
import { clusterPurity, nearestNeighbours, similarityMatrix, type Neighbour, type PurityResult, type SimilarityKind, type SimilarityMatrix } from './similarity';

export interface MinedUser {
  readonly userId: string;
  /** Hidden taste cluster when known. */
  readonly cluster: number | null;
  /** Index of the user's example in the split (source of its references). */
  readonly example: number;
  readonly references: number;
  /** Mean over re-orderings: [tokens] ('mean') or [layers x tokens], layer-major ('per-layer'). */
  readonly vector: number[];
}

export interface MiningTarget {
  readonly imageId: string;
  readonly prompt: string;
  /** Where it was found, e.g. "test example 3 image0". */
  readonly foundAt: string;
}

export interface MiningResult {
  readonly options: MiningOptions;
  readonly target: MiningTarget;
  /** Resolved layer and head indices (heads null = all). */
  readonly layers: number[];
  readonly heads: number[] | null;
  readonly prefixLength: number;
  readonly users: MinedUser[];
  readonly similarity: SimilarityMatrix;
  readonly neighbours: Neighbour[][];
  /** Present when at least one user's cluster is known. */
  readonly purity?: PurityResult;
  /** Purity under both similarity kinds (the chosen one is `purity`), for comparison. */
  readonly purityBySimilarity?: Record<SimilarityKind, PurityResult>;
}

export interface MiningInputs {
  readonly probe: AttentionProbe;
  readonly split: PreferenceSplit;
  readonly prefix: PrefixProvider;
  /** user id -> hidden cluster; null / missing = unknown. */
  readonly clusters?: ReadonlyMap<string, number> | null;
  readonly logger?: Logger;
}

const byUserId = (a: string, b: string): number => {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
};

/** Each user's first example in the split, users sorted by id (numerically when ids are numbers). */
export async function firstExampleByUser(split: PreferenceSplit): Promise<Array<{ userId: string; index: number; example: PreferenceExample }>> {
  const seen = new Map<string, { userId: string; index: number; example: PreferenceExample }>();
  for (let i = 0; i < split.size; i++) {
    const ex = await split.get(i);
    if (!seen.has(ex.userId)) seen.set(ex.userId, { userId: ex.userId, index: i, example: ex });
  }
  return [...seen.values()].sort((a, b) => byUserId(a.userId, b.userId));
}

/** Finds the target image: by id or unique id prefix among the split's images, or the first example's image0. */
export async function findTarget(split: PreferenceSplit, id: string | null): Promise<{ image: PreferenceImage; target: MiningTarget }> {
  if (split.size === 0) throw new Error(`the ${split.name} split is empty: no target image and no users to mine`);
  if (id === null) {
    const ex = await split.get(0);
    return { image: ex.target.image0, target: { imageId: ex.target.image0.id, prompt: ex.target.prompt, foundAt: `${split.name} example 0 image0` } };
  }
  const want = id.toLowerCase();
  if (!want) throw new Error('--target: empty image id');
  const matches = new Map<string, { image: PreferenceImage; target: MiningTarget }>();
  for (let i = 0; i < split.size; i++) {
    const ex = await split.get(i);
    const candidates: Array<[PreferenceImage, string, string]> = [
      [ex.target.image0, ex.target.prompt, `${split.name} example ${i} image0`],
      [ex.target.image1, ex.target.prompt, `${split.name} example ${i} image1`],
      ...ex.references.flatMap((r, j): Array<[PreferenceImage, string, string]> => [
        [r.liked, r.prompt, `${split.name} example ${i} reference ${j} liked`],
        [r.disliked, r.prompt, `${split.name} example ${i} reference ${j} disliked`],
      ]),
    ];
    for (const [image, prompt, foundAt] of candidates) {
      if (image.id.startsWith(want) && !matches.has(image.id)) matches.set(image.id, { image, target: { imageId: image.id, prompt, foundAt } });
    }
    if (matches.has(want)) return matches.get(want)!;
  }
  if (matches.size === 0) throw new Error(`--target ${id}: no image of the ${split.name} split has this id (or id prefix)`);
  if (matches.size > 1) throw new Error(`--target ${id}: the prefix matches ${matches.size} images (${[...matches.keys()].slice(0, 3).join(', ')}, ...); give more characters`);
  return [...matches.values()][0];
}

/** The user's references in a seeded random order, each pair disliked-first, before the fixed target. */
export function reorderedExample(base: PreferenceExample, target: { image: PreferenceImage; prompt: string }, seed: number, order: number): PreferenceExample {
  const perm = Rng.stream(seed, `mine/order/${base.userId}/${order}`).shuffle([...base.references.keys()]);
  const references = perm.map((i) => base.references[i]);
  return {
    userId: base.userId,
    references,
    likedFirst: references.map(() => false),
    target: { prompt: target.prompt, image0: target.image, image1: target.image, label0: 1 },
  };
}

export async function mineSimilarUsers(inputs: MiningInputs, options: Partial<MiningOptions> = {}): Promise<MiningResult> {
  const o: MiningOptions = { ...MINING_DEFAULTS, ...options };
  const { probe, split, prefix, logger } = inputs;
  if (!Number.isInteger(o.orders) || o.orders < 1) throw new Error(`orders must be an integer >= 1, got ${o.orders}`);
  const layers = resolveLayers(o.layers, probe.numLayers);
  const heads = resolveHeads(o.heads, probe.numHeads);
  const all = await firstExampleByUser(split);
  const chosen = o.users === null ? all : all.slice(0, o.users);
  if (chosen.length < 2) throw new Error(`the ${split.name} split has ${all.length} user(s) with an example; mining needs at least 2`);
  const noRefs = chosen.filter((u) => u.example.references.length === 0);
  if (noRefs.length) throw new Error(`user(s) ${noRefs.map((u) => u.userId).slice(0, 5).join(', ')} have no reference pairs in the ${split.name} split: nothing to mine`);
  const { image, target } = await findTarget(split, o.target);
  logger?.info('mining similar users', { split: split.name, users: chosen.length, of: all.length, orders: o.orders, layers, heads: heads ?? 'all', target: target.imageId, foundAt: target.foundAt });

  const batch = o.batchSize > 0 ? o.batchSize : o.orders;
  const users: MinedUser[] = [];
  let prefixLength = 0;
  const started = Date.now();
  let lastLog = 0;
  for (const [u, entry] of chosen.entries()) {
    const examples = Array.from({ length: o.orders }, (_, r) => reorderedExample(entry.example, { image, prompt: target.prompt }, o.seed, r));
    // sum[layer][token] over re-orderings
    let sum: Float64Array[] | null = null;
    for (let s = 0; s < examples.length; s += batch) {
      const maps = await probe.preferenceAttention(examples.slice(s, s + batch), prefix, { layers, heads, layersPerPass: o.layersPerPass });
      for (const perLayer of maps) {
        if (!sum) sum = perLayer.map((v) => new Float64Array(v.length));
        perLayer.forEach((v, l) => {
          for (let t = 0; t < v.length; t++) sum![l][t] += v[t];
        });
      }
    }
    const mean = sum!.map((row) => Array.from(row, (x) => x / o.orders));
    prefixLength = mean[0].length;
    const vector = o.vector === 'mean' ? mean[0].map((_, t) => mean.reduce((a, row) => a + row[t], 0) / mean.length) : mean.flat();
    users.push({ userId: entry.userId, cluster: inputs.clusters?.get(entry.userId) ?? null, example: entry.index, references: entry.example.references.length, vector });
    if (Date.now() - lastLog > 5000 || u === chosen.length - 1) {
      lastLog = Date.now();
      logger?.info(`mined ${u + 1}/${chosen.length} users`, { seconds: (Date.now() - started) / 1000 });
    }
  }

  const vectors = users.map((u) => u.vector);
  const similarity = similarityMatrix(vectors, o.similarity);
  const neighbours = nearestNeighbours(similarity, o.k);
  const clusters = users.map((u) => u.cluster);
  let purity: PurityResult | undefined;
  let purityBySimilarity: Record<SimilarityKind, PurityResult> | undefined;
  if (clusters.some((c) => c !== null)) {
    purity = clusterPurity(neighbours, clusters);
    const other: SimilarityKind = o.similarity === 'cosine' ? 'centered-cosine' : 'cosine';
    const otherPurity = clusterPurity(nearestNeighbours(similarityMatrix(vectors, other), o.k), clusters);
    purityBySimilarity = { [o.similarity]: purity, [other]: otherPurity } as Record<SimilarityKind, PurityResult>;
    if (purity.unknown) logger?.warn(`${purity.unknown} mined user(s) have no known cluster: they are not counted in purity`);
  }
  return { options: o, target, layers, heads, prefixLength, users, similarity, neighbours, purity, purityBySimilarity };
}
