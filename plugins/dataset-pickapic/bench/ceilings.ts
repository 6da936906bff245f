/**
 * What an in-context reader of K reference pairs can reach on a synthpick set, computed from the
 * hidden attributes and tastes (no model): the yardsticks the demo's numbers are read against.
 *
 *   node tools/scripts/run-ts.js plugins/dataset-pickapic/bench/ceilings.ts [--preset default] [--seed 42] [--params '<json overrides>']
 *
 * Per labelled comparison of every user, K references are drawn from the user's other comparisons:
 *  - kernel: score = shared attributes with the liked minus the disliked references (ViPer-like
 *    comparison with perfect perception);
 *  - bilinear: the liked-minus-disliked attribute sum projected onto the cluster tastes, then
 *    dotted with the target's attribute difference (what sign-selective attention plus one
 *    product can compute);
 *  - cluster posterior: P(cluster | references) under Bradley-Terry with the cluster tastes (mean
 *    taste of the cluster's users), then that mixture's taste: recognise the taste group, apply it;
 *  - cluster oracle: the user's true cluster taste; population: the population-average taste;
 *  - attention: the demo base's taste-free reader (research/standin/build_reader_base.py --reader
 *    kernel), exactly: two heads (shape/colour/texture and layout/background/style), each a softmax
 *    over the 2K reference answers of 0.4 per attribute shared with the target, voting the answers'
 *    signs; the liked target's vote minus the disliked one's;
 *  - attention (taste groups): the same reader, one head over the groups the taste clusters
 *    disagree on only (tasteGroups, or the groups of campFactors): what a reader that learned which attributes matter,
 *    and nothing else, reaches;
 *  - attention (bilinear): the same reader, one head, scoring a reference answer by 0.1 x the
 *    cluster-taste bilinear form of target and reference (the bilinear reader inside the base's
 *    softmax-and-sign circuit: what stage 1 can reach by changing the reading heads' query/key).
 */
import { Rng } from '@userpref/core';
import { ATTRIBUTES, campGroups, simulateSynthpick, synthpickParams, type ImageSpec, type SynthpickParams } from '../src/synthpick';

const GROUPS = Object.keys(ATTRIBUTES) as Array<keyof typeof ATTRIBUTES>;
const NF = GROUPS.reduce((a, g) => a + ATTRIBUTES[g].length, 0);

function onehot(s: ImageSpec): Float64Array {
  const v = new Float64Array(NF);
  let o = 0;
  for (const g of GROUPS) {
    v[o + s.attrs[g]] = 1;
    o += ATTRIBUTES[g].length;
  }
  return v;
}
const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i], 0);

/** The hand-set reader's vote for a target: per head, softmax over the answers of beta * shared attributes, times their signs. */
function attentionVote(target: ImageSpec, refs: Array<[ImageSpec, ImageSpec]>, heads: Array<readonly string[]>, beta: number): number {
  let vote = 0;
  for (const groups of heads) {
    const scores: number[] = [];
    const signs: number[] = [];
    for (const [liked, disliked] of refs) {
      for (const [img, sign] of [[liked, 1], [disliked, -1]] as Array<[ImageSpec, number]>) {
        let shared = 0;
        for (const g of groups) if (img.attrs[g as keyof typeof ATTRIBUTES] === target.attrs[g as keyof typeof ATTRIBUTES]) shared++;
        scores.push(beta * shared);
        signs.push(sign);
      }
    }
    if (!scores.length) continue;
    const top = Math.max(...scores);
    const w = scores.map((x) => Math.exp(x - top));
    const z = w.reduce((a, b) => a + b, 0);
    vote += w.reduce((a, x, i) => a + (x / z) * signs[i], 0);
  }
  return vote;
}
const BASE_HEADS = [['shape', 'colour', 'texture'], ['layout', 'background', 'style']];

