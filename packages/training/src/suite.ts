/**
 * The evaluation suite (SPEC §7): each configured model (adapter +/- preference tokens) or
 * zero-shot scorer scored on one split, with accuracy and its 95% bootstrap interval, the per-user
 * distribution, ROC AUC, accuracy against the number of reference pairs, baselines on the same
 * comparisons, and paired differences between rows (same comparisons: paired bootstrap and exact
 * sign test). Rows are grouped as the paper's Table 1: zero-shot scorers, in-context, trained.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng, type Backbone, type Logger, type PreferenceDataset, type PreferenceExample, type PreferenceScore, type PreferenceSplit, type PreferenceTokens, type SplitName, type ZeroShotScorer } from '@userpref/core';
import { scoreSplit, truncateReferences, type ScoreOptions } from './evaluate';
import { pairedAccuracy, pairwiseAccuracy, perUserAccuracy, rocAuc, type PairedSummary, type TiePolicy } from './metrics';

/**
 * Table 1's groups: zero-shot scorers (no history), in-context (the base model reading the
 * references, no adapter), trained (an adapter and/or preference tokens); then the baselines.
 */
export type RowGroup = 'zero-shot' | 'in-context' | 'trained' | 'baseline';
export const ROW_GROUPS: ReadonlyArray<{ group: RowGroup; title: string }> = [
  { group: 'zero-shot', title: 'zero-shot scorers (no references)' },
  { group: 'in-context', title: 'in-context (references, no adapter)' },
  { group: 'trained', title: 'trained' },
  { group: 'baseline', title: 'baselines' },
];

export interface SuiteModel {
  label: string;
  /**
   * Score with this zero-shot scorer (a name in SuiteComponents.scorers): score(prompt, image) of
   * each candidate, no references. Excludes adapter, tokens, referencePairs and curve.
   */
  scorer?: string;
  /** Table 1 group; default: zero-shot for a scorer, trained with an adapter or tokens, else in-context. */
  group?: RowGroup;
  adapter?: string;
  tokens?: string;
  /** Score with only this many reference pairs (0 = the non-personalised setting). */
  referencePairs?: number;
  /** Draw the accuracy-vs-reference-pairs curve for this model (default: the first that is not a scorer). */
  curve?: boolean;
}

export interface SuiteOptions {
  split: SplitName;
  batchSize: number;
  limit?: number;
  tiePolicy: TiePolicy;
  bootstrapSamples: number;
  /** Reference counts for the accuracy curve of the curve model (empty = none). */
  refCounts: number[];
  models: SuiteModel[];
  baselines: Array<'random' | 'nearest-reference' | 'bayes-optimal'>;
  /** Pairs of row labels [a, b] to compare on the same comparisons (a minus b). Default: the first
   *  model against every other row that has per-comparison scores; [] for none. */
  paired?: Array<[string, string]>;
  seed: number;
}

export interface PairedResult extends PairedSummary {
  a: string;
  b: string;
}

export interface RowResult {
  label: string;
  kind: 'model' | 'scorer' | 'baseline';
  group: RowGroup;
  accuracy: number;
  ci95: [number, number];
  n: number;
  auc?: number;
  perUser?: { users: number; mean: number; quantiles: Record<string, number> };
  note?: string;
}

export interface SuiteReport {
  split: SplitName;
  comparisons: number;
  users: number;
  tiePolicy: TiePolicy;
  rows: RowResult[];
  /** The model the curve is drawn for (SuiteModel.curve, else the first). */
  curveModel?: string;
  /** Its accuracy against the number of reference pairs. */
  curve: Array<{ referencePairs: number; accuracy: number; ci95: [number, number] }>;
  /** Paired differences (SuiteOptions.paired). */
  paired: PairedResult[];
  /** Rows that were asked for but could not be computed, and why (e.g. bayes-optimal on data
   *  without hidden utilities): a report never drops a row without saying so. */
  leftOut: Array<{ label: string; reason: string }>;
  createdAt: string;
}

export interface SuiteComponents {
  /** Needed by model rows and the nearest-reference baseline; not by scorer rows. */
  backbone?: Backbone;
  dataset: PreferenceDataset;
  tokens?: PreferenceTokens;
  /** Zero-shot scorers by name (core's Assembly.scorers); the suite initialises those it uses. */
  scorers?: ReadonlyMap<string, ZeroShotScorer>;
  logger: Logger;
}

/** The Table 1 group of a model row. */
export function groupOf(m: SuiteModel): RowGroup {
  return m.group ?? (m.scorer !== undefined ? 'zero-shot' : m.adapter || m.tokens ? 'trained' : 'in-context');
}

