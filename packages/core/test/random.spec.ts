import { Rng } from '../src';

describe('Rng', () => {
  it('is deterministic from a seed and resumable from its state', () => {
    const a = Rng.fromSeed(42);
    const b = Rng.fromSeed(42);
    const xs = Array.from({ length: 5 }, () => a.uniform());
    expect(Array.from({ length: 5 }, () => b.uniform())).toEqual(xs);
    const state = a.state();
    const next = [a.uniform(), a.int(10)];
    const c = Rng.fromState(state);
    expect([c.uniform(), c.int(10)]).toEqual(next);
  });

  it('gives independent named streams', () => {
    const x = Rng.stream(42, 'data').uniform();
    const y = Rng.stream(42, 'model').uniform();
    expect(x).not.toBe(y);
    expect(Rng.stream(42, 'data').uniform()).toBe(x);
  });

  it('draws uniform values with the right moments', () => {
    const r = Rng.fromSeed(7);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
    const counts = new Array(4).fill(0);
    for (let i = 0; i < 4000; i++) counts[r.int(4)]++;
    counts.forEach((c) => expect(Math.abs(c - 1000)).toBeLessThan(120));
  });

  it('samples distinct indices', () => {
    const idx = Rng.fromSeed(1).sample(10, 10);
    expect([...idx].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(() => Rng.fromSeed(1).sample(3, 4)).toThrow(/cannot sample 4/);
  });
});
