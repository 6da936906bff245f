/**
 * Research measurement (README, "The embedded demo"): how far apart camps-split-xl's camp-factor
 * poles are on each world seed, with the poles left to the draw and with the preset's fixed
 * distances, and the purity@5 that a feature proxy of the users' preference directions gets (per
 * user: the attribute one-hots of the liked minus the disliked image over the first 8 labelled,
 * untied comparisons; cosine 5 nearest users; against the hidden groups). No model, seconds.
 *
 *   node tools/scripts/run-ts.js research/standin/poles.ts
 */
import { simulateSynthpick, synthpickParams } from '@userpref/dataset-pickapic';
const GROUP_SIZES = [4, 6, 4, 4, 3, 3];
const OFF = GROUP_SIZES.map((_, i) => GROUP_SIZES.slice(0, i).reduce((a, b) => a + b, 0));
const ORDER = ['shape', 'colour', 'texture', 'layout', 'background', 'style'];
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
    ORDER.forEach((g, gi) => { d.v[OFF[gi] + w.attrs[g]] += 1; d.v[OFF[gi] + l.attrs[g]] -= 1; });
    d.n++;
  }
  const U = dirs.map((d) => { const n = Math.hypot(...d.v) || 1; return d.v.map((x) => x / n); });
  let tot = 0;
  for (let i = 0; i < U.length; i++) {
    const s = U.map((u, j) => (j === i ? -Infinity : u.reduce((a, x, t) => a + x * U[i][t], 0)));
    const nn = [...s.keys()].sort((a, b) => s[b] - s[a]).slice(0, 5);
    tot += nn.filter((j) => users[j].cluster === users[i].cluster).length / 5;
  }
  return { camp: nrm(c[0], c[1], 4, 14), style: nrm(c[0], c[2], 21, 24), purity: tot / U.length, bayes: sim.summary?.bayesOptimalAccuracy };
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
