/**
 * Split protocols. Both keep every target out of its own references and keep evaluation data out
 * of training:
 *
 * - `by-comparison` (the paper's): the same users in every split; each user's comparisons are
 *   held out at random for validation / test. References of every example (train or not) come
 *   only from that user's TRAIN comparisons, so a held-out comparison is never seen in training,
 *   not even as a reference.
 * - `by-user`: unseen users. Users are assigned to one split; an example's references come from
 *   the same user's other comparisons.
 *
 * Ties (label0 = 0.5, kept only with --keep-ties) are never training targets nor references:
 * they are evaluation targets only, used when the dataset's tiePolicy is 'keep'.
 */
import { Rng, type SplitName } from '@userpref/core';
import { FORMAT_NAME, type SplitIndex, type StoredComparison } from './store';

export type SplitProtocol = 'by-comparison' | 'by-user';
export const SPLIT_PROTOCOLS: readonly SplitProtocol[] = ['by-comparison', 'by-user'];

export interface SplitOptions {
  protocol: SplitProtocol;
  seed: number;
  /** Share of comparisons (by-comparison) or of users (by-user) held out. */
  validationFraction: number;
  testFraction: number;
}

export interface BuiltSplits {
  readonly splits: Record<SplitName, SplitIndex>;
  /** Ties that could not be used (a by-user train user's ties). */
  readonly unusedTies: number;
}

function groupByUser(comparisons: readonly StoredComparison[]): Map<string, number[]> {
  const byUser = new Map<string, number[]>();
  comparisons.forEach((c, i) => {
    let list = byUser.get(c.userId);
    if (!list) byUser.set(c.userId, (list = []));
    list.push(i);
  });
  // Sorted users: the result never depends on input order beyond each user's own comparisons.
  return new Map([...byUser.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function buildSplits(comparisons: readonly StoredComparison[], opts: SplitOptions): BuiltSplits {
  const { validationFraction: fv, testFraction: ft } = opts;
  if (!(fv >= 0 && ft >= 0 && fv + ft < 1)) throw new Error(`split fractions must be >= 0 and sum to < 1 (validation ${fv}, test ${ft})`);
  const out: Record<SplitName, { pools: number[][]; examples: Array<[number, number]>; users: Set<string> }> = {
    train: { pools: [], examples: [], users: new Set() },
    validation: { pools: [], examples: [], users: new Set() },
    test: { pools: [], examples: [], users: new Set() },
  };
  const byUser = groupByUser(comparisons);
  let unusedTies = 0;
  const isTie = (i: number) => comparisons[i].label0 !== 0 && comparisons[i].label0 !== 1;

  if (opts.protocol === 'by-comparison') {
    const rng = Rng.stream(opts.seed, 'split/by-comparison');
    for (const [user, list] of byUser) {
      const parts: Record<SplitName, number[]> = { train: [], validation: [], test: [] };
      for (const i of list) {
        const u = rng.uniform();
        if (isTie(i)) parts[u < ft / (ft + fv || 1) ? 'test' : 'validation'].push(i);
        else parts[u < ft ? 'test' : u < ft + fv ? 'validation' : 'train'].push(i);
      }
      // One pool per user: the user's train comparisons, shared by all of the user's examples.
      for (const split of ['train', 'validation', 'test'] as const) {
        if (!parts[split].length) continue;
        const s = out[split];
        const pool = s.pools.length;
        s.pools.push(parts.train);
        s.users.add(user);
        for (const t of parts[split]) s.examples.push([t, pool]);
      }
    }
  } else {
    const rng = Rng.stream(opts.seed, 'split/by-user');
    const users = rng.shuffle([...byUser.keys()]);
    const nTest = Math.round(users.length * ft);
    const nVal = Math.round(users.length * fv);
    users.forEach((user, k) => {
      const split: SplitName = k < nTest ? 'test' : k < nTest + nVal ? 'validation' : 'train';
      const list = byUser.get(user)!;
      const nonTies = list.filter((i) => !isTie(i));
      const targets = split === 'train' ? nonTies : list;
      unusedTies += list.length - targets.length;
      if (!targets.length) return;
      const s = out[split];
      const pool = s.pools.length;
      s.pools.push(nonTies);
      s.users.add(user);
      for (const t of targets) s.examples.push([t, pool]);
    });
  }
  const make = (split: SplitName): SplitIndex => ({
    format: FORMAT_NAME,
    split,
    protocol: opts.protocol,
    referenceSelection: 'sample',
    users: out[split].users.size,
    pools: out[split].pools,
    examples: out[split].examples,
  });
  return { splits: { train: make('train'), validation: make('validation'), test: make('test') }, unusedTies };
}
