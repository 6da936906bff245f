/**
 * `import`: raw data (Pick-a-Pic v2 parquet shards, or the paper's pickled DataFrames) to the
 * processed format of store.ts. One pass over the input with bounded memory: rows are filtered
 * (each skip counted by reason, every skipped row listed in skipped.jsonl), each distinct image
 * is hashed, decoded once to prove it is usable, and stored once. At the end every row read is
 * accounted for: rows read = rows kept + the sum of the skip reasons.
 */
import { promises as fsp } from 'fs';
import * as fs from 'fs';
import * as path from 'path';
import { createLogger, type Logger, type SplitName } from '@userpref/core';
import { checkImage, imageId, mapLimit, type ImageCheck } from './images';
import { PickapicFormatError } from './parquet-io';
import { openPickapicShard, type PickapicRow } from './pickapic-parquet';
import { paperRowBatches, readPaperPickle } from './paper-pickle';
import { buildSplits, type SplitProtocol } from './splits';
import {
  FORMAT_NAME,
  FORMAT_VERSION,
  ImageStoreWriter,
  SPLITS,
  writeComparisons,
  writeJson,
  type Manifest,
  type Reconciliation,
  type SplitIndex,
  type StoredComparison,
} from './store';
import { TRUTH_FILE, type SynthpickTruth } from './synthpick';

/** Skip reasons, in the order they are tested (a row is counted under the first that applies). */
export const SKIP_REASONS = ['no_label', 'not_different', 'tie', 'bad_label', 'missing_value', 'corrupt_image'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number] | 'bad_references';

export interface ImportOptions {
  /** Parquet files, pickle files, or directories holding them. */
  from: string[];
  out: string;
  splitProtocol?: SplitProtocol;
  seed?: number;
  validationFraction?: number;
  testFraction?: number;
  /** Keep ties (label0 = 0.5) as evaluation-only targets instead of dropping them. Default false. */
  keepTies?: boolean;
  /** Rows per read inside a row group (when the file has offset indexes). Default 256. */
  batchRows?: number;
  /** Release pickles: a batch of rows stops at the row that reaches this many image bytes (at most
   *  64 rows). Default 64 MiB. */
  batchBytes?: number;
  /** Images decoded in parallel while validating. Default 4. */
  concurrency?: number;
  /** For a pickle whose name does not say its split (bench_train/val/test). */
  split?: SplitName;
  logger?: Logger;
  /** Progress line every this many ms. Default 2000. */
  progressEveryMs?: number;
  /** Called with process.memoryUsage().rss after every batch (benchmarks). */
  onBatch?: (info: { rowsRead: number; bytesRead: number }) => void;
}

export interface ImportResult {
  readonly manifest: Manifest;
  readonly reconciliation: Reconciliation;
  /** Parquet: bytes read from the files; release pickles: image bytes read. */
  readonly bytesRead: number;
  readonly elapsedMs: number;
  readonly splits: Record<SplitName, { examples: number; users: number }>;
}

async function expandInputs(from: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const f of from) {
    const st = await fsp.stat(f).catch(() => null);
    if (!st) throw new PickapicFormatError(`${f}: no such file or directory`);
    if (st.isDirectory()) {
      const names = (await fsp.readdir(f)).filter((n) => /\.(parquet|pkl|pickle)$/i.test(n)).sort();
      if (!names.length) throw new PickapicFormatError(`${f}: directory holds no .parquet or .pkl files`);
      files.push(...names.map((n) => path.join(f, n)));
    } else files.push(f);
  }
  return files;
}

async function findTruth(from: string[], files: string[]): Promise<SynthpickTruth | null> {
  const dirs = new Set<string>();
  for (const f of from) dirs.add((await fsp.stat(f)).isDirectory() ? f : path.dirname(f));
  for (const f of files) dirs.add(path.dirname(f));
  for (const d of dirs) {
    const p = path.join(d, TRUTH_FILE);
    if (fs.existsSync(p)) return JSON.parse(await fsp.readFile(p, 'utf8')) as SynthpickTruth;
  }
  return null;
}