export async function runSuite(c: SuiteComponents, o: SuiteOptions): Promise<SuiteReport> {
  const split = c.dataset.split(o.split);
  const total = Math.min(split.size, o.limit ?? Infinity);
  if (total === 0) throw new Error(`the ${o.split} split is empty`);
  const pairs = pairsToCompare(o);
  const scorers = await scorersOf(c, o);
  const curveIndex = curveModelIndex(o);
  const table = new SuiteTable(c, o, split, total);
  let curve: SuiteReport['curve'] = [];
  let loadedBy: string | undefined;
  for (const [i, m] of o.models.entries()) {
    if (m.scorer !== undefined) {
      await table.scoreScorerRow(m, scorers.get(m.scorer)!);
      continue;
    }
    const backbone = await attachModel(c, m, loadedBy);
    if (m.adapter) loadedBy = m.label;
    await table.scoreModelRow(m, backbone);
    if (i === curveIndex && o.refCounts.length) curve = await referenceCurve(backbone, split, total, o, c.logger, { referencePairs: m.referencePairs, scores: table.scored.get(m.label)! });
  }
  c.backbone?.setPrefixProvider(null);
  for (const s of scorers.values()) await s.dispose?.();
  const leftOut = await table.scoreBaselines();
  const paired = pairedDifferences(pairs, table.scored, o, c.logger);
  return { split: o.split, comparisons: total, users: table.users, tiePolicy: o.tiePolicy, rows: table.rows, curveModel: o.models[curveIndex]?.label, curve, paired, leftOut, createdAt: new Date().toISOString() };
}

/** The rows of the report as they are scored, with each row's per-comparison scores for pairing. */
class SuiteTable {
  readonly rows: RowResult[] = [];
  readonly scored = new Map<string, PreferenceScore[]>();
  /** Users among the comparisons, as the last model or scorer row saw them. */
  users = 0;
  private examples?: PreferenceExample[];

  constructor(
    private readonly c: SuiteComponents,
    private readonly o: SuiteOptions,
    private readonly split: PreferenceSplit,
    private readonly total: number,
  ) {}

  /** A scorer row: score(prompt, image) of each candidate, no references. */
  async scoreScorerRow(m: SuiteModel, scorer: ZeroShotScorer): Promise<void> {
    const scores = await scoreWithScorer(scorer, await this.loadExamples(), this.progress(m.label));
    this.users = new Set(scores.map((s) => s.userId)).size;
    this.add(m.label, 'scorer', scores, `zero-shot scorer '${m.scorer}'`, groupOf(m));
  }

  /** A model row: the backbone as attachModel set it up, reading `referencePairs` references or all. */
  async scoreModelRow(m: SuiteModel, backbone: Backbone): Promise<void> {
    const o = this.o;
    const scores = await scoreSplit(backbone, this.split, { batchSize: o.batchSize, limit: this.total, referencePairs: m.referencePairs, onProgress: this.progress(m.label) });
    this.users = new Set(scores.map((s) => s.userId)).size;
    this.add(m.label, 'model', scores, m.referencePairs !== undefined ? `${m.referencePairs} reference pairs` : undefined, groupOf(m));
  }

  /** The baseline rows; those that cannot be computed are warned about, and left out with the reason. */
  async scoreBaselines(): Promise<SuiteReport['leftOut']> {
    const { c, o } = this;
    const leftOut: SuiteReport['leftOut'] = [];
    for (const b of o.baselines) {
      if (b === 'random') {
        const rng = Rng.stream(o.seed, 'random-baseline');
        const scores = (await this.loadExamples()).map((ex) => ({ userId: ex.userId, label0: ex.target.label0, score0: rng.uniform(), score1: rng.uniform() }));
        this.add('random', 'baseline', scores);
      } else if (b === 'nearest-reference') {
        if (!c.backbone?.imageEmbeddings) {
          c.logger.warn(`nearest-reference baseline skipped: ${c.backbone ? 'the backbone has no imageEmbeddings()' : 'no backbone is configured'}`);
          continue;
        }
        const scores = await nearestReferenceScores(c.backbone, await this.loadExamples(), o.batchSize);
        this.add('nearest-reference', 'baseline', scores, 'similarity to liked minus disliked references in the frozen image-feature space');
      } else if (b === 'bayes-optimal') {
        const st = c.dataset.stats(o.split);
        if (st.bayesOptimalAccuracy !== undefined) this.rows.push({ label: 'bayes-optimal', kind: 'baseline', group: 'baseline', accuracy: st.bayesOptimalAccuracy, ci95: [NaN, NaN], n: st.examples, note: 'from the hidden utilities of the synthetic data' });
        else {
          const reason = `the ${o.split} split's comparisons carry no hidden utilities (the true preference probabilities that only synthetic data such as synthpick records), so there is no Bayes-optimal accuracy`;
          leftOut.push({ label: 'bayes-optimal', reason });
          c.logger.warn(`bayes-optimal baseline left out: ${reason}`);
        }
      }
    }
    return leftOut;
  }

