/**
 * Split protocols. Every one keeps every target out of its own references (a pool may hold the
 * target; the dataset never draws it) and keeps evaluation data out of training (a training
 * example's references are training comparisons):
 *
 * - `upstream` (the default for Pick-a-Pic v2 shards): each comparison stays in the split its file
 *   came from (file name, or --split). Nothing is re-drawn.
 * - `by-comparison` (the paper's; the default for synthpick, which has no upstream split): all
 *   comparisons are pooled; each user's comparisons are held out at random for validation / test.
 * - `by-user`: all comparisons are pooled; users (not comparisons) are assigned to one split.
 *
 * Where references come from (`references`):
 * - `train`: the user's training comparisons only (by-comparison's default, the paper's).
 * - `train+same-split`: the user's training comparisons and the user's other comparisons of the
 *   target's own split (upstream's default: an upstream validation / test user may have few or no
 *   training comparisons; by-user's only meaning, its users are in one split).
 * A training example's references are always training comparisons.
 *
 * Ties (label0 = 0.5, kept only with --keep-ties) are never training targets nor references:
 * they are evaluation targets only, used when the dataset's tiePolicy is 'keep'.
 */
import { Rng, type SplitName } from '@userpref/core';
import { FORMAT_NAME, type SplitIndex, type StoredComparison } from './store';

export type SplitProtocol = 'upstream' | 'by-comparison' | 'by-user';
export const SPLIT_PROTOCOLS: readonly SplitProtocol[] = ['upstream', 'by-comparison', 'by-user'];
export type ReferenceSource = 'train' | 'train+same-split';
export const REFERENCE_SOURCES: readonly ReferenceSource[] = ['train', 'train+same-split'];

/** The reference source a protocol uses when none is asked for. */
export function defaultReferences(protocol: SplitProtocol): ReferenceSource {
  return protocol === 'by-comparison' ? 'train' : 'train+same-split';
}

export interface SplitOptions {
  protocol: SplitProtocol;
  seed: number;
  /** Share of comparisons (by-comparison) or of users (by-user) held out. Unused by upstream. */
  validationFraction: number;
  testFraction: number;
  /** Default: defaultReferences(protocol). */
  references?: ReferenceSource;
  /** upstream: each comparison's split (same length as the comparisons). */
  upstream?: ReadonlyArray<SplitName | null>;
}

/** A split file as the import writes it: the pools' source is recorded. */
export type ImportedSplitIndex = SplitIndex & { readonly references: ReferenceSource };

export interface BuiltSplits {
  readonly splits: Record<SplitName, ImportedSplitIndex>;
  /** Ties that could not be used (a training user's ties under by-user / upstream). */
  readonly unusedTies: number;
  /** The split each comparison ended in (as a target or a reference), null if unused. */
  readonly assignment: ReadonlyArray<SplitName | null>;
  readonly references: ReferenceSource;
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
  const references = opts.references ?? defaultReferences(opts.protocol);
  if (opts.protocol !== 'upstream' && !(fv >= 0 && ft >= 0 && fv + ft < 1)) throw new Error(`split fractions must be >= 0 and sum to < 1 (validation ${fv}, test ${ft})`);
  if (opts.protocol === 'by-user' && references === 'train') {
    throw new Error(`--references train does not fit --split-protocol by-user: a validation or test user has no training comparisons (use train+same-split)`);
  }
  if (opts.protocol === 'upstream' && opts.upstream?.length !== comparisons.length) throw new Error('internal: upstream splits need one split per comparison');
  const out: Record<SplitName, { pools: number[][]; examples: Array<[number, number]>; users: Set<string> }> = {
    train: { pools: [], examples: [], users: new Set() },
    validation: { pools: [], examples: [], users: new Set() },
    test: { pools: [], examples: [], users: new Set() },
  };
  const byUser = groupByUser(comparisons);
  const assignment: Array<SplitName | null> = new Array(comparisons.length).fill(null);
  let unusedTies = 0;
  const isTie = (i: number) => comparisons[i].label0 !== 0 && comparisons[i].label0 !== 1;

  /** One user's comparisons, already divided into splits: pools and examples. */
  const place = (user: string, parts: Record<SplitName, number[]>) => {
    const trainRefs = parts.train.filter((i) => !isTie(i));
    for (const split of ['train', 'validation', 'test'] as const) {
      const targets = split === 'train' ? trainRefs : parts[split];
      unusedTies += parts[split].length - targets.length;
      for (const i of targets) assignment[i] = split;
      if (!targets.length) continue;
      // One pool per user and split, shared by all of the user's examples of that split.
      const pool = split === 'train' || references === 'train' ? trainRefs : [...trainRefs, ...parts[split].filter((i) => !isTie(i))];
      const s = out[split];
      const at = s.pools.length;
      s.pools.push(pool);
      s.users.add(user);
      for (const t of targets) s.examples.push([t, at]);
    }
    for (const i of trainRefs) assignment[i] = 'train';
  };

  if (opts.protocol === 'upstream') {
    for (const [user, list] of byUser) {
      const parts: Record<SplitName, number[]> = { train: [], validation: [], test: [] };
      for (const i of list) {
        const s = opts.upstream![i];
        if (!s) throw new Error(`internal: comparison ${i} (${comparisons[i].source}) has no upstream split`);
        parts[s].push(i);
      }
      place(user, parts);
    }
  } else if (opts.protocol === 'by-comparison') {
    const rng = Rng.stream(opts.seed, 'split/by-comparison');
    for (const [user, list] of byUser) {
      const parts: Record<SplitName, number[]> = { train: [], validation: [], test: [] };
      for (const i of list) {
        const u = rng.uniform();
        if (isTie(i)) parts[u < ft / (ft + fv || 1) ? 'test' : 'validation'].push(i);
        else parts[u < ft ? 'test' : u < ft + fv ? 'validation' : 'train'].push(i);
      }
      place(user, parts);
    }
  } else {
    const rng = Rng.stream(opts.seed, 'split/by-user');
    const users = rng.shuffle([...byUser.keys()]);
    const nTest = Math.round(users.length * ft);
    const nVal = Math.round(users.length * fv);
    users.forEach((user, k) => {
      const split: SplitName = k < nTest ? 'test' : k < nTest + nVal ? 'validation' : 'train';
      const list = byUser.get(user)!;
      const targets = split === 'train' ? list.filter((i) => !isTie(i)) : list;
      unusedTies += list.length - targets.length;
      if (!targets.length) return;
      for (const i of targets) assignment[i] = split;
      const s = out[split];
      const pool = s.pools.length;
      s.pools.push(list.filter((i) => !isTie(i)));
      s.users.add(user);
      for (const t of targets) s.examples.push([t, pool]);
    });
  }
  const make = (split: SplitName): ImportedSplitIndex => ({
    format: FORMAT_NAME,
    split,
    protocol: opts.protocol,
    references,
    referenceSelection: 'sample',
    users: out[split].users.size,
    pools: out[split].pools,
    examples: out[split].examples,
  });
  return { splits: { train: make('train'), validation: make('validation'), test: make('test') }, unusedTies, assignment, references };
}
