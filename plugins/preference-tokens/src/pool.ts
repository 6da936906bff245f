/**
 * The prompt pool of the paper's earlier code (SPEC §5), the mechanism behind "group-specific"
 * preference tokens: a pool of prompts, each with a key; the mean of a user's reference-history
 * embeddings is the query (option `query: 'history-mean'`, the original); the topK prompts whose
 * keys are most cosine-similar to the query are
 * prepended (concatenated along the token axis); a pull constraint
 *     coefficient * mean over the batch of sum over selected prompts of (1 - cos(query, key))
 * draws the selected keys toward the queries that chose them. The original crashed unless the
 * coefficient was 0; here it is an ordinary auxiliary loss for any value.
 *
 * The original's query cannot tell users apart by taste: each reference pair adds one liked and
 * one disliked image to the history mean whichever was chosen. `query: 'preference-direction'`
 * takes the mean embedding of the liked reference images minus that of the disliked ones instead
 * (PrefixContext.preferenceDirection), so users who share a taste pick the same prompts and a
 * prompt is trained on the examples of one group of users.
 *
 * Plain k-means on such queries can leave a prompt starved (chosen by almost no one) while another
 * takes two groups. `reseatAfter` > 0 revives it as k-means and VQ codebooks revive dead centres:
 * during training (PrefixContext.training), a prompt that has been seated for reseatAfter
 * examples and was chosen for less than reseatBelow of its even share gets its key moved onto the
 * query of the current batch that is served worst (lowest cosine with the key it picks), at the
 * pool's mean key length. The usage counts are saved with the tokens, so a resumed run re-seats
 * exactly as an uninterrupted one. Evaluation never re-seats.
 *
 * Small random keys leave the first choices to chance, and the pull then settles into whatever
 * split those made (on camps-split-xl seed 44: one prompt for one camp, three for the other).
 * `seedKeysAfter` > 0 seats all keys from data once: the first that many training queries are
 * kept, then the keys move onto the centres of a spherical k-means of them (kmeans.ts), as VQ
 * codebooks are initialised. The kept queries are saved with the tokens until then, so a resumed
 * run seats exactly as an uninterrupted one.
 *
 * Top-k is a discrete choice made outside the gradient: prompts that were not selected get
 * exactly zero gradient; the selected ones get the language-model gradient and, through their
 * keys' cosine, the pull term's.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Logger, PreferenceTokens, PrefixContext } from '@userpref/core';
import { Rng } from '@userpref/core';
import { initialValues } from './init';
import { sphericalKMeans } from './kmeans';
import { POOL_DEFAULTS, type KeyMode, type PoolOptions, type PoolQuery } from './options';
import { contextBatch } from './prompt';
import { FORMAT, FORMAT_VERSION, expectTensor, readTokens, saveTokens } from './storage';

export { POOL_DEFAULTS };
export type { KeyMode, PoolOptions, PoolQuery };

/** The tensor holding the training queries kept for seating the keys (seedKeysAfter), until they are seated. */
const SEED_QUERIES = 'key_seed_queries';

/** Smallest squared norm used when normalising (a zero vector normalises to zero, not NaN). */
const NORM_EPS = 1e-12;

let instances = 0;

/** Training-time usage of the prompts: examples seen, and per prompt since when it sits and how often it was chosen since. */
export interface SeatState {
  examples: number;
  seats: Array<{ since: number; chosen: number }>;
}

function freshSeats(poolSize: number): SeatState {
  return { examples: 0, seats: Array.from({ length: poolSize }, () => ({ since: 0, chosen: 0 })) };
}

function isSeatState(x: unknown, poolSize: number): x is SeatState {
  const s = x as SeatState;
  const count = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
  return !!s && count(s.examples) && Array.isArray(s.seats) && s.seats.length === poolSize && s.seats.every((e) => count(e?.since) && count(e?.chosen) && e.since <= s.examples);
}

/** Rows of x scaled to unit length: x * rsqrt(max(|x|^2, eps)). */
function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.maximum(tf.sum(tf.square(x), 1, true), NORM_EPS))) as tf.Tensor2D;
}

/**
 * Indices of the k largest entries of each row of a [rows, cols] matrix, best first; ties go to
 * the lower index so the choice is deterministic.
 */
export function topKIndices(values: ArrayLike<number>, rows: number, cols: number, k: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const idx = [...Array(cols).keys()];
    idx.sort((a, b) => values[r * cols + b] - values[r * cols + a] || a - b);
    out.push(idx.slice(0, k));
  }
  return out;
}

