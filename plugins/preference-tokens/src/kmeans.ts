/**
 * Spherical k-means (cosine k-means): the clustering the prompt pool's cosine routing performs
 * online, run once on a buffer of queries to seat the learnable keys from data, as VQ codebooks
 * are initialised by k-means on the first batch (SoundStream, EnCodec). k-means++ seeding on
 * cosine distance (1 - cos), then Lloyd iterations (assign each point to the most cosine-similar
 * centre; a centre becomes the normalised mean of its points); the best of `restarts` runs by
 * the objective (sum of each point's cosine with its centre). Deterministic given the Rng.
 *
 * Written here rather than taken from a library: the k-means packages on npm (ml-kmeans and
 * others) cluster by Euclidean distance with unnormalised centres, which on unit vectors is not
 * the routing by cosine that the pool does.
 */
import type { Rng } from '@userpref/core';

export interface SphericalKMeansOptions {
  readonly restarts: number;
  readonly iterations: number;
}

export interface SphericalKMeansResult {
  /** k unit centres. */
  readonly centres: Float64Array[];
  /** Index of each point's centre. */
  readonly assignment: number[];
  /** Sum over points of the cosine with their centre. */
  readonly objective: number;
}

function unit(v: ArrayLike<number>): Float64Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i] * v[i];
  const out = Float64Array.from(v);
  if (n > 0) for (let i = 0; i < out.length; i++) out[i] /= Math.sqrt(n);
  return out;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Most cosine-similar centre of each point (ties to the lower index) and the summed cosine. */
function assign(points: Float64Array[], centres: Float64Array[]): { assignment: number[]; objective: number } {
  let objective = 0;
  const assignment = points.map((p) => {
    let best = 0;
    let bestCos = -Infinity;
    centres.forEach((c, j) => {
      const cos = dot(p, c);
      if (cos > bestCos) {
        best = j;
        bestCos = cos;
      }
    });
    objective += bestCos;
    return best;
  });
  return { assignment, objective };
}

/** k-means++ on cosine distance: the first centre uniformly, each next with probability proportional to (1 - best cos)^2. */
function seedCentres(points: Float64Array[], k: number, rng: Rng): Float64Array[] {
  const centres = [points[rng.int(points.length)]];
  const gap = points.map((p) => 1 - dot(p, centres[0]));
  while (centres.length < k) {
    const weights = gap.map((g) => Math.max(g, 0) ** 2);
    const total = weights.reduce((a, w) => a + w, 0);
    let pick = 0;
    if (total > 0) {
      let r = rng.uniform() * total;
      while (pick < points.length - 1 && r >= weights[pick]) r -= weights[pick++];
    } else pick = rng.int(points.length);
    centres.push(points[pick]);
    points.forEach((p, i) => (gap[i] = Math.min(gap[i], 1 - dot(p, points[pick]))));
  }
  return centres.map((c) => Float64Array.from(c));
}

export function sphericalKMeans(data: ReadonlyArray<ArrayLike<number>>, k: number, rng: Rng, options: SphericalKMeansOptions): SphericalKMeansResult {
  if (!Number.isInteger(k) || k < 1) throw new Error(`spherical k-means: k must be an integer >= 1, got ${k}`);
  if (data.length < k) throw new Error(`spherical k-means: ${data.length} points cannot seat ${k} centres`);
  const points = data.map(unit);
  let best: SphericalKMeansResult | null = null;
  for (let run = 0; run < options.restarts; run++) {
    let centres = seedCentres(points, k, rng);
    let { assignment, objective } = assign(points, centres);
    for (let it = 0; it < options.iterations; it++) {
      // A centre that lost all its points keeps its place (it cannot be normalised from nothing).
      centres = centres.map((c, j) => {
        const sum = new Float64Array(c.length);
        let members = 0;
        points.forEach((p, i) => {
          if (assignment[i] !== j) return;
          members++;
          for (let t = 0; t < sum.length; t++) sum[t] += p[t];
        });
        return members ? unit(sum) : c;
      });
      const next = assign(points, centres);
      const moved = next.assignment.some((a, i) => a !== assignment[i]);
      ({ assignment, objective } = next);
      if (!moved) break;
    }
    if (!best || objective > best.objective + 1e-12) best = { centres, assignment, objective };
  }
  return best!;
}