class Tally {
  read = 0;
  kept = 0;
  ties = 0;
  readonly skipped: Record<string, number> = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0]));
  warnings = 0;
  constructor(private readonly log: Logger, private readonly skipLog: fs.WriteStream) {}
  skip(reason: SkipReason, where: string, detail?: string): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
    this.skipLog.write(JSON.stringify({ where, reason, ...(detail ? { detail } : {}) }) + '\n');
    if (reason === 'corrupt_image' || reason === 'bad_references' || reason === 'missing_value') {
      if (this.warnings++ < 20) this.log.warn(`skipped row ${where}: ${reason}${detail ? ` (${detail})` : ''}`);
    }
  }
  reconciliation(): Reconciliation {
    return { read: this.read, kept: this.kept, skipped: { ...this.skipped } };
  }
}

/** Validates images once each (cached by id) and stores the good ones. */
class ImageGate {
  private readonly checks = new Map<string, ImageCheck>();
  constructor(private readonly store: ImageStoreWriter, private readonly concurrency: number) {}

  /** Decodes every not-yet-seen image of `items` (in parallel). */
  async prepare(items: Array<{ id: string; bytes: Uint8Array }>): Promise<void> {
    const todo = new Map<string, Uint8Array>();
    for (const it of items) if (!this.checks.has(it.id) && !todo.has(it.id)) todo.set(it.id, it.bytes);
    const entries = [...todo.entries()];
    const results = await mapLimit(entries, this.concurrency, ([, bytes]) => checkImage(bytes));
    entries.forEach(([id], k) => this.checks.set(id, results[k]));
  }

  check(id: string): ImageCheck {
    const c = this.checks.get(id);
    if (!c) throw new Error(`internal: image ${id} was not prepared`);
    return c;
  }

  keep(id: string, bytes: Uint8Array): void {
    this.store.add(id, bytes, this.check(id));
  }
}