export class PromptPoolTokens implements PreferenceTokens {
  readonly name = 'prompt-pool';
  private readonly options: PoolOptions;
  private readonly id = ++instances;
  private pool: tf.Variable<tf.Rank.R3> | null = null;
  private keyVar: tf.Variable<tf.Rank.R2> | null = null;
  private selection: number[][] = [];
  private seats: SeatState;
  /** Unit training queries kept for seating the keys (seedKeysAfter), and whether that is done. */
  private seedQueries: Float32Array[] = [];
  private keysSeeded = false;

  constructor(
    options: Partial<PoolOptions>,
    private readonly seed: number,
    private readonly logger?: Logger,
  ) {
    const o = { ...POOL_DEFAULTS, ...options };
    const where = "preference tokens 'prompt-pool'";
    for (const key of ['length', 'poolSize', 'topK'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`${where}: ${key} must be an integer >= 1, got ${o[key]}`);
    }
    if (o.topK > o.poolSize) throw new Error(`${where}: topK ${o.topK} is larger than the pool (${o.poolSize} prompts)`);
    if (!(o.pullCoefficient >= 0) || !Number.isFinite(o.pullCoefficient)) throw new Error(`${where}: pullCoefficient must be a finite number >= 0, got ${o.pullCoefficient}`);
    if (o.keys !== 'prompt-mean' && o.keys !== 'learnable') throw new Error(`${where}: keys must be 'prompt-mean' or 'learnable', got '${String(o.keys)}'`);
    if (!Number.isInteger(o.reseatAfter) || o.reseatAfter < 0) throw new Error(`${where}: reseatAfter must be an integer >= 0, got ${o.reseatAfter}`);
    if (!(o.reseatBelow >= 0 && o.reseatBelow <= 1)) throw new Error(`${where}: reseatBelow must be in [0, 1], got ${o.reseatBelow}`);
    if (o.reseatAfter > 0 && o.keys !== 'learnable') throw new Error(`${where}: reseatAfter needs keys 'learnable' (a 'prompt-mean' key is its prompt's tokens)`);
    if (!Number.isInteger(o.seedKeysAfter) || o.seedKeysAfter < 0) throw new Error(`${where}: seedKeysAfter must be an integer >= 0, got ${o.seedKeysAfter}`);
    if (o.seedKeysAfter > 0 && o.keys !== 'learnable') throw new Error(`${where}: seedKeysAfter needs keys 'learnable' (a 'prompt-mean' key is its prompt's tokens)`);
    if (o.seedKeysAfter > 0 && o.seedKeysAfter < o.poolSize) throw new Error(`${where}: seedKeysAfter ${o.seedKeysAfter} queries cannot seat ${o.poolSize} keys (use at least poolSize)`);
    this.options = o;
    this.seats = freshSeats(o.poolSize);
  }

  /** Prepended length: topK prompts of `length` tokens each. */
  get length(): number {
    return this.options.topK * this.options.length;
  }

  get hiddenSize(): number | null {
    return this.pool ? this.pool.shape[2] : null;
  }

  /** Training-time usage of each prompt (what starved-prompt re-seating judges by); a copy. */
  usage(): SeatState {
    return { examples: this.seats.examples, seats: this.seats.seats.map((e) => ({ ...e })) };
  }

  /** The prompt indices chosen for each example of the last `prefix` call, best match first. */
  lastSelection(): number[][] {
    return this.selection.map((r) => [...r]);
  }

  private where(): string {
    return "preference tokens 'prompt-pool'";
  }

  private poolShape(hiddenSize: number): [number, number, number] {
    return [this.options.poolSize, this.options.length, hiddenSize];
  }

  private create(poolValues: Float32Array, keyValues: Float32Array | null, hiddenSize: number): void {
    this.dispose();
    this.pool = tf.tidy(() => tf.variable(tf.tensor3d(poolValues, this.poolShape(hiddenSize)), true, `preference_tokens.pool.${this.id}`));
    if (keyValues) {
      this.keyVar = tf.tidy(() => tf.variable(tf.tensor2d(keyValues, [this.options.poolSize, hiddenSize]), true, `preference_tokens.keys.${this.id}`));
    }
  }

