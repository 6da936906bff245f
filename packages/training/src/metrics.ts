/**
 * Evaluation metrics of SPEC §7: pairwise accuracy with an explicit tie policy, a bootstrap
 * confidence interval, the per-user accuracy distribution and the ROC AUC of the score; and the
 * paired difference of two models on the same comparisons.
 */
import { Rng, type PreferenceScore } from '@userpref/core';

/**
 * - 'drop': comparisons labelled as ties are left out; a prediction with score0 == score1 earns 0.5.
 * - 'pickscore': Pick-a-Pic's convention: a tie label, or a prediction with |score0 - score1| <=
 *   threshold, earns 0.5; otherwise 1 if the higher score is the preferred image, else 0.
 */
export interface TiePolicy {
  kind: 'drop' | 'pickscore';
  threshold?: number;
}

export function isTie(label0: number): boolean {
  return label0 > 0 && label0 < 1;
}

/** Credit in {0, 0.5, 1} of one comparison, or null when the policy drops it. */
export function credit(s: PreferenceScore, policy: TiePolicy): number | null {
  const tie = isTie(s.label0);
  if (policy.kind === 'drop') {
    if (tie) return null;
    if (s.score0 === s.score1) return 0.5;
    return (s.score0 > s.score1) === s.label0 >= 0.5 ? 1 : 0;
  }
  const thr = policy.threshold ?? 0;
  if (tie || Math.abs(s.score0 - s.score1) <= thr) return 0.5;
  return (s.score0 > s.score1) === s.label0 >= 0.5 ? 1 : 0;
}

export interface AccuracySummary {
  accuracy: number;
  n: number;
  dropped: number;
  ci95: [number, number];
}

export function pairwiseAccuracy(scores: readonly PreferenceScore[], policy: TiePolicy, bootstrap = { samples: 1000, seed: 0 }): AccuracySummary {
  const credits: number[] = [];
  let dropped = 0;
  for (const s of scores) {
    const c = credit(s, policy);
    if (c === null) dropped++;
    else credits.push(c);
  }
  const n = credits.length;
  const mean = n ? credits.reduce((a, c) => a + c, 0) / n : NaN;
  return { accuracy: mean, n, dropped, ci95: bootstrapCi(credits, bootstrap.samples, bootstrap.seed) };
}

/** Percentile bootstrap of the mean (resampling comparisons), 95%. */
export function bootstrapCi(values: readonly number[], samples: number, seed: number): [number, number] {
  const n = values.length;
  if (n === 0) return [NaN, NaN];
  const rng = Rng.stream(seed, 'bootstrap');
  const means = new Float64Array(samples);
  for (let b = 0; b < samples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[rng.int(n)];
    means[b] = s / n;
  }
  means.sort();
  const q = (p: number) => means[Math.min(samples - 1, Math.max(0, Math.floor(p * (samples - 1))))];
  return [q(0.025), q(0.975)];
}

/** Model a against model b on the same comparisons. */
export interface PairedSummary {
  /** Comparisons both are credited on (the tie policy drops the same ones for both). */
  n: number;
  /** Mean credit of a minus mean credit of b (accuracy difference, as a fraction). */
  difference: number;
  /** 95% percentile bootstrap of the difference, resampling comparisons (paired). */
  ci95: [number, number];
  /** Comparisons where a earns more credit than b, and the reverse. */
  aBetter: number;
  bBetter: number;
  /** Exact two-sided sign test on the comparisons where the credits differ (McNemar's exact test
   *  when credits are 0/1); 1 when they never differ. */
  pValue: number;
}

/**
 * Paired comparison of two scorings of the same comparisons, in the same order: far more sensitive
 * than comparing two separate intervals, because both models see the same hard and easy cases.
 */