export async function importDataset(opts: ImportOptions): Promise<ImportResult> {
  const t0 = Date.now();
  const log = opts.logger ?? createLogger();
  const files = await expandInputs(opts.from);
  const kinds = new Set(files.map((f) => (/\.parquet$/i.test(f) ? 'parquet' : 'pickle')));
  if (kinds.size > 1) throw new PickapicFormatError(`--from mixes parquet and pickle files; import them separately`);
  const kind = [...kinds][0];
  await fsp.mkdir(opts.out, { recursive: true });
  const skipLog = fs.createWriteStream(path.join(opts.out, 'skipped.jsonl'));
  const tally = new Tally(log, skipLog);
  const images = new ImageStoreWriter(opts.out);
  const gate = new ImageGate(images, opts.concurrency ?? 4);
  const comparisons: StoredComparison[] = [];
  const seed = opts.seed ?? 42;
  const protocol = opts.splitProtocol ?? 'by-comparison';
  const every = opts.progressEveryMs ?? 2000;
  let bytesRead = 0;
  let lastReport = Date.now();
  const progress = (file: string, extra: Record<string, unknown>, force = false) => {
    const now = Date.now();
    if (!force && now - lastReport < every) return;
    lastReport = now;
    const s = (now - t0) / 1000;
    log.info(`import: ${path.basename(file)}`, { ...extra, rowsRead: tally.read, rowsKept: tally.kept, images: images.count, MB: +(bytesRead / 1e6).toFixed(1), rowsPerSec: Math.round(tally.read / s), MBps: +(bytesRead / 1e6 / s).toFixed(1) });
  };

  let splits: Record<SplitName, SplitIndex>;
  let unusedTies = 0;
  let truth: SynthpickTruth | null = null;
  try {
    if (kind === 'parquet') {
      truth = await findTruth(opts.from, files);
      const truthByRanking = truth ? new Map(truth.comparisons.map((c) => [c.ranking_id, c])) : null;
      // Open (and check) every shard first: a bad schema fails the import before hours of work.
      for (const f of files) await (await openPickapicShard(f)).close();
      for (const [fi, f] of files.entries()) {
        const shard = await openPickapicShard(f);
        let before = 0;
        try {
          for await (const batch of shard.batches(opts.batchRows ?? 256)) {
            bytesRead += batch.bytesRead - before;
            before = batch.bytesRead;
            await importParquetRows(batch.rows, tally, gate, comparisons, !!opts.keepTies, truthByRanking);
            opts.onBatch?.({ rowsRead: tally.read, bytesRead });
            progress(f, { file: `${fi + 1}/${files.length}`, rowGroup: `${batch.rowGroup + 1}/${batch.rowGroups}` });
          }
        } finally {
          await shard.close();
        }
        progress(f, { file: `${fi + 1}/${files.length}`, done: true }, true);
      }
      const built = buildSplits(comparisons, { protocol, seed, validationFraction: opts.validationFraction ?? 0.1, testFraction: opts.testFraction ?? 0.1 });
      splits = built.splits;
      unusedTies = built.unusedTies;
    } else {
      if (opts.splitProtocol) log.warn(`--split-protocol ${opts.splitProtocol} is ignored for the paper's pickles: the release comes split (train / val / test files)`);
      splits = await importPickles(files, opts, tally, gate, comparisons, log, {
        addBytes: (n) => (bytesRead += n),
        batchDone: (file, rowsDone, rows) => {
          opts.onBatch?.({ rowsRead: tally.read, bytesRead });
          progress(file, { rows: `${rowsDone}/${rows}` }, rowsDone === rows);
        },
      });
    }
  } finally {
    await new Promise<void>((resolve) => skipLog.end(resolve));
  }

  const imageInfo = images.finish();
  writeComparisons(path.join(opts.out, 'comparisons.parquet'), comparisons);
  const splitFiles: Partial<Record<SplitName, string>> = {};
  for (const s of SPLITS) {
    splitFiles[s] = `split-${s}.json`;
    await writeJson(path.join(opts.out, splitFiles[s]!), splits[s]);
  }
  const reconciliation = tally.reconciliation();
  const skippedSum = Object.values(reconciliation.skipped).reduce((a, b) => a + b, 0);
  if (reconciliation.read !== reconciliation.kept + skippedSum) {
    throw new Error(`import does not reconcile: read ${reconciliation.read} != kept ${reconciliation.kept} + skipped ${skippedSum}`);
  }
  const manifest: Manifest = {
    format: FORMAT_NAME,
    version: FORMAT_VERSION,
    createdBy: '@userpref/dataset-pickapic import',
    createdAt: new Date().toISOString(),
    source: { kind: kind === 'parquet' ? 'pickapic-parquet' : 'paper-pickle', files: files.map((f) => path.resolve(f)) },
    splitProtocol: kind === 'parquet' ? protocol : 'paper-release',
    seed,
    ...(kind === 'parquet' ? { fractions: { validation: opts.validationFraction ?? 0.1, test: opts.testFraction ?? 0.1 } } : {}),
    reconciliation,
    images: imageInfo,
    comparisons: { file: 'comparisons.parquet', count: comparisons.length, ties: tally.ties },
    splits: splitFiles,
    ...(truth
      ? { synthetic: { kind: 'synthpick' as const, preset: truth.preset, seed: truth.seed, summary: truth.summary, userClusters: Object.fromEntries(truth.users.map((u) => [u.user_id, u.cluster])) } }
      : {}),
  };
  await writeJson(path.join(opts.out, 'manifest.json'), manifest);
  const splitSummary = Object.fromEntries(SPLITS.map((s) => [s, { examples: splits[s].examples.length, users: splits[s].users }])) as ImportResult['splits'];
  const elapsedMs = Date.now() - t0;
  log.info('import: reconciliation', {
    rowsRead: reconciliation.read,
    rowsKept: reconciliation.kept,
    ...Object.fromEntries(Object.entries(reconciliation.skipped).map(([k, v]) => [`skipped_${k}`, v])),
    tiesKept: tally.ties,
    ...(unusedTies ? { tiesUnusedInTrainUsers: unusedTies } : {}),
  });
  log.info('import: done', {
    out: opts.out,
    images: imageInfo.count,
    imageMB: +(imageInfo.bytes / 1e6).toFixed(1),
    comparisons: comparisons.length,
    ...Object.fromEntries(SPLITS.map((s) => [`${s}Examples`, splitSummary[s].examples])),
    seconds: +(elapsedMs / 1000).toFixed(1),
  });
  return { manifest, reconciliation, bytesRead, elapsedMs, splits: splitSummary };
}

function skipReason(r: PickapicRow): { reason: SkipReason; detail?: string } | null {
  if (r.hasLabel === false) return { reason: 'no_label' };
  if (r.areDifferent === false) return { reason: 'not_different' };
  if (r.label0 === 0.5) return { reason: 'tie' };
  if (r.label0 !== 0 && r.label0 !== 1) return { reason: 'bad_label', detail: `label_0 = ${r.label0}` };
  if (r.hasLabel === null || r.areDifferent === null) return { reason: 'missing_value', detail: 'has_label or are_different is null' };
  if (r.userId === null) return { reason: 'missing_value', detail: 'user_id is null' };
  if (r.prompt === null) return { reason: 'missing_value', detail: 'caption is null' };
  return null;
}