  build(hiddenSize: number): void {
    if (!Number.isInteger(hiddenSize) || hiddenSize < 1) throw new Error(`${this.where()}: hidden size must be an integer >= 1, got ${hiddenSize}`);
    if (this.pool) {
      if (this.pool.shape[2] !== hiddenSize) {
        throw new Error(`${this.where()}: pool has shape [${this.pool.shape.join(', ')}] but the text model's hidden size is ${hiddenSize}`);
      }
      return;
    }
    const { poolSize, length } = this.options;
    const poolValues = initialValues(poolSize * length * hiddenSize, this.options, this.seed, 'preference-tokens/prompt-pool/prompts');
    const keyInit = this.options.keyInit === 'same' ? this.options : { init: this.options.keyInit, std: this.options.std };
    const keyValues = this.options.keys === 'learnable' ? initialValues(poolSize * hiddenSize, keyInit, this.seed, 'preference-tokens/prompt-pool/keys') : null;
    this.create(poolValues, keyValues, hiddenSize);
    this.seats = freshSeats(poolSize);
    this.seedQueries = [];
    this.keysSeeded = false;
    this.logger?.info('preference tokens built', {
      kind: 'prompt-pool',
      poolSize,
      length,
      topK: this.options.topK,
      keys: this.options.keys,
      hiddenSize,
      init: this.options.init,
      params: poolValues.length + (keyValues?.length ?? 0),
    });
  }

  private built(): tf.Variable<tf.Rank.R3> {
    if (!this.pool) throw new Error(`${this.where()}: call build(hiddenSize) or load(path) first`);
    return this.pool;
  }

  variables(): tf.Variable[] {
    const pool = this.built();
    return this.keyVar ? [pool, this.keyVar] : [pool];
  }

  prefix(context: PrefixContext): { embeddings: tf.Tensor3D; auxLoss: tf.Scalar } {
    const pool = this.built();
    const [poolSize, length, hidden] = pool.shape;
    const { topK, pullCoefficient } = this.options;
    const batch = contextBatch(this.where(), context, hidden);
    if (this.options.query === 'preference-direction') {
      const q = context.preferenceDirection;
      if (!q || q.rank !== 2 || q.shape[0] !== batch || q.shape[1] !== hidden) {
        throw new Error(`${this.where()}: query 'preference-direction' needs PrefixContext.preferenceDirection [${batch}, ${hidden}] from the backbone, got [${q?.shape ?? 'none'}]`);
      }
    }
    const query = this.options.query === 'preference-direction' ? context.preferenceDirection : context.historyMean;
    const reseating = context.training === true && this.options.reseatAfter > 0;
    const seeding = context.training === true && this.options.seedKeysAfter > 0 && !this.keysSeeded;
    return tf.tidy(() => {
      const unitQuery = l2Normalize(query);
      if (seeding) this.collectSeedQueries(unitQuery);
      // [batch, poolSize]; keys: the learnable ones, or each prompt's mean over its tokens.
      const cosine = () => tf.matMul(unitQuery, tf.transpose(l2Normalize(this.keyVar ?? (tf.mean(pool, 1) as tf.Tensor2D)))) as tf.Tensor2D;
      let cos = cosine();
      if (reseating && this.reseatStarved(query, unitQuery, cos)) cos = cosine();
      const chosen = topKIndices(cos.dataSync(), batch, poolSize, topK);
      const selected = tf.gather(pool, chosen.flat(), 0); // [batch * topK, length, d]
      const embeddings = tf.reshape(selected, [batch, topK * length, hidden]) as tf.Tensor3D;
      const mask = new Float32Array(batch * poolSize);
      chosen.forEach((row, b) => row.forEach((j) => (mask[b * poolSize + j] = 1)));
      const pull = tf.mul(tf.div(tf.sum(tf.mul(tf.tensor2d(mask, [batch, poolSize]), tf.sub(1, cos))), batch), pullCoefficient) as tf.Scalar;
      this.selection = chosen;
      if (reseating) {
        this.seats.examples += batch;
        for (const row of chosen) for (const j of row) this.seats.seats[j].chosen++;
      }
      return { embeddings, auxLoss: pull };
    });
  }

  /** Unit rows scaled to the pool's mean key length: where seating and re-seating put a key. */
  private atMeanKeyLength(unitRows: tf.Tensor2D): tf.Tensor2D {
    return tf.mul(unitRows, tf.mean(tf.norm(this.keyVar!, 'euclidean', 1))) as tf.Tensor2D;
  }