export function ceilings(params: SynthpickParams, seed: number, ks: number[]) {
  const sim = simulateSynthpick(params, seed);
  const centres = Array.from({ length: params.clusters }, (_, c) => {
    const members = sim.users.filter((u) => u.cluster === c);
    const m = new Float64Array(NF);
    for (const u of members) u.taste.forEach((x, f) => (m[f] += x / members.length));
    return m;
  });
  const byUser = new Map<number, typeof sim.comparisons[number][]>();
  for (const c of sim.comparisons) {
    if (!c.hasLabel || !c.areDifferent || c.label0 === 0.5) continue;
    byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
  }
  return ks.map((k) => {
    const rng = Rng.stream(seed, `ceilings/${k}`);
    let n = 0, kernel = 0, bilinear = 0, posterior = 0, oracle = 0, population = 0, attention = 0, attentionTaste = 0, attentionBilinear = 0;
    const tasteHeads = [campGroups(params)];
    for (const [user, list] of byUser) {
      list.forEach((t, i) => {
        const refSpecs = rng.shuffle(list.filter((_, j) => j !== i)).slice(0, k).map((r): [ImageSpec, ImageSpec] => (r.label0 === 1 ? [r.image0, r.image1] : [r.image1, r.image0]));
        const refs = refSpecs.map(([l, dis]) => [onehot(l), onehot(dis)]);
        const d = onehot(t.image0).map((x, f) => x - onehot(t.image1)[f]);
        const liked0 = t.label0 === 1;
        const credit = (score: number) => (score === 0 ? 0.5 : (score > 0) === liked0 ? 1 : 0);
        kernel += credit(refs.reduce((s, [l, dis]) => s + dot(d, l) - dot(d, dis), 0));
        const evidence = new Float64Array(NF);
        for (const [l, dis] of refs) for (let f = 0; f < NF; f++) evidence[f] += l[f] - dis[f];
        bilinear += credit(centres.reduce((s, c) => s + dot(c, evidence) * dot(c, d), 0));
        const logp = centres.map((c) => refs.reduce((s, [l, dis]) => s - Math.log1p(Math.exp(-params.beta * (dot(c, l) - dot(c, dis)))), 0));
        const top = Math.max(...logp);
        const w = logp.map((x) => Math.exp(x - top));
        posterior += credit(centres.reduce((s, c, j) => s + w[j] * dot(c, d), 0));
        oracle += credit(dot(centres[sim.users[user].cluster], d));
        attention += credit(attentionVote(t.image0, refSpecs, BASE_HEADS, 0.4) - attentionVote(t.image1, refSpecs, BASE_HEADS, 0.4));
        {
          const sc = (tt: Float64Array, r: Float64Array) => centres.reduce((a, c) => a + dot(c, tt) * dot(c, r), 0) * 0.1;
          const voteB = (tt: Float64Array) => {
            const all = refs.flatMap(([l, dis]) => [[sc(tt, l), 1], [sc(tt, dis), -1]]);
            const top = Math.max(...all.map((x) => x[0]));
            const w = all.map(([x]) => Math.exp(x - top));
            const z = w.reduce((a2, b) => a2 + b, 0);
            return all.reduce((a2, [, sg], i2) => a2 + (w[i2] / z) * sg, 0);
          };
          attentionBilinear += refs.length ? credit(voteB(onehot(t.image0)) - voteB(onehot(t.image1))) : 0.5;
        }
        attentionTaste += credit(attentionVote(t.image0, refSpecs, tasteHeads, 0.4) - attentionVote(t.image1, refSpecs, tasteHeads, 0.4));
        population += t.populationPick0 === liked0 ? 1 : 0;
        n++;
      });
    }
    const pct = (x: number) => +((100 * x) / n).toFixed(1);
    return { references: k, comparisons: n, kernel: pct(kernel), bilinear: pct(bilinear), clusterPosterior: pct(posterior), clusterOracle: pct(oracle), population: pct(population), attention: pct(attention), attentionTaste: pct(attentionTaste), attentionBilinear: pct(attentionBilinear) };
  });
}

if (require.main === module || process.argv[1] === __filename) {
  const arg = (name: string, dflt: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : dflt;
  };
  const preset = arg('preset', 'default');
  const seed = Number(arg('seed', '42'));
  const overrides = JSON.parse(arg('params', '{}')) as Partial<SynthpickParams>;
  const params = synthpickParams(preset, overrides);
  const sim = simulateSynthpick(params, seed);
  console.log(`synthpick ${preset}${arg('params', '') ? ` ${JSON.stringify(overrides)}` : ''} seed ${seed}: Bayes-optimal ${(100 * sim.summary.bayesOptimalAccuracy).toFixed(1)}% (expected), accuracy % of in-context readers:`);
  console.table(ceilings(params, seed, [0, 1, 2, 4, 8]));
}