async function importParquetRows(
  rows: PickapicRow[],
  tally: Tally,
  gate: ImageGate,
  comparisons: StoredComparison[],
  keepTies: boolean,
  truth: Map<string, SynthpickTruth['comparisons'][number]> | null,
): Promise<void> {
  type Candidate = { row: PickapicRow; id0: string | null; id1: string | null };
  const candidates: Candidate[] = [];
  for (const row of rows) {
    tally.read++;
    let why = skipReason(row);
    if (why?.reason === 'tie' && keepTies) {
      why = row.hasLabel === null || row.areDifferent === null || row.userId === null || row.prompt === null ? { reason: 'missing_value', detail: 'a tie with a null field' } : null;
    }
    if (why) {
      tally.skip(why.reason, row.where, why.detail);
      continue;
    }
    candidates.push({ row, id0: row.jpg0 ? imageId(row.jpg0) : null, id1: row.jpg1 ? imageId(row.jpg1) : null });
  }
  const toCheck: Array<{ id: string; bytes: Uint8Array }> = [];
  for (const c of candidates) {
    if (c.id0) toCheck.push({ id: c.id0, bytes: c.row.jpg0! });
    if (c.id1) toCheck.push({ id: c.id1, bytes: c.row.jpg1! });
  }
  await gate.prepare(toCheck);
  for (const { row, id0, id1 } of candidates) {
    const problems: string[] = [];
    for (const [col, id] of [['jpg_0', id0], ['jpg_1', id1]] as const) {
      if (!id) problems.push(`${col} is null`);
      else {
        const c = gate.check(id);
        if (!c.ok) problems.push(`${col} (image ${id.slice(0, 12)}) does not decode: ${c.error}`);
      }
    }
    if (problems.length) {
      tally.skip('corrupt_image', row.where, problems.join('; '));
      continue;
    }
    gate.keep(id0!, row.jpg0!);
    gate.keep(id1!, row.jpg1!);
    const t = truth && row.rankingId !== null ? truth.get(row.rankingId) : undefined;
    comparisons.push({
      userId: row.userId!,
      prompt: row.prompt!,
      image0: id0!,
      image1: id1!,
      label0: row.label0!,
      rankingId: row.rankingId,
      source: row.where,
      p0: t?.p0 ?? null,
      populationPick0: t ? t.population_pick0 : null,
    });
    tally.kept++;
    if (row.label0 === 0.5) tally.ties++;
  }
}

function splitOfPickle(file: string, fallback: SplitName | undefined): SplitName {
  const name = path.basename(file).toLowerCase();
  if (/(^|[_-])train([_-]|\.|$)/.test(name)) return 'train';
  if (/(^|[_-])val(idation)?([_-]|\.|$)/.test(name)) return 'validation';
  if (/(^|[_-])test([_-]|\.|$)/.test(name)) return 'test';
  if (fallback) return fallback;
  throw new PickapicFormatError(`${file}: cannot tell its split from the name (expected bench_train*/bench_val*/bench_test*); pass --split`);
}

/**
 * The paper's release: one row per (user, target comparison) with its references inline. Targets
 * and references become comparisons (a reference is stored as image0 = liked, label0 = 1, and
 * shared references are stored once); each row's references, in their given order, are its pool.
 */