  /**
   * Keeps this batch's non-zero unit queries until seedKeysAfter are in; then seats every key on
   * a spherical k-means centre of them at the pool's mean key length, and starts the usage counts
   * afresh (the prompts now have new keys).
   */
  private collectSeedQueries(unitQuery: tf.Tensor2D): void {
    const { poolSize, seedKeysAfter } = this.options;
    const [batch, hidden] = unitQuery.shape;
    const rows = unitQuery.dataSync();
    for (let b = 0; b < batch && this.seedQueries.length < seedKeysAfter; b++) {
      const row = rows.slice(b * hidden, (b + 1) * hidden) as Float32Array;
      if (row.some((x) => x !== 0)) this.seedQueries.push(row);
    }
    if (this.seedQueries.length < seedKeysAfter) return;
    const rng = Rng.stream(this.seed, 'preference-tokens/prompt-pool/key-seating');
    const { centres, assignment } = sphericalKMeans(this.seedQueries, poolSize, rng, { restarts: 8, iterations: 50 });
    const keyVar = this.keyVar!;
    const flat = new Float32Array(poolSize * hidden);
    centres.forEach((c, j) => flat.set(c, j * hidden));
    keyVar.assign(this.atMeanKeyLength(tf.tensor2d(flat, [poolSize, hidden])));
    const sizes = centres.map((_, j) => assignment.filter((a) => a === j).length);
    this.logger?.info('prompt pool: keys seated by spherical k-means', { queries: this.seedQueries.length, clusterSizes: sizes });
    this.seedQueries = [];
    this.keysSeeded = true;
    this.seats = { examples: this.seats.examples, seats: this.seats.seats.map(() => ({ since: this.seats.examples, chosen: 0 })) };
  }

  /**
   * Moves the most starved prompt's key (if any prompt is starved; see reseatAfter) onto the
   * query, of this batch's [batch, hidden] queries, whose best key cosine (a row of `cos`) is
   * lowest; zero queries (no references) are not taken. True when a key moved.
   */
  private reseatStarved(query: tf.Tensor2D, unitQuery: tf.Tensor2D, cos: tf.Tensor2D): boolean {
    const { poolSize, topK, reseatAfter, reseatBelow } = this.options;
    let starved = -1;
    let worstShare = Infinity;
    this.seats.seats.forEach((seat, j) => {
      const seen = this.seats.examples - seat.since;
      if (seen < reseatAfter) return;
      const share = seat.chosen / ((seen * topK) / poolSize);
      if (share < reseatBelow && share < worstShare) {
        starved = j;
        worstShare = share;
      }
    });
    if (starved < 0) return false;
    const cosines = cos.dataSync();
    const queryNorms = tf.norm(query, 'euclidean', 1).dataSync();
    let worst = -1;
    let worstCos = Infinity;
    for (let b = 0; b < query.shape[0]; b++) {
      if (queryNorms[b] <= Math.sqrt(NORM_EPS)) continue;
      const best = Math.max(...cosines.subarray(b * poolSize, (b + 1) * poolSize));
      if (best < worstCos) {
        worst = b;
        worstCos = best;
      }
    }
    if (worst < 0) return false;
    const seat = this.seats.seats[starved];
    this.logger?.info('prompt pool: starved prompt re-seated', {
      prompt: starved,
      chosen: seat.chosen,
      examples: this.seats.examples - seat.since,
      share: +worstShare.toFixed(3),
      onQueryCosine: +worstCos.toFixed(3),
    });
    // The worst-served query's direction at the pool's mean key length.
    const keyVar = this.keyVar!;
    const seatRow = this.atMeanKeyLength(tf.slice(unitQuery, [worst, 0], [1, -1]));
    const isStarved = tf.tensor2d(Array.from({ length: poolSize }, (_, j) => [j === starved ? 1 : 0]), [poolSize, 1], 'bool');
    keyVar.assign(tf.where(isStarved, tf.broadcastTo(seatRow, keyVar.shape), keyVar) as tf.Tensor2D);
    this.seats.seats[starved] = { since: this.seats.examples, chosen: 0 };
    return true;
  }

  async save(dir: string): Promise<void> {
    const pool = this.built();
    const tensors = [{ name: 'pool', shape: [...pool.shape], data: (await pool.data()) as Float32Array }];
    if (this.keyVar) tensors.push({ name: 'keys', shape: [...this.keyVar.shape], data: (await this.keyVar.data()) as Float32Array });
    const { poolSize, topK, keys, keyInit, query, reseatAfter, reseatBelow, seedKeysAfter, pullCoefficient, init, std } = this.options;
    const pending = seedKeysAfter > 0 && !this.keysSeeded ? this.seedQueries : [];
    if (pending.length) {
      const data = new Float32Array(pending.length * pool.shape[2]);
      pending.forEach((q, i) => data.set(q, i * pool.shape[2]));
      tensors.push({ name: SEED_QUERIES, shape: [pending.length, pool.shape[2]], data });
    }
    await saveTokens(
      dir,
      {
        format: FORMAT,
        version: FORMAT_VERSION,
        kind: 'prompt-pool',
        length: this.options.length,
        hiddenSize: pool.shape[2],
        poolSize,
        topK,
        keys,
        keyInit,
        query,
        pullCoefficient,
        init,
        std,
        ...(reseatAfter > 0 && { reseatAfter, reseatBelow, usage: this.usage() }),
        ...(seedKeysAfter > 0 && { seedKeysAfter, keysSeeded: this.keysSeeded }),
      },
      tensors,
    );
  }

