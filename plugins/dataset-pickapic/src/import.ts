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
import { buildSplits, defaultReferences, type ReferenceSource, type SplitProtocol } from './splits';
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
/** Reasons that are not a row's own fault: a comparison already imported from another file
 *  (`duplicate`), rows of a row group that could not be read (`bad_row_group`, only with
 *  skipBadRowGroups). */
export const OTHER_SKIP_REASONS = ['duplicate', 'bad_row_group'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number] | (typeof OTHER_SKIP_REASONS)[number] | 'bad_references';

/**
 * The Pick-a-Pic v2 layout names its shards `<split>-NNNNN-of-NNNNN[-hash].parquet`. The `_unique`
 * splits are deduplicated subsets of validation / test (one comparison per prompt), so they are
 * imported as validation / test; a comparison present in both (same user, ranking_id and images)
 * is kept once and its other copies are counted as `duplicate`.
 */
export const SHARD_SPLITS: Readonly<Record<string, SplitName>> = {
  train: 'train',
  validation: 'validation',
  test: 'test',
  validation_unique: 'validation',
  test_unique: 'test',
};

/** The split a shard's file name says (its prefix before '-' or '.'), or null. */
export function splitFromShardName(file: string): { prefix: string; split: SplitName } | null {
  const m = /^([a-z_]+)(?=[-.])/i.exec(path.basename(file));
  const prefix = m?.[1].toLowerCase();
  return prefix && prefix in SHARD_SPLITS ? { prefix, split: SHARD_SPLITS[prefix] } : null;
}

export interface ImportOptions {
  /** Parquet files, pickle files, or directories holding them. */
  from: string[];
  out: string;
  /** Default: `upstream` (each shard's split from its file name or `split`), except for synthpick
   *  data (a synthpick-truth.json beside the shards), which has no upstream split: `by-comparison`.
   *  The paper's pickles come split; a protocol given for them is ignored with a warning. */
  splitProtocol?: SplitProtocol;
  /** Where references come from (splits.ts). Default: `train` for by-comparison,
   *  `train+same-split` for upstream and by-user. */
  references?: ReferenceSource;
  /** A row group that cannot be read: stop the import (default) or skip its rows, counted as
   *  `bad_row_group`, and go on. */
  skipBadRowGroups?: boolean;
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
  /** The split of every input file. Without it a file's split comes from its name (Pick-a-Pic v2
   *  shards: train-, validation-, test-, validation_unique-, test_unique-; release pickles:
   *  bench_train / bench_val / bench_test); a name that says another split is overridden, with a
   *  warning. */
  split?: SplitName;
  logger?: Logger;
  /** Progress line every this many ms. Default 2000. */
  progressEveryMs?: number;
  /** Called with process.memoryUsage().rss after every batch (benchmarks). */
  onBatch?: (info: { rowsRead: number; bytesRead: number }) => void;
}

/** The manifest of an import: the store's Manifest and what the import adds about splits. */
export interface ImportManifest extends Manifest {
  /** Where references come from (splits.ts), for parquet imports. */
  readonly references?: ReferenceSource;
  /** Each source file's split (from its name or --split; null: none). */
  readonly sourceSplits: Record<string, SplitName | null>;
  /** The reconciliation per source split (the split of the file a row came from; 'none' when its
   *  file has none). */
  readonly reconciliationBySplit: Record<string, Reconciliation>;
  /** Re-split parquet imports: comparisons per source split and the split they ended in. */
  readonly resplit?: Record<string, Record<string, number>>;
}

export interface SplitSummary {
  examples: number;
  users: number;
  /** Examples whose pool holds no comparison but the target itself. */
  withoutReferences: number;
}

