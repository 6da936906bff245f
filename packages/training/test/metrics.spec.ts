import { bootstrapCi, credit, pairwiseAccuracy, perUserAccuracy, quantile, rocAuc } from '../src/metrics';

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
});
