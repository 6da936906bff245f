import { bootstrapCi, credit, pairedAccuracy, pairwiseAccuracy, perUserAccuracy, quantile, rocAuc, signTestP } from '../src/metrics';

const s = (userId: string, score0: number, score1: number, label0: number) => ({ userId, score0, score1, label0 });

describe('metrics', () => {
  const scores = [s('a', 0.9, 0.2, 1), s('a', 0.3, 0.6, 1), s('b', 0.1, 0.7, 0), s('b', 0.5, 0.5, 0), s('c', 0.8, 0.4, 0.5)];

  it('scores pairwise accuracy under the drop policy (hand count)', () => {
    // kept: a1 correct (1), a2 wrong (0), b1 correct (1), b2 equal scores (0.5); c is a tie label -> dropped.
    const r = pairwiseAccuracy(scores, { kind: 'drop' });
    expect(r.n).toBe(4);
    expect(r.dropped).toBe(1);
    expect(r.accuracy).toBeCloseTo(2.5 / 4, 12);
    expect(r.ci95[0]).toBeLessThanOrEqual(r.accuracy);
    expect(r.ci95[1]).toBeGreaterThanOrEqual(r.accuracy);
  });

  it("scores ties with Pick-a-Pic's convention", () => {
    // threshold 0.35: a2 |0.3-0.6|=0.3 <= 0.35 -> 0.5; c tie label -> 0.5; a1 1; b1 1; b2 0.5.
    const r = pairwiseAccuracy(scores, { kind: 'pickscore', threshold: 0.35 });
    expect(r.n).toBe(5);
    expect(r.accuracy).toBeCloseTo((1 + 0.5 + 1 + 0.5 + 0.5) / 5, 12);
    expect(credit(s('x', 0.9, 0.1, 0), { kind: 'pickscore', threshold: 0 })).toBe(0);
  });

  it('gives per-user accuracy and its distribution', () => {
    const r = perUserAccuracy(scores, { kind: 'drop' });
    expect(r.perUser).toEqual({ a: { accuracy: 0.5, n: 2 }, b: { accuracy: 0.75, n: 2 } });
    expect(r.quantiles.median).toBeCloseTo(0.625, 12);
    expect(quantile([1, 2, 3, 4], 0.25)).toBeCloseTo(1.75, 12); // numpy.quantile([1,2,3,4], 0.25)
  });

  it('computes ROC AUC as the Mann-Whitney statistic (hand count)', () => {
    // positives (liked): 0.9, 0.3, 0.7, 0.5 ; negatives: 0.2, 0.6, 0.1, 0.5
    // pairs pos>neg: 0.9>all 4; 0.3>0.2,0.1 =2; 0.7>0.2,0.6,0.1,0.5 =4; 0.5>0.2,0.1 =2, =0.5 tie 0.5 -> 2.5
    // total 12.5 / 16
    expect(rocAuc(scores)).toBeCloseTo(12.5 / 16, 12);
  });

  it('bootstraps a deterministic interval that covers the mean', () => {
    const vals = Array.from({ length: 200 }, (_, i) => (i % 4 === 0 ? 0 : 1));
    const a = bootstrapCi(vals, 500, 3);
    expect(bootstrapCi(vals, 500, 3)).toEqual(a);
    expect(a[0]).toBeLessThan(0.75);
    expect(a[1]).toBeGreaterThan(0.75);
    // Normal approximation: se = sqrt(.75*.25/200) = 0.0306 -> half-width ~0.06.
    expect(a[1] - a[0]).toBeGreaterThan(0.09);
    expect(a[1] - a[0]).toBeLessThan(0.15);
  });

  it('compares two models on the same comparisons: paired difference, bootstrap and exact sign test', () => {
    // 12 comparisons (label0 1): a right on all but 1; b right on 3 (2 shared with a, and the one a misses).
    // a better on 9, b better on 1, equal on 2 -> difference (9 - 1) / 12.
    const right = (u: number) => s(`u${u}`, 0.9, 0.1, 1);
    const wrong = (u: number) => s(`u${u}`, 0.1, 0.9, 1);
    const ids = Array.from({ length: 12 }, (_, i) => i);
    const a = ids.map((i) => (i === 11 ? wrong(i) : right(i)));
    const b = ids.map((i) => (i >= 9 ? right(i) : wrong(i)));
    const r = pairedAccuracy(a, b, { kind: 'drop' }, { samples: 400, seed: 5 });
    expect([r.n, r.aBetter, r.bBetter]).toEqual([12, 9, 1]);
    expect(r.difference).toBeCloseTo(8 / 12, 12);
    // exact two-sided binomial test, 1 of 10: 2 * (C(10,0) + C(10,1)) / 2^10 (Python's exact integers agree)
    expect(r.pValue).toBeCloseTo(0.021484375, 12);
    expect(r.ci95[0]).toBeLessThan(8 / 12);
    expect(r.ci95[1]).toBeGreaterThan(8 / 12);
    // a model against itself: no difference, interval [0, 0], p = 1
    expect(pairedAccuracy(a, a, { kind: 'drop' })).toEqual({ n: 12, difference: 0, ci95: [0, 0], aBetter: 0, bBetter: 0, pValue: 1 });
    // tie labels are dropped for both under 'drop'
    expect(pairedAccuracy([...a, s('t', 0.9, 0.1, 0.5)], [...b, s('t', 0.1, 0.9, 0.5)], { kind: 'drop' }).n).toBe(12);
    // other comparisons, or another order, are an error
    expect(() => pairedAccuracy(a, b.slice(1), { kind: 'drop' })).toThrow('12 scores against 11');
    expect(() => pairedAccuracy(a, [...b].reverse(), { kind: 'drop' })).toThrow('#0 is user u0 (label0 1) against user u11');
  });

  it('computes exact sign-test p-values for large counts too (goldens: exact integer sums in Python)', () => {
    // p = min(1, 2 * sum_{i <= min(k, l)} C(k + l, i) / 2^(k + l)), evaluated with fractions.Fraction
    expect(signTestP(0, 7)).toBeCloseTo(0.015625, 15);
    expect(signTestP(5, 5)).toBe(1);
    expect(signTestP(0, 0)).toBe(1);
    expect(signTestP(136, 60) / 5.833103132089974e-8).toBeCloseTo(1, 9);
    expect(signTestP(9800, 10200) / 0.004780889455902644).toBeCloseTo(1, 9);
  });
});