  /** A row from per-comparison scores: accuracy with its interval, ROC AUC and the per-user distribution. */
  private add(label: string, kind: RowResult['kind'], scores: PreferenceScore[], note?: string, group: RowGroup = 'baseline'): void {
    const o = this.o;
    const acc = pairwiseAccuracy(scores, o.tiePolicy, { samples: o.bootstrapSamples, seed: o.seed });
    const pu = perUserAccuracy(scores, o.tiePolicy);
    this.scored.set(label, scores);
    this.rows.push({ label, kind, group, accuracy: acc.accuracy, ci95: acc.ci95, n: acc.n, auc: rocAuc(scores), perUser: { users: pu.users, mean: pu.mean, quantiles: pu.quantiles }, note });
  }

  /** The split's first `total` examples, read once for the scorer rows and the baselines. */
  private async loadExamples(): Promise<PreferenceExample[]> {
    if (!this.examples) {
      this.examples = [];
      for (let i = 0; i < this.total; i++) this.examples.push(await this.split.get(i));
    }
    return this.examples;
  }

  /** Logs a row's scoring about five times. */
  private progress(label: string) {
    return (done: number, all: number) => {
      if (done === all || done % Math.max(1, Math.floor(all / 5)) < this.o.batchSize) this.c.logger.info(`scoring ${label}`, { done, total: all });
    };
  }
}

/** The model that draws the reference-pairs curve: the one marked, else the first that is not a scorer (-1: none). */
function curveModelIndex(o: SuiteOptions): number {
  const marked = o.models.filter((m) => m.curve);
  if (marked.length > 1) throw new Error(`only one model can draw the reference-pairs curve; marked: ${marked.map((m) => `'${m.label}'`).join(', ')}`);
  return marked.length ? o.models.indexOf(marked[0]) : o.models.findIndex((m) => m.scorer === undefined);
}

/**
 * Sets the backbone up for a model row: its adapter loaded, its preference tokens attached (or
 * none). `loadedBy` is the earlier row whose adapter is loaded: the Backbone contract loads
 * adapters but cannot unload one, so a row without an adapter cannot follow it.
 */
async function attachModel(c: SuiteComponents, m: SuiteModel, loadedBy: string | undefined): Promise<Backbone> {
  if (!c.backbone) throw new Error(`model '${m.label}' needs a backbone (plugins.backbone); only scorer rows run without one`);
  if (m.adapter) await c.backbone.loadAdapter(m.adapter);
  else if (loadedBy !== undefined) {
    throw new Error(`model '${m.label}' has no adapter but comes after '${loadedBy}', whose adapter would stay loaded: list models without an adapter first`);
  }
  if (m.tokens) {
    if (!c.tokens) throw new Error(`model '${m.label}' names preference tokens but plugins.tokens is not configured`);
    c.tokens.build(c.backbone.textHiddenSize);
    await c.tokens.load(m.tokens);
    c.backbone.setPrefixProvider(c.tokens);
  } else c.backbone.setPrefixProvider(null);
  return c.backbone;
}

/** Accuracy against the number of reference pairs each comparison reads (SPEC §7). */
async function referenceCurve(backbone: Backbone, split: PreferenceSplit, total: number, o: SuiteOptions, logger: Logger, known: ScoreOptions['known']): Promise<SuiteReport['curve']> {
  const curve: SuiteReport['curve'] = [];
  for (const k of o.refCounts) {
    // The model's own row already scored each comparison with its whole history: reused where k reads the same.
    const s = await scoreSplit(backbone, split, { batchSize: o.batchSize, limit: total, referencePairs: k, known });
    const a = pairwiseAccuracy(s, o.tiePolicy, { samples: o.bootstrapSamples, seed: o.seed });
    curve.push({ referencePairs: k, accuracy: a.accuracy, ci95: a.ci95 });
    logger.info(`accuracy with ${k} reference pairs`, { accuracy: a.accuracy });
  }
  return curve;
}

/** Paired differences between rows on the same comparisons; a pair with an unscored row is warned about and skipped. */
function pairedDifferences(pairs: Array<[string, string]>, scored: ReadonlyMap<string, PreferenceScore[]>, o: SuiteOptions, logger: Logger): PairedResult[] {
  const paired: PairedResult[] = [];
  for (const [a, b] of pairs) {
    const sa = scored.get(a);
    const sb = scored.get(b);
    if (!sa || !sb) {
      logger.warn(`paired comparison ${a} - ${b} skipped: ${!sa ? a : b} was not scored`);
      continue;
    }
    paired.push({ a, b, ...pairedAccuracy(sa, sb, o.tiePolicy, { samples: o.bootstrapSamples, seed: o.seed }) });
  }
  return paired;
}