export function pairedAccuracy(a: readonly PreferenceScore[], b: readonly PreferenceScore[], policy: TiePolicy, bootstrap = { samples: 1000, seed: 0 }): PairedSummary {
  if (a.length !== b.length) throw new Error(`paired comparison needs the same comparisons: ${a.length} scores against ${b.length}`);
  const diffs: number[] = [];
  let aBetter = 0;
  let bBetter = 0;
  a.forEach((sa, i) => {
    const sb = b[i];
    if (sa.userId !== sb.userId || sa.label0 !== sb.label0) {
      throw new Error(`paired comparison needs the same comparisons in the same order: #${i} is user ${sa.userId} (label0 ${sa.label0}) against user ${sb.userId} (label0 ${sb.label0})`);
    }
    const ca = credit(sa, policy);
    const cb = credit(sb, policy);
    if (ca === null || cb === null) return;
    diffs.push(ca - cb);
    if (ca > cb) aBetter++;
    else if (cb > ca) bBetter++;
  });
  const n = diffs.length;
  return {
    n,
    difference: n ? diffs.reduce((x, d) => x + d, 0) / n : NaN,
    ci95: bootstrapCi(diffs, bootstrap.samples, bootstrap.seed),
    aBetter,
    bBetter,
    pValue: signTestP(aBetter, bBetter),
  };
}

/** Exact two-sided sign test: P(|X - m/2| >= |k - m/2|) for X ~ Binomial(m = k + l, 1/2). */
export function signTestP(k: number, l: number): number {
  const m = k + l;
  if (m === 0) return 1;
  const lo = Math.min(k, l);
  // log C(m, i) - m log 2, summed for i <= lo in log space (m may be tens of thousands).
  let logTerm = -m * Math.LN2;
  let logSum = logTerm;
  for (let i = 0; i < lo; i++) {
    logTerm += Math.log(m - i) - Math.log(i + 1);
    logSum = Math.max(logSum, logTerm) + Math.log1p(Math.exp(-Math.abs(logSum - logTerm)));
  }
  return Math.min(1, 2 * Math.exp(logSum));
}

export interface UserAccuracy {
  users: number;
  mean: number;
  quantiles: { min: number; q25: number; median: number; q75: number; max: number };
  perUser: Record<string, { accuracy: number; n: number }>;
}

export function perUserAccuracy(scores: readonly PreferenceScore[], policy: TiePolicy): UserAccuracy {
  const by = new Map<string, number[]>();
  for (const s of scores) {
    const c = credit(s, policy);
    if (c === null) continue;
    const list = by.get(s.userId) ?? [];
    list.push(c);
    by.set(s.userId, list);
  }
  const perUser: UserAccuracy['perUser'] = {};
  const accs: number[] = [];
  for (const [u, list] of by) {
    const a = list.reduce((x, y) => x + y, 0) / list.length;
    perUser[u] = { accuracy: a, n: list.length };
    accs.push(a);
  }
  accs.sort((a, b) => a - b);
  const q = (p: number) => (accs.length ? quantile(accs, p) : NaN);
  return {
    users: accs.length,
    mean: accs.length ? accs.reduce((a, c) => a + c, 0) / accs.length : NaN,
    quantiles: { min: q(0), q25: q(0.25), median: q(0.5), q75: q(0.75), max: q(1) },
    perUser,
  };
}

/** Linear-interpolated quantile of sorted values (numpy's default). */
export function quantile(sorted: readonly number[], p: number): number {
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * ROC AUC of the score as a detector of "liked": every preferred candidate is a positive, every
 * other candidate a negative (ties dropped). Mann-Whitney U with average ranks for equal scores.
 */
export function rocAuc(scores: readonly PreferenceScore[]): number {
  const items: Array<{ s: number; pos: boolean }> = [];
  for (const x of scores) {
    if (isTie(x.label0)) continue;
    const liked0 = x.label0 >= 0.5;
    items.push({ s: x.score0, pos: liked0 }, { s: x.score1, pos: !liked0 });
  }
  const nPos = items.filter((i) => i.pos).length;
  const nNeg = items.length - nPos;
  if (!nPos || !nNeg) return NaN;
  items.sort((a, b) => a.s - b.s);
  let rankSumPos = 0;
  for (let i = 0; i < items.length; ) {
    let j = i;
    while (j + 1 < items.length && items[j + 1].s === items[i].s) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (items[k].pos) rankSumPos += avgRank;
    i = j + 1;
  }
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
