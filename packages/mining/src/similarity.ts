/**
 * The arithmetic of similar-user mining, kept free of tensors so it can be checked by hand:
 * cosine similarity between users' attention vectors, each user's k nearest users, and how often
 * those neighbours share the user's hidden taste cluster (purity) against what random neighbours
 * would give (the exact expectation, not a simulation).
 */

/** How vectors are compared. 'centered-cosine' subtracts the mean vector over users first. */
export type SimilarityKind = 'cosine' | 'centered-cosine';

/** Dense symmetric [n, n] matrix, row-major. */
export interface SimilarityMatrix {
  readonly n: number;
  readonly values: Float64Array;
}

export function at(m: SimilarityMatrix, i: number, j: number): number {
  return m.values[i * m.n + j];
}

/**
 * Cosine similarity of every pair of vectors (all the same length). A zero vector has similarity 0
 * with everything (and 1 with itself, by convention), never NaN.
 */
export function similarityMatrix(vectors: ReadonlyArray<ArrayLike<number>>, kind: SimilarityKind = 'cosine'): SimilarityMatrix {
  const n = vectors.length;
  if (n === 0) return { n: 0, values: new Float64Array(0) };
  const d = vectors[0].length;
  vectors.forEach((v, i) => {
    if (v.length !== d) throw new Error(`similarity: vector ${i} has length ${v.length}, vector 0 has ${d}`);
    for (let j = 0; j < d; j++) if (!Number.isFinite(v[j])) throw new Error(`similarity: vector ${i} has a non-finite entry ${v[j]} at ${j}`);
  });
  const rows = vectors.map((v) => Float64Array.from(v));
  if (kind === 'centered-cosine') {
    const mean = new Float64Array(d);
    for (const r of rows) for (let j = 0; j < d; j++) mean[j] += r[j] / n;
    for (const r of rows) for (let j = 0; j < d; j++) r[j] -= mean[j];
  } else if (kind !== 'cosine') throw new Error(`similarity: unknown kind '${String(kind)}' (cosine | centered-cosine)`);
  const norms = rows.map((r) => Math.sqrt(r.reduce((a, x) => a + x * x, 0)));
  const values = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let dot = 0;
      for (let t = 0; t < d; t++) dot += rows[i][t] * rows[j][t];
      const den = norms[i] * norms[j];
      const s = i === j ? 1 : den > 0 ? dot / den : 0;
      values[i * n + j] = s;
      values[j * n + i] = s;
    }
  }
  return { n, values };
}

export interface Neighbour {
  /** Index of the neighbour in the user list. */
  readonly index: number;
  readonly similarity: number;
}

/**
 * The k most similar other users of each user, most similar first; ties go to the lower index so
 * the answer is deterministic. k is capped at n - 1.
 */
export function nearestNeighbours(m: SimilarityMatrix, k: number): Neighbour[][] {
  if (!Number.isInteger(k) || k < 1) throw new Error(`nearest neighbours: k must be an integer >= 1, got ${k}`);
  const kk = Math.min(k, m.n - 1);
  const out: Neighbour[][] = [];
  for (let i = 0; i < m.n; i++) {
    const others = [...Array(m.n).keys()].filter((j) => j !== i);
    others.sort((a, b) => at(m, i, b) - at(m, i, a) || a - b);
    out.push(others.slice(0, kk).map((j) => ({ index: j, similarity: at(m, i, j) })));
  }
  return out;
}

export interface PurityResult {
  /** Mean over users with a known cluster of the share of their neighbours in the same cluster. */
  readonly purity: number;
  /**
   * Expected purity of k neighbours drawn uniformly at random from the other users:
   * mean over users with a known cluster of (cluster size - 1) / (users - 1).
   */
  readonly randomBaseline: number;
  /** Per user: share of its neighbours in its cluster (null when its cluster is unknown). */
  readonly perUser: Array<number | null>;
  /** Users the means are over (those with a known cluster). */
  readonly counted: number;
  /** Users without a known cluster (still candidates as neighbours, never counted as a match). */
  readonly unknown: number;
}

/**
 * Purity of the neighbour lists against hidden clusters (null = unknown). Cluster sizes count
 * every listed user, since every listed user can be drawn as a neighbour.
 */
export function clusterPurity(neighbours: ReadonlyArray<readonly Neighbour[]>, clusters: ReadonlyArray<number | null>): PurityResult {
  const n = clusters.length;
  if (neighbours.length !== n) throw new Error(`purity: ${neighbours.length} neighbour lists for ${n} users`);
  if (n < 2) throw new Error(`purity needs at least 2 users, got ${n}`);
  const size = new Map<number, number>();
  for (const c of clusters) if (c !== null) size.set(c, (size.get(c) ?? 0) + 1);
  const perUser: Array<number | null> = [];
  let sum = 0;
  let base = 0;
  let counted = 0;
  neighbours.forEach((list, i) => {
    const c = clusters[i];
    if (c === null) {
      perUser.push(null);
      return;
    }
    if (list.length === 0) throw new Error(`purity: user ${i} has no neighbours`);
    const same = list.filter((nb) => clusters[nb.index] === c).length / list.length;
    perUser.push(same);
    sum += same;
    base += (size.get(c)! - 1) / (n - 1);
    counted++;
  });
  if (counted === 0) throw new Error('purity: no user has a known cluster');
  return { purity: sum / counted, randomBaseline: base / counted, perUser, counted, unknown: n - counted };
}