  async load(source: string): Promise<void> {
    const stored = await readTokens(source);
    if (!stored.config && stored.tensors.has('prompt') && !stored.tensors.has('pool')) {
      throw new Error(`${this.where()}: ${stored.source} holds a single prompt (like the paper's prompt_pool.pt), not a pool; load it with tokens 'prompt'`);
    }
    if (stored.config && stored.config.kind !== 'prompt-pool') {
      throw new Error(`${this.where()}: ${source} holds '${stored.config.kind}' tokens, not 'prompt-pool'`);
    }
    if (stored.config?.keys !== undefined && stored.config.keys !== this.options.keys) {
      throw new Error(`${this.where()}: ${source} was saved with keys '${String(stored.config.keys)}' but this run is configured with keys '${this.options.keys}'`);
    }
    // Files written before the option existed were picked by the history mean.
    const savedQuery = stored.config ? (stored.config.query ?? 'history-mean') : undefined;
    if (savedQuery !== undefined && savedQuery !== this.options.query) {
      throw new Error(`${this.where()}: ${source} was trained with query '${String(savedQuery)}' but this run is configured with query '${this.options.query}' (its prompts were chosen by the other)`);
    }
    if (stored.config?.topK !== undefined && stored.config.topK !== this.options.topK) {
      this.logger?.warn('prompt pool loaded with a different topK than it was trained with', { saved: stored.config.topK, configured: this.options.topK, source });
    }
    const hidden = this.pool ? this.pool.shape[2] : (stored.tensors.get('pool')?.shape[2] ?? 0);
    const poolT = expectTensor(stored, 'pool', this.poolShape(hidden), 'the configured poolSize x length x hidden size');
    const keysT = this.options.keys === 'learnable' ? expectTensor(stored, 'keys', [this.options.poolSize, hidden], 'the configured poolSize x hidden size') : null;
    if (this.options.keys === 'prompt-mean' && stored.tensors.has('keys')) {
      throw new Error(`${this.where()}: ${stored.source} has a 'keys' tensor but this run derives keys from the prompts (keys 'prompt-mean')`);
    }
    if (this.pool) {
      const pool = this.pool;
      const keyVar = this.keyVar;
      tf.tidy(() => {
        pool.assign(tf.tensor3d(poolT.data, this.poolShape(hidden)));
        if (keyVar && keysT) keyVar.assign(tf.tensor2d(keysT.data, [this.options.poolSize, hidden]));
      });
    } else {
      this.create(poolT.data, keysT?.data ?? null, hidden);
    }
    const usage = stored.config?.usage;
    if (usage !== undefined && !isSeatState(usage, this.options.poolSize)) {
      throw new Error(`${this.where()}: ${stored.source}'s usage is not { examples, seats: [${this.options.poolSize} x { since, chosen }] } of counts`);
    }
    this.seats = usage ?? freshSeats(this.options.poolSize);
    // Keys seated by k-means stay seated; queries kept for it resume the count where it stopped.
    const seeded = stored.config?.keysSeeded;
    if (seeded !== undefined && typeof seeded !== 'boolean') throw new Error(`${this.where()}: ${stored.source}'s keysSeeded is not true or false`);
    this.keysSeeded = seeded ?? false;
    const kept = stored.tensors.get(SEED_QUERIES);
    if (kept && (kept.shape.length !== 2 || kept.shape[1] !== hidden || kept.shape[0] > this.options.seedKeysAfter || this.keysSeeded)) {
      throw new Error(`${this.where()}: ${stored.source}'s ${SEED_QUERIES} [${kept.shape.join(', ')}] does not fit seedKeysAfter ${this.options.seedKeysAfter} x hidden ${hidden}${this.keysSeeded ? ' (and its keys are already seated)' : ''}`);
    }
    this.seedQueries = kept ? Array.from({ length: kept.shape[0] }, (_, i) => kept.data.slice(i * hidden, (i + 1) * hidden)) : [];
    this.logger?.info('preference tokens loaded', { kind: 'prompt-pool', source: stored.source, shape: poolT.shape, keys: this.options.keys });
  }

  dispose(): void {
    this.pool?.dispose();
    this.keyVar?.dispose();
    this.pool = null;
    this.keyVar = null;
  }
}