async function importPickles(
  files: string[],
  opts: ImportOptions,
  tally: Tally,
  gate: ImageGate,
  comparisons: StoredComparison[],
  log: Logger,
  /** addBytes: image bytes read (progress in MB); batchDone: after each batch of rows. */
  report: { addBytes(n: number): void; batchDone(file: string, rowsDone: number, rows: number): void },
): Promise<Record<SplitName, SplitIndex>> {
  const out: Record<SplitName, { pools: number[][]; examples: Array<[number, number]>; users: Set<string> }> = {
    train: { pools: [], examples: [], users: new Set() },
    validation: { pools: [], examples: [], users: new Set() },
    test: { pools: [], examples: [], users: new Set() },
  };
  const refIndex = new Map<string, number>();
  for (const file of files) {
    const split = splitOfPickle(file, opts.split);
    const name = path.basename(file);
    const frame = await readPaperPickle(file);
    try {
      for (const { start, rows, bytes } of paperRowBatches(frame, { maxRows: 64, maxBytes: opts.batchBytes ?? 64 * 2 ** 20 })) {
        const toCheck: Array<{ id: string; bytes: Uint8Array }> = [];
        const hashed = rows.map((r) => {
          const h = (b: Uint8Array | null) => (b ? imageId(b) : null);
          const ids = { image0: h(r.image0), image1: h(r.image1), liked: r.liked.map(h), disliked: r.disliked.map(h) };
          const push = (id: string | null, b: Uint8Array | null) => id && b && toCheck.push({ id, bytes: b });
          push(ids.image0, r.image0);
          push(ids.image1, r.image1);
          r.liked.forEach((b, k) => push(ids.liked[k], b));
          r.disliked.forEach((b, k) => push(ids.disliked[k], b));
          return ids;
        });
        await gate.prepare(toCheck);
        rows.forEach((r, k) => {
          const where = `${name}:${start + k}`;
          const ids = hashed[k];
          tally.read++;
          if (r.label0 === 0.5 && !opts.keepTies) return tally.skip('tie', where);
          if (r.label0 !== 0 && r.label0 !== 1 && r.label0 !== 0.5) return tally.skip('bad_label', where, `label0 = ${r.label0}`);
          if (r.userId === null || r.prompt === null) return tally.skip('missing_value', where, 'user_id or prompt is null');
          if (r.liked.length !== r.disliked.length || r.liked.length !== r.prompts.length) {
            return tally.skip('bad_references', where, `reference_list has ${r.liked.length}, reference_list_bad ${r.disliked.length}, reference_prompt_list ${r.prompts.length} entries`);
          }
          const bad = [ids.image0, ids.image1].filter((id) => !id || !gate.check(id).ok);
          if (bad.length) return tally.skip('corrupt_image', where, `target image ${bad.map((b) => b?.slice(0, 12) ?? 'null').join(', ')} does not decode`);
          const pool: number[] = [];
          let droppedRefs = 0;
          for (let j = 0; j < r.liked.length; j++) {
            const [l, d] = [ids.liked[j], ids.disliked[j]];
            if (!l || !d || !gate.check(l).ok || !gate.check(d).ok) {
              droppedRefs++;
              continue;
            }
            const key = `${r.userId}\u0000${l}\u0000${d}\u0000${r.prompts[j]}`;
            let idx = refIndex.get(key);
            if (idx === undefined) {
              idx = comparisons.length;
              refIndex.set(key, idx);
              gate.keep(l, r.liked[j]!);
              gate.keep(d, r.disliked[j]!);
              comparisons.push({ userId: r.userId, prompt: r.prompts[j] ?? '', image0: l, image1: d, label0: 1, rankingId: null, source: `${where}:ref${j}`, p0: null, populationPick0: null });
            }
            pool.push(idx);
          }
          if (droppedRefs) log.warn(`row ${where}: ${droppedRefs} reference pair(s) with undecodable images left out`);
          gate.keep(ids.image0!, r.image0!);
          gate.keep(ids.image1!, r.image1!);
          const target = comparisons.length;
          comparisons.push({ userId: r.userId, prompt: r.prompt, image0: ids.image0!, image1: ids.image1!, label0: r.label0, rankingId: null, source: where, p0: null, populationPick0: null });
          const s = out[split];
          s.pools.push(pool);
          s.examples.push([target, s.pools.length - 1]);
          s.users.add(r.userId);
          tally.kept++;
          if (r.label0 === 0.5) tally.ties++;
        });
        report.addBytes(bytes);
        report.batchDone(file, start + rows.length, frame.length);
      }
    } finally {
      frame.close();
    }
    log.info(`import: ${name} done`, { split, rows: frame.length, rowsKept: tally.kept });
  }
  const make = (split: SplitName): SplitIndex => ({
    format: FORMAT_NAME,
    split,
    protocol: 'paper-release',
    // SPEC §6: training draws its references at random (seed); evaluation takes the first ones.
    referenceSelection: split === 'train' ? 'sample' : 'first',
    users: out[split].users.size,
    pools: out[split].pools,
    examples: out[split].examples,
  });
  return { train: make('train'), validation: make('validation'), test: make('test') };
}