/** The scorers the scorer rows name, checked and initialised before anything is scored. */
async function scorersOf(c: SuiteComponents, o: SuiteOptions): Promise<Map<string, ZeroShotScorer>> {
  const used = new Map<string, ZeroShotScorer>();
  for (const m of o.models) {
    if (m.scorer === undefined) continue;
    const extra = (['adapter', 'tokens', 'referencePairs', 'curve'] as const).filter((k) => m[k] !== undefined && m[k] !== false);
    if (extra.length) throw new Error(`model '${m.label}' is a scorer row ('${m.scorer}'): it takes no ${extra.join(', ')} (a scorer reads no references and loads no adapter)`);
    const s = c.scorers?.get(m.scorer);
    if (!s) throw new Error(`model '${m.label}' names scorer '${m.scorer}', which plugins.scorers does not configure (configured: ${[...(c.scorers?.keys() ?? [])].join(', ') || 'none'})`);
    used.set(m.scorer, s);
  }
  for (const s of used.values()) await s.init();
  return used;
}

/** A scorer row's scores: score(prompt, image0) and score(prompt, image1) of every comparison. */
export async function scoreWithScorer(scorer: ZeroShotScorer, examples: readonly PreferenceExample[], onProgress?: (done: number, total: number) => void): Promise<PreferenceScore[]> {
  const out: PreferenceScore[] = [];
  for (const ex of examples) {
    const s = await scorer.score(ex.target.prompt, [ex.target.image0, ex.target.image1]);
    if (s.length !== 2 || !s.every(Number.isFinite)) throw new Error(`scorer returned ${JSON.stringify(s)} for 2 images of user ${ex.userId}: expected 2 finite scores`);
    out.push({ userId: ex.userId, label0: ex.target.label0, score0: s[0], score1: s[1] });
    onProgress?.(out.length, examples.length);
  }
  return out;
}

/** The [a, b] label pairs to compare, checked before anything is scored. */
function pairsToCompare(o: SuiteOptions): Array<[string, string]> {
  const labels = o.models.map((m) => m.label);
  const comparable = [...labels, ...o.baselines.filter((b) => b !== 'bayes-optimal')];
  if (o.paired === undefined) return comparable.slice(1).map((b) => [comparable[0], b]);
  for (const pair of o.paired) {
    for (const label of pair) {
      if (label === 'bayes-optimal') throw new Error(`paired comparison ${pair[0]} - ${pair[1]}: bayes-optimal has no per-comparison scores to pair`);
      if (!comparable.includes(label)) throw new Error(`paired comparison ${pair[0]} - ${pair[1]}: no row '${label}' (rows with scores: ${comparable.join(', ')})`);
      if (labels.indexOf(label) !== labels.lastIndexOf(label)) throw new Error(`paired comparison ${pair[0]} - ${pair[1]}: more than one model is labelled '${label}'`);
    }
    if (pair[0] === pair[1]) throw new Error(`paired comparison ${pair[0]} - ${pair[1]}: a row against itself`);
  }
  return o.paired;
}

/** score(c) = cos(c, mean liked refs) - cos(c, mean disliked refs): ViPer's idea without training. */
export async function nearestReferenceScores(backbone: Backbone, examples: readonly PreferenceExample[], batchSize: number): Promise<PreferenceScore[]> {
  const out: PreferenceScore[] = [];
  for (let s = 0; s < examples.length; s += batchSize) {
    for (const ex of examples.slice(s, s + batchSize)) {
      const imgs = [ex.target.image0, ex.target.image1, ...ex.references.map((r) => r.liked), ...ex.references.map((r) => r.disliked)];
      const emb = await backbone.imageEmbeddings!(imgs);
      const k = ex.references.length;
      const [s0, s1] = tf.tidy(() => {
        const unit = tf.div(emb, tf.add(tf.norm(emb, 'euclidean', 1, true), 1e-12));
        const cand = tf.slice(unit, [0, 0], [2, -1]);
        if (k === 0) return [0, 0];
        const liked = tf.mean(tf.slice(unit, [2, 0], [k, -1]), 0, true);
        const disliked = tf.mean(tf.slice(unit, [2 + k, 0], [k, -1]), 0, true);
        const cos = (a: tf.Tensor, b: tf.Tensor) => tf.div(tf.sum(tf.mul(a, b), 1), tf.add(tf.mul(tf.norm(a, 'euclidean', 1), tf.norm(b, 'euclidean', 1)), 1e-12));
        const v = tf.sub(cos(cand, liked), cos(cand, disliked)).dataSync();
        return [v[0], v[1]];
      });
      emb.dispose();
      out.push({ userId: ex.userId, label0: ex.target.label0, score0: s0, score1: s1 });
    }
  }
  return out;
}

export { truncateReferences };