export interface ImportResult {
  readonly manifest: ImportManifest;
  readonly reconciliation: Reconciliation;
  /** Per source split (the split of the file a row came from; 'none' when it has none). */
  readonly bySplit: Record<string, Reconciliation>;
  readonly protocol: string;
  readonly references: ReferenceSource | null;
  /** Re-split parquet imports: comparisons per source split and the split they ended in. */
  readonly resplit: Record<string, Record<string, number>> | null;
  /** Parquet: bytes read from the files; release pickles: image bytes read. */
  readonly bytesRead: number;
  readonly elapsedMs: number;
  readonly splits: Record<SplitName, SplitSummary>;
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

/** Where a row is, for messages and skipped.jsonl. */
interface RowAt {
  readonly where: string;
  readonly rankingId?: string | null;
  readonly userId?: string | null;
}

const rowName = (at: RowAt) => {
  const who = [at.rankingId != null ? `ranking_id ${at.rankingId}` : '', at.userId != null ? `user ${at.userId}` : ''].filter(Boolean).join(', ');
  return who ? `${at.where} (${who})` : at.where;
};

/** Counts rows read / kept / skipped by reason, per source split, and lists every skip. */
class Tally {
  private readonly parts = new Map<string, Reconciliation>();
  ties = 0;
  warnings = 0;
  constructor(private readonly log: Logger, private readonly skipLog: fs.WriteStream) {}
  private part(split: string): Reconciliation {
    let p = this.parts.get(split);
    if (!p) this.parts.set(split, (p = { read: 0, kept: 0, skipped: Object.fromEntries([...SKIP_REASONS, ...OTHER_SKIP_REASONS].map((r) => [r, 0])) }));
    return p;
  }
  read(split: string, n = 1): void {
    this.part(split).read += n;
  }
  keep(split: string, n = 1): void {
    this.part(split).kept += n;
  }
  get rowsRead(): number {
    return [...this.parts.values()].reduce((a, p) => a + p.read, 0);
  }
  get rowsKept(): number {
    return [...this.parts.values()].reduce((a, p) => a + p.kept, 0);
  }
  skip(split: string, reason: SkipReason, at: RowAt, detail?: string, rows = 1): void {
    const p = this.part(split);
    p.skipped[reason] = (p.skipped[reason] ?? 0) + rows;
    this.skipLog.write(JSON.stringify({ where: at.where, ranking_id: at.rankingId ?? null, user_id: at.userId ?? null, reason, ...(rows !== 1 ? { rows } : {}), ...(detail ? { detail } : {}) }) + '\n');
    if (reason === 'bad_row_group') this.log.warn(`skipped ${rows} row(s) ${at.where}: bad_row_group (${detail})`);
    else if (reason === 'corrupt_image' || reason === 'bad_references' || reason === 'missing_value') {
      if (this.warnings++ < 20) this.log.warn(`skipped row ${rowName(at)}: ${reason}${detail ? ` (${detail})` : ''}`);
    }
  }
  bySplit(): Record<string, Reconciliation> {
    const order = ['train', 'validation', 'test', 'none'];
    const keys = [...this.parts.keys()].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    return Object.fromEntries(keys.map((k) => [k, { ...this.parts.get(k)!, skipped: { ...this.parts.get(k)!.skipped } }]));
  }
  reconciliation(): Reconciliation {
    const total: Reconciliation = { read: 0, kept: 0, skipped: Object.fromEntries([...SKIP_REASONS, ...OTHER_SKIP_REASONS].map((r) => [r, 0])) };
    for (const p of this.parts.values()) {
      total.read += p.read;
      total.kept += p.kept;
      for (const [r, n] of Object.entries(p.skipped)) total.skipped[r] = (total.skipped[r] ?? 0) + n;
    }
    return total;
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
  const seed = opts.seed ?? 42;
  const fractions = { validation: opts.validationFraction ?? 0.1, test: opts.testFraction ?? 0.1 };

  // Everything that can be decided from names and options is decided before any file is read.
  let truth: SynthpickTruth | null = null;
  let protocol: SplitProtocol | 'paper-release' = 'paper-release';
  let references: ReferenceSource | null = null;
  const fileSplit: Array<SplitName | null> = files.map((f) => {
    const named = kind === 'parquet' ? splitFromShardName(f)?.split ?? null : splitOfPickleName(f);
    if (opts.split && named && named !== opts.split) log.warn(`${path.basename(f)}: its name says ${named}; imported as ${opts.split} because of --split ${opts.split}`);
    return opts.split ?? named;
  });
  if (kind === 'parquet') {
    truth = await findTruth(opts.from, files);
    protocol = opts.splitProtocol ?? (truth ? 'by-comparison' : 'upstream');
    references = opts.references ?? defaultReferences(protocol);
    if (protocol === 'by-user' && references === 'train') {
      throw new PickapicFormatError(`--references train does not fit --split-protocol by-user: its validation and test users have no training comparisons (use train+same-split)`);
    }
    if (protocol === 'upstream') {
      const nameless = files.filter((_, i) => !fileSplit[i]);
      if (nameless.length) {
        throw new PickapicFormatError(
          `${nameless.map((f) => path.basename(f)).join(', ')}: the file name says no split (Pick-a-Pic v2 names: ${Object.keys(SHARD_SPLITS).join('|')}-NNNNN-of-NNNNN.parquet); ` +
            `pass --split train|validation|test for these files, or re-split everything with --split-protocol by-comparison|by-user`,
        );
      }
      if (opts.validationFraction !== undefined || opts.testFraction !== undefined) log.warn('--validation-fraction / --test-fraction are ignored: the upstream splits are kept (re-split with --split-protocol by-comparison|by-user)');
    }
    const why = opts.splitProtocol ? 'asked for' : truth ? 'synthpick data has no upstream split' : 'the default: splits from the file names';
    log.info(`import: split protocol ${protocol} (${why}); references from ${references === 'train' ? "the user's training comparisons" : "the user's training comparisons and the user's other comparisons of the target's split"}`);
    const prefixes = new Set(files.map((f) => splitFromShardName(f)?.prefix));
    for (const [u, base] of [['validation_unique', 'validation'], ['test_unique', 'test']]) {
      if (prefixes.has(u) && prefixes.has(base)) log.info(`import: ${u} is a deduplicated subset of ${base}: both are imported as ${base}, and a comparison found in both is kept once (the other copy counted as duplicate)`);
    }
  } else {
    // The release comes split (train / val / test files): nothing to re-split.
    if (opts.splitProtocol) log.warn(`--split-protocol ${opts.splitProtocol} is ignored for the paper's pickles: the release comes split (train / val / test files)`);
    if (opts.references) log.warn(`--references ${opts.references} is ignored for the paper's pickles: each row carries its own references`);
    for (const [i, f] of files.entries()) {
      if (!fileSplit[i]) throw new PickapicFormatError(`${f}: cannot tell its split from the name (expected bench_train*/bench_val*/bench_test*); pass --split`);
    }
  }

  await fsp.mkdir(opts.out, { recursive: true });
  const skipLog = fs.createWriteStream(path.join(opts.out, 'skipped.jsonl'));
  const tally = new Tally(log, skipLog);
  const images = new ImageStoreWriter(opts.out);
  const gate = new ImageGate(images, opts.concurrency ?? 4);
  let comparisons: StoredComparison[] = [];
  /** The source split of each comparison (parquet). */
  let compSplit: Array<SplitName | null> = [];
  const every = opts.progressEveryMs ?? 2000;
  let bytesRead = 0;
  let lastReport = Date.now();
  const progress = (file: string, extra: Record<string, unknown>, force = false) => {
    const now = Date.now();
    if (!force && now - lastReport < every) return;
    lastReport = now;
    const s = (now - t0) / 1000;
    const read = tally.rowsRead;
    log.info(`import: ${path.basename(file)}`, { ...extra, rowsRead: read, rowsKept: tally.rowsKept, images: images.count, MB: +(bytesRead / 1e6).toFixed(1), rowsPerSec: Math.round(read / s), MBps: +(bytesRead / 1e6 / s).toFixed(1) });
  };

  let splits: Record<SplitName, SplitIndex>;
  let unusedTies = 0;
  let resplit: Record<string, Record<string, number>> | null = null;
  try {
    if (kind === 'parquet') {
      const truthByRanking = truth ? new Map(truth.comparisons.map((c) => [c.ranking_id, c])) : null;
      // Open (and check) every shard first: a bad schema fails the import before hours of work.
      for (const f of files) await (await openPickapicShard(f)).close();
      for (const [fi, f] of files.entries()) {
        const shard = await openPickapicShard(f);
        const split = fileSplit[fi];
        const key = split ?? 'none';
        let before = 0;
        try {
          for await (const batch of shard.batches(opts.batchRows ?? 256, { skipBadRowGroups: opts.skipBadRowGroups })) {
            bytesRead += batch.bytesRead - before;
            before = batch.bytesRead;
            if (batch.lost) {
              const n = batch.lost.rowEnd - batch.lost.rowStart;
              tally.read(key, n);
              tally.skip(key, 'bad_row_group', { where: `${path.basename(f)}:${batch.lost.rowStart}-${batch.lost.rowEnd - 1}` }, `row group ${batch.rowGroup}: ${batch.lost.error}`, n);
            }
            const added = await importParquetRows(batch.rows, key, tally, gate, comparisons, !!opts.keepTies, truthByRanking);
            for (let k = 0; k < added; k++) compSplit.push(split);
            opts.onBatch?.({ rowsRead: tally.rowsRead, bytesRead });
            progress(f, { file: `${fi + 1}/${files.length}`, split: key, rowGroup: `${batch.rowGroup + 1}/${batch.rowGroups}` });
          }
        } finally {
          await shard.close();
        }
        progress(f, { file: `${fi + 1}/${files.length}`, split: key, done: true }, true);
      }
      ({ comparisons, compSplit } = dropDuplicates(comparisons, compSplit, tally, log));
      const built = buildSplits(comparisons, {
        protocol: protocol as SplitProtocol,
        seed,
        validationFraction: fractions.validation,
        testFraction: fractions.test,
        references: references!,
        upstream: compSplit,
      });
      splits = built.splits;
      unusedTies = built.unusedTies;
      if (protocol !== 'upstream') {
        const counts = new Map<string, Map<string, number>>();
        compSplit.forEach((from, i) => {
          const key = from ?? 'none';
          if (!counts.has(key)) counts.set(key, new Map());
          const to = built.assignment[i] ?? 'unused';
          counts.get(key)!.set(to, (counts.get(key)!.get(to) ?? 0) + 1);
        });
        const order = ['train', 'validation', 'test', 'none', 'unused'];
        const sorted = <T,>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => order.indexOf(a) - order.indexOf(b));
        resplit = Object.fromEntries(sorted(counts).map(([from, to]) => [from, Object.fromEntries(sorted(to))]));
        for (const from of ['validation', 'test'] as const) {
          const row = resplit[from];
          if (row?.train) log.warn(`import: ${protocol} re-split: ${row.train} of ${Object.values(row).reduce((a, b) => a + b, 0)} comparisons from upstream ${from} files are now training comparisons`);
        }
      }
    } else {
      splits = await importPickles(files, fileSplit as SplitName[], opts, tally, gate, comparisons, log, {
        addBytes: (n) => (bytesRead += n),
        batchDone: (file, rowsDone, rows) => {
          opts.onBatch?.({ rowsRead: tally.rowsRead, bytesRead });
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
  const bySplit = tally.bySplit();
  for (const [name, r] of [['all', reconciliation] as const, ...Object.entries(bySplit)]) {
    const skippedSum = Object.values(r.skipped).reduce((a, b) => a + b, 0);
    if (r.read !== r.kept + skippedSum) throw new Error(`import does not reconcile (${name}): read ${r.read} != kept ${r.kept} + skipped ${skippedSum}`);
  }
  const stored = kind === 'parquet' ? comparisons.length : targetsOf(splits);
  if (reconciliation.kept !== stored) throw new Error(`import does not reconcile: kept ${reconciliation.kept} rows but stored ${stored} targets`);
  const manifest: ImportManifest = {
    format: FORMAT_NAME,
    version: FORMAT_VERSION,
    createdBy: '@userpref/dataset-pickapic import',
    createdAt: new Date().toISOString(),
    source: { kind: kind === 'parquet' ? 'pickapic-parquet' : 'paper-pickle', files: files.map((f) => path.resolve(f)) },
    splitProtocol: protocol,
    ...(references ? { references } : {}),
    sourceSplits: Object.fromEntries(files.map((f, i) => [path.basename(f), fileSplit[i]])),
    seed,
    ...(kind === 'parquet' && protocol !== 'upstream' ? { fractions } : {}),
    reconciliation,
    reconciliationBySplit: bySplit,
    ...(resplit ? { resplit } : {}),
    images: imageInfo,
    comparisons: { file: 'comparisons.parquet', count: comparisons.length, ties: tally.ties },
    splits: splitFiles,
    ...(truth
      ? { synthetic: { kind: 'synthpick' as const, preset: truth.preset, seed: truth.seed, summary: truth.summary, userClusters: Object.fromEntries(truth.users.map((u) => [u.user_id, u.cluster])) } }
      : {}),
  };
  await writeJson(path.join(opts.out, 'manifest.json'), manifest);
  const splitSummary = Object.fromEntries(SPLITS.map((s) => [s, summariseSplit(splits[s])])) as ImportResult['splits'];
  const elapsedMs = Date.now() - t0;
  log.info('import: reconciliation', {
    rowsRead: reconciliation.read,
    rowsKept: reconciliation.kept,
    ...Object.fromEntries(Object.entries(reconciliation.skipped).map(([k, v]) => [`skipped_${k}`, v])),
    tiesKept: tally.ties,
    ...(unusedTies ? { tiesUnusedInTrainUsers: unusedTies } : {}),
  });
  for (const [name, r] of Object.entries(bySplit)) {
    log.info(`import: rows of ${name === 'none' ? 'files without a split' : `${name} files`}`, { rowsRead: r.read, rowsKept: r.kept, ...Object.fromEntries(Object.entries(r.skipped).filter(([, v]) => v).map(([k, v]) => [`skipped_${k}`, v])) });
  }
  for (const s of SPLITS) {
    const x = splitSummary[s];
    if (x.withoutReferences) log.warn(`import: ${s}: ${x.withoutReferences} of ${x.examples} examples have no reference comparison (their user has no other usable comparison${references === 'train' ? ' in the training split' : ''})`);
  }
  log.info('import: done', {
    out: opts.out,
    images: imageInfo.count,
    imageMB: +(imageInfo.bytes / 1e6).toFixed(1),
    comparisons: comparisons.length,
    ...Object.fromEntries(SPLITS.map((s) => [`${s}Examples`, splitSummary[s].examples])),
    seconds: +(elapsedMs / 1000).toFixed(1),
  });
  return { manifest, reconciliation, bySplit, protocol, references, resplit, bytesRead, elapsedMs, splits: splitSummary };
}

function targetsOf(splits: Record<SplitName, SplitIndex>): number {
  return SPLITS.reduce((a, s) => a + splits[s].examples.length, 0);
}

function summariseSplit(index: SplitIndex): SplitSummary {
  let withoutReferences = 0;
  for (const [target, pool] of index.examples) {
    const p = index.pools[pool];
    if (p.length - (p.includes(target) ? 1 : 0) === 0) withoutReferences++;
  }
  return { examples: index.examples.length, users: index.users, withoutReferences };
}

const SPLIT_RANK: Record<string, number> = { test: 0, validation: 1, train: 2, none: 3 };

/**
 * A comparison imported twice (same user, ranking_id and pair of images: test and test_unique
 * shards, or the same file given twice) is kept once. The copy in the most held-out split is kept
 * (test, then validation, then train; the first file among equals), so a comparison that upstream
 * put in two splits never reaches training. Rows without a ranking_id are never merged.
 */
function dropDuplicates(comparisons: StoredComparison[], compSplit: Array<SplitName | null>, tally: Tally, log: Logger): { comparisons: StoredComparison[]; compSplit: Array<SplitName | null> } {
  const first = new Map<string, number>();
  const dropped = new Map<number, number>();
  const rank = (i: number) => SPLIT_RANK[compSplit[i] ?? 'none'];
  comparisons.forEach((c, i) => {
    if (c.rankingId === null) return;
    const key = `${c.userId}\u0000${c.rankingId}\u0000${[c.image0, c.image1].sort().join('\u0000')}`;
    const j = first.get(key);
    if (j === undefined) return void first.set(key, i);
    if (rank(i) < rank(j)) {
      dropped.set(j, i);
      first.set(key, i);
    } else dropped.set(i, j);
  });
  if (!dropped.size) return { comparisons, compSplit };
  const crossing = new Map<string, number>();
  for (const [i, kept] of [...dropped.entries()].sort((a, b) => a[0] - b[0])) {
    const c = comparisons[i];
    const k = comparisons[kept];
    const key = compSplit[i] ?? 'none';
    tally.keep(key, -1);
    const label = c.label0 !== k.label0 ? `; its label_0 ${c.label0} differs from the kept copy's ${k.label0}` : '';
    tally.skip(key, 'duplicate', { where: c.source, rankingId: c.rankingId, userId: c.userId }, `same comparison as ${k.source} (${compSplit[kept] ?? 'no split'}), kept there${label}`);
    if (compSplit[i] !== compSplit[kept]) crossing.set(`${compSplit[i]} -> ${compSplit[kept]}`, (crossing.get(`${compSplit[i]} -> ${compSplit[kept]}`) ?? 0) + 1);
  }
  log.warn(`import: ${dropped.size} comparison(s) imported more than once were kept once (counted as duplicate, listed in skipped.jsonl)${crossing.size ? `; across splits, kept in the held-out one: ${[...crossing.entries()].map(([k, n]) => `${n} ${k}`).join(', ')}` : ''}`);
  const keep = comparisons.map((_, i) => !dropped.has(i));
  return { comparisons: comparisons.filter((_, i) => keep[i]), compSplit: compSplit.filter((_, i) => keep[i]) };
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

/** Filters, validates and stores one batch of rows; returns how many comparisons it added. */
async function importParquetRows(
  rows: PickapicRow[],
  split: string,
  tally: Tally,
  gate: ImageGate,
  comparisons: StoredComparison[],
  keepTies: boolean,
  truth: Map<string, SynthpickTruth['comparisons'][number]> | null,
): Promise<number> {
  const before = comparisons.length;
  type Candidate = { row: PickapicRow; id0: string | null; id1: string | null };
  const candidates: Candidate[] = [];
  for (const row of rows) {
    tally.read(split);
    let why = skipReason(row);
    if (why?.reason === 'tie' && keepTies) {
      why = row.hasLabel === null || row.areDifferent === null || row.userId === null || row.prompt === null ? { reason: 'missing_value', detail: 'a tie with a null field' } : null;
    }
    if (why) {
      tally.skip(split, why.reason, row, why.detail);
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
      tally.skip(split, 'corrupt_image', row, problems.join('; '));
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
    tally.keep(split);
    if (row.label0 === 0.5) tally.ties++;
  }
  return comparisons.length - before;
}

/** The split a release pickle's name says (bench_train*, bench_val*, bench_test*), or null. */
function splitOfPickleName(file: string): SplitName | null {
  const name = path.basename(file).toLowerCase();
  if (/(^|[_-])train([_-]|\.|$)/.test(name)) return 'train';
  if (/(^|[_-])val(idation)?([_-]|\.|$)/.test(name)) return 'validation';
  if (/(^|[_-])test([_-]|\.|$)/.test(name)) return 'test';
  return null;
}

/**
 * The paper's release: one row per (user, target comparison) with its references inline. Targets
 * and references become comparisons (a reference is stored as image0 = liked, label0 = 1, and
 * shared references are stored once); each row's references, in their given order, are its pool.
 */
async function importPickles(
  files: string[],
  fileSplits: SplitName[],
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
  for (const [fi, file] of files.entries()) {
    const split = fileSplits[fi];
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
          const at = { where, userId: r.userId };
          tally.read(split);
          if (r.label0 === 0.5 && !opts.keepTies) return tally.skip(split, 'tie', at);
          if (r.label0 !== 0 && r.label0 !== 1 && r.label0 !== 0.5) return tally.skip(split, 'bad_label', at, `label0 = ${r.label0}`);
          if (r.userId === null || r.prompt === null) return tally.skip(split, 'missing_value', at, 'user_id or prompt is null');
          if (r.liked.length !== r.disliked.length || r.liked.length !== r.prompts.length) {
            return tally.skip(split, 'bad_references', at, `reference_list has ${r.liked.length}, reference_list_bad ${r.disliked.length}, reference_prompt_list ${r.prompts.length} entries`);
          }
          const bad = [ids.image0, ids.image1].filter((id) => !id || !gate.check(id).ok);
          if (bad.length) return tally.skip(split, 'corrupt_image', at, `target image ${bad.map((b) => b?.slice(0, 12) ?? 'null').join(', ')} does not decode`);
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
          if (droppedRefs) log.warn(`row ${where} (user ${r.userId}): ${droppedRefs} reference pair(s) with undecodable images left out`);
          gate.keep(ids.image0!, r.image0!);
          gate.keep(ids.image1!, r.image1!);
          const target = comparisons.length;
          comparisons.push({ userId: r.userId, prompt: r.prompt, image0: ids.image0!, image1: ids.image1!, label0: r.label0, rankingId: null, source: where, p0: null, populationPick0: null });
          const s = out[split];
          s.pools.push(pool);
          s.examples.push([target, s.pools.length - 1]);
          s.users.add(r.userId);
          tally.keep(split);
          if (r.label0 === 0.5) tally.ties++;
        });
        report.addBytes(bytes);
        report.batchDone(file, start + rows.length, frame.length);
      }
    } finally {
      frame.close();
    }
    log.info(`import: ${name} done`, { split, rows: frame.length, rowsKept: tally.rowsKept });
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
