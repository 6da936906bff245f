/**
 * Research measurement (README, "The embedded demo"): how far apart camps-split-xl's camp-factor
 * poles are on each world seed, with the poles left to the draw and with the preset's fixed
 * distances, and the purity@5 that a feature proxy of the users' preference directions gets (per
 * user: the attribute one-hots of the liked minus the disliked image over the first 8 labelled,
 * untied comparisons; cosine 5 nearest users; against the hidden groups). No model, seconds.
 *
 *   node tools/scripts/run-ts.js research/standin/poles.ts
 */
import { SYNTHPICK_ATTRIBUTES, simulateSynthpick, synthpickParams } from '@userpref/dataset-pickapic';
import { clusterPurity, nearestNeighbours, similarityMatrix } from '@userpref/mining';

type Group = keyof typeof SYNTHPICK_ATTRIBUTES;
const GROUPS = Object.keys(SYNTHPICK_ATTRIBUTES) as Group[];
/** Each attribute group's first index in synthpick's one-hot feature vector (its order of groups). */
const OFF = Object.fromEntries(GROUPS.map((g, i) => [g, GROUPS.slice(0, i).reduce((a, h) => a + SYNTHPICK_ATTRIBUTES[h].length, 0)])) as Record<Group, number>;
const end = (g: Group) => OFF[g] + SYNTHPICK_ATTRIBUTES[g].length;

function proxy(params: any, seed: number) {
  const sim = simulateSynthpick(params, seed) as any;
  const users = sim.users as Array<{ cluster: number; taste: Float64Array }>;
  const F = users[0].taste.length;
  const mean = (k: number) => { const m = new Float64Array(F); const us = users.filter((u) => u.cluster === k); for (const u of us) for (let f = 0; f < F; f++) m[f] += u.taste[f] / us.length; return m; };
  const c = [0, 1, 2, 3].map(mean);
  const nrm = (a: Float64Array, b: Float64Array, lo: number, hi: number) => Math.sqrt(Array.from({ length: hi - lo }, (_, i) => (a[lo + i] - b[lo + i]) ** 2).reduce((x, y) => x + y, 0));
  const dirs = users.map(() => ({ v: new Float64Array(F), n: 0 }));
  for (const cmp of sim.comparisons) {
    if (!cmp.hasLabel || !cmp.areDifferent || cmp.label0 === 0.5) continue;
    const d = dirs[cmp.user];
    if (d.n >= 8) continue;
    const [w, l] = cmp.label0 === 1 ? [cmp.image0, cmp.image1] : [cmp.image1, cmp.image0];
    for (const g of GROUPS) { d.v[OFF[g] + w.attrs[g]] += 1; d.v[OFF[g] + l.attrs[g]] -= 1; }
    d.n++;
  }
  // Cosine 5 nearest users and their purity, as mining computes them.
  const purity = clusterPurity(nearestNeighbours(similarityMatrix(dirs.map((d) => d.v)), 5), users.map((u) => u.cluster)).purity;
  // Camp poles over colour and texture (clusters 0 and 1 differ there), style poles (clusters 0 and 2).
  return { camp: nrm(c[0], c[1], OFF.colour, end('texture')), style: nrm(c[0], c[2], OFF.style, end('style')), purity, bayes: sim.summary?.bayesOptimalAccuracy };
}
const base = synthpickParams('camps-split-xl') as any;
const at = (camp: number, style: number) => ({ ...base, campFactors: [{ ...base.campFactors[0], distance: camp }, { ...base.campFactors[1], distance: style }] });
const variants: Record<string, any> = {
  drawn: { ...base, campFactors: base.campFactors.map(({ groups, scale }: { groups: string[]; scale: number }) => ({ groups, scale })) },
  'd10/3 (the preset)': at(10, 3),
  'd10/5': at(10, 5),
};
for (const [name, p] of Object.entries(variants)) {
  for (const seed of [42, 43, 44, 45, 46]) {
    const r = proxy(p, seed);
    console.log(name, seed, 'camp', r.camp.toFixed(2), 'style', r.style.toFixed(2), 'proxy kNN purity', (100 * r.purity).toFixed(1), 'bayes', r.bayes === undefined ? '' : (100 * r.bayes).toFixed(1));
  }
}
