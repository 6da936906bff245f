/** The mining arithmetic against numbers worked out by hand. */
import { at, clusterPurity, nearestNeighbours, similarityMatrix, type Neighbour } from '../src/similarity';

describe('similarityMatrix', () => {
  it('is the cosine of every pair (hand values)', () => {
    // a = (1, 0), b = (1, 1), c = (0, 2), z = (0, 0)
    const m = similarityMatrix([[1, 0], [1, 1], [0, 2], [0, 0]]);
    expect(at(m, 0, 1)).toBeCloseTo(1 / Math.SQRT2, 12);
    expect(at(m, 1, 2)).toBeCloseTo(2 / (Math.SQRT2 * 2), 12);
    expect(at(m, 0, 2)).toBe(0);
    expect(at(m, 2, 1)).toBe(at(m, 1, 2));
    // a zero vector: 0 with everyone, 1 with itself, never NaN
    expect([at(m, 3, 0), at(m, 3, 1), at(m, 3, 3)]).toEqual([0, 0, 1]);
  });

  it('centered-cosine subtracts the mean vector over users first', () => {
    // mean of (1, 3), (3, 3), (2, 0) is (2, 2): centred (-1, 1), (1, 1), (0, -2)
    const m = similarityMatrix([[1, 3], [3, 3], [2, 0]], 'centered-cosine');
    expect(at(m, 0, 1)).toBeCloseTo(0, 12);
    expect(at(m, 0, 2)).toBeCloseTo(-2 / (Math.SQRT2 * 2), 12);
    expect(at(m, 1, 2)).toBeCloseTo(-2 / (Math.SQRT2 * 2), 12);
  });

  it('rejects ragged or non-finite vectors, naming the vector', () => {
    expect(() => similarityMatrix([[1, 2], [1]])).toThrow(/vector 1 has length 1/);
    expect(() => similarityMatrix([[1, 2], [1, NaN]])).toThrow(/vector 1 has a non-finite entry/);
  });
});

describe('nearestNeighbours', () => {
  it('lists the k most similar others, ties to the lower index, k capped at n - 1', () => {
    const m = { n: 4, values: Float64Array.from([1, 0.5, 0.9, 0.5, 0.5, 1, 0.2, 0.7, 0.9, 0.2, 1, 0.1, 0.5, 0.7, 0.1, 1]) };
    const nb = nearestNeighbours(m, 2);
    expect(nb[0].map((x) => x.index)).toEqual([2, 1]); // 0.9, then 0.5 (index 1 beats index 3 on the tie)
    expect(nb[1].map((x) => x.index)).toEqual([3, 0]);
    expect(nb[3].map((x) => x.similarity)).toEqual([0.7, 0.5]);
    expect(nearestNeighbours(m, 10)[0]).toHaveLength(3);
  });
});

describe('clusterPurity', () => {
  const nb = (...idx: number[]): Neighbour[] => idx.map((index) => ({ index, similarity: 0 }));

  it('averages the same-cluster share of each list; the random baseline is (size - 1)/(n - 1) averaged', () => {
    // 5 users: clusters A A A B B. k = 2.
    const clusters = [0, 0, 0, 1, 1];
    const lists = [nb(1, 2), nb(0, 3), nb(3, 4), nb(4, 0), nb(0, 1)];
    const r = clusterPurity(lists, clusters);
    // per user: 2/2, 1/2, 0/2, 1/2, 0/2 -> mean 2/5
    expect(r.perUser).toEqual([1, 0.5, 0, 0.5, 0]);
    expect(r.purity).toBeCloseTo(0.4, 12);
    // A users: (3-1)/4 = 1/2 (three of them), B users: (2-1)/4 = 1/4 (two) -> (3/2 + 1/2)/5 = 2/5
    expect(r.randomBaseline).toBeCloseTo(0.4, 12);
    expect(r.counted).toBe(5);
  });

  it('the baseline is the exact mean purity over every possible neighbour draw', () => {
    // 6 users, clusters 0 0 0 0 1 2; enumerate all 2-subsets of the other users for each user.
    const clusters = [0, 0, 0, 0, 1, 2];
    const n = clusters.length;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const others = [...Array(n).keys()].filter((j) => j !== i);
      let sum = 0;
      let count = 0;
      for (let a = 0; a < others.length; a++) {
        for (let b = a + 1; b < others.length; b++) {
          sum += ((clusters[others[a]] === clusters[i] ? 1 : 0) + (clusters[others[b]] === clusters[i] ? 1 : 0)) / 2;
          count++;
        }
      }
      total += sum / count;
    }
    const r = clusterPurity(clusters.map(() => nb(0, 1)), clusters);
    expect(r.randomBaseline).toBeCloseTo(total / n, 12);
    // by hand: four users at 3/5, two at 0 -> 12/30 = 0.4
    expect(r.randomBaseline).toBeCloseTo(0.4, 12);
  });

  it('users with an unknown cluster are candidates but not counted', () => {
    const clusters = [0, 0, null, 1];
    const r = clusterPurity([nb(1), nb(2), nb(0), nb(2)], clusters);
    expect(r.perUser).toEqual([1, 0, null, 0]);
    expect(r.counted).toBe(3);
    expect(r.unknown).toBe(1);
    // sizes over all 4 listed users: cluster 0 -> 1/3 (two users), cluster 1 -> 0/3
    expect(r.randomBaseline).toBeCloseTo((1 / 3 + 1 / 3 + 0) / 3, 12);
    expect(r.purity).toBeCloseTo(1 / 3, 12);
  });
});
