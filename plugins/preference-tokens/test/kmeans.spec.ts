import { Rng } from '@userpref/core';
import { sphericalKMeans } from '../src/kmeans';

/*
 * Six points in d = 2, three pairs at 0, 120 and 240 degrees, each pair 10 degrees apart (at
 * -5 and +5 around its direction, and at a length of 1, 2 or 3 that cosine ignores). Spherical
 * k-means with k = 3 must put each pair together; each centre is the pair's direction (the
 * normalised sum of two unit vectors 5 degrees either side of it), and the objective is
 * 6 cos(5 deg).
 */
const deg = (a: number) => (a * Math.PI) / 180;
const at = (a: number, r: number) => [r * Math.cos(deg(a)), r * Math.sin(deg(a))];
const points = [at(-5, 1), at(115, 2), at(235, 3), at(5, 2), at(125, 3), at(245, 1)];

describe('spherical k-means', () => {
  it('finds the three directions by hand: pairs together, centres on their bisectors, objective 6 cos 5deg', () => {
    const r = sphericalKMeans(points, 3, Rng.stream(1, 'test'), { restarts: 4, iterations: 20 });
    const [a, b, c, d, e, f] = r.assignment;
    expect([a, b, c].sort()).toEqual([0, 1, 2]);
    expect([d, e, f]).toEqual([a, b, c]);
    const angles = r.centres.map((v) => ((Math.atan2(v[1], v[0]) * 180) / Math.PI + 360) % 360).sort((x, y) => x - y);
    angles.forEach((g, i) => expect(g).toBeCloseTo([0, 120, 240][i], 8));
    r.centres.forEach((v) => expect(Math.hypot(v[0], v[1])).toBeCloseTo(1, 12));
    expect(r.objective).toBeCloseTo(6 * Math.cos(deg(5)), 10);
  });

  it('is deterministic given the Rng, and refuses more centres than points', () => {
    const run = () => sphericalKMeans(points, 2, Rng.stream(3, 'test'), { restarts: 3, iterations: 20 });
    expect(run()).toEqual(run());
    expect(() => sphericalKMeans(points.slice(0, 2), 3, Rng.stream(1, 'test'), { restarts: 1, iterations: 1 })).toThrow('2 points cannot seat 3 centres');
    expect(() => sphericalKMeans(points, 0, Rng.stream(1, 'test'), { restarts: 1, iterations: 1 })).toThrow('k must be an integer >= 1, got 0');
  });

  it('keeps the best of its restarts: never worse than one run from the same stream', () => {
    // Two tight groups and a stray point: a single k-means++ run may put a centre on the stray.
    const data = [at(0, 1), at(2, 1), at(-2, 1), at(180, 1), at(178, 1), at(182, 1), at(90, 1)];
    const best = sphericalKMeans(data, 2, Rng.stream(9, 'test'), { restarts: 8, iterations: 20 });
    for (let s = 0; s < 8; s++) {
      const one = sphericalKMeans(data, 2, Rng.stream(100 + s, 'test'), { restarts: 1, iterations: 20 });
      expect(best.objective).toBeGreaterThanOrEqual(one.objective - 1e-12);
    }
  });
});
