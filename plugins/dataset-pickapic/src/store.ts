/**
 * The project's processed format, written once by `import` and read at speed by training
 * (format described in README.md):
 *
 *   manifest.json            what was imported, from where, how it was split, the reconciliation
 *   images-00000.parquet     id (sha256 hex of the bytes), bytes, width, height, format: each
 *                            distinct image once, one image per data page, so one image is one
 *                            small positioned read
 *   comparisons.parquet      one row per kept comparison: user_id, prompt, image0_id, image1_id,
 *                            label0, liked_id, disliked_id, ranking_id, source, p0, population_pick0
 *   split-<name>.json        the split: reference pools and (target comparison, pool) examples
 *
 * Plain parquet + JSON, so pandas / duckdb / pyarrow read every file without this code.
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import { requirePath, type SplitName } from '@userpref/core';
import { ParquetFileWriter, PickapicFormatError, openFile, readMetadata, readRows, topLevelColumns, type OpenedFile } from './parquet-io';
import type { FileMetaData } from './esm';
import type { ImageCheck } from './images';

export const FORMAT_NAME = 'userpref-pickapic-processed';
export const FORMAT_VERSION = 1;
export const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

/** A comparison as stored (row `index` of comparisons.parquet). */
export interface StoredComparison {
  readonly userId: string;
  readonly prompt: string;
  readonly image0: string;
  readonly image1: string;
  /** 1 = image0 preferred, 0 = image1, 0.5 = tie. */
  readonly label0: number;
  readonly rankingId: string | null;
  /** Where it came from (`file:row`). */
  readonly source: string;
  /** synthpick only: the true P(image0 preferred) for this user. */
  readonly p0: number | null;
  /** synthpick only: does the population-average utility prefer image0? */
  readonly populationPick0: boolean | null;
}

export const likedOf = (c: StoredComparison): string | null => (c.label0 === 1 ? c.image0 : c.label0 === 0 ? c.image1 : null);
export const dislikedOf = (c: StoredComparison): string | null => (c.label0 === 1 ? c.image1 : c.label0 === 0 ? c.image0 : null);

/**
 * One split: examples are (target comparison index, pool index); a pool is a list of comparison
 * indices the example's references are drawn from (the target itself is always excluded).
 */
export interface SplitIndex {
  readonly format: typeof FORMAT_NAME;
  readonly split: SplitName;
  readonly protocol: string;
  /** 'sample': references drawn at random from the pool; 'first': the first ones in order. */
  readonly referenceSelection: 'sample' | 'first';
  readonly users: number;
  readonly pools: number[][];
  readonly examples: Array<[number, number]>;
}

export interface Reconciliation {
  read: number;
  kept: number;
  skipped: Record<string, number>;
}

export interface Manifest {
  readonly format: typeof FORMAT_NAME;
  readonly version: number;
  readonly createdBy: string;
  readonly createdAt: string;
  readonly source: { kind: 'pickapic-parquet' | 'paper-pickle'; files: string[] };
  readonly splitProtocol: string;
  readonly seed: number;
  readonly fractions?: { validation: number; test: number };
  readonly reconciliation: Reconciliation;
  readonly images: { count: number; bytes: number; shards: string[] };
  readonly comparisons: { file: string; count: number; ties: number };
  readonly splits: Partial<Record<SplitName, string>>;
  /** Present when the data is synthpick: the generator's summary and each user's taste cluster. */
  readonly synthetic?: { kind: 'synthpick'; preset: string; seed: number; summary: Record<string, number>; userClusters: Record<string, number> };
}

const IMAGE_COLUMNS = [
  { name: 'id', type: 'STRING' as const },
  { name: 'bytes', type: 'BYTE_ARRAY' as const, codec: 'UNCOMPRESSED' as const, statistics: false },
  { name: 'width', type: 'INT32' as const },
  { name: 'height', type: 'INT32' as const },
  { name: 'format', type: 'STRING' as const },
];

/** Appends distinct images to size-bounded shards, a bounded row group at a time. */
export class ImageStoreWriter {
  private readonly seen = new Set<string>();
  private pending: { id: string[]; bytes: Uint8Array[]; width: number[]; height: number[]; format: string[] } = { id: [], bytes: [], width: [], height: [], format: [] };
  private pendingBytes = 0;
  private writer: ParquetFileWriter | null = null;
  private readonly shards: string[] = [];
  private totalBytes = 0;

  constructor(
    private readonly dir: string,
    private readonly limits = { shardBytes: 1 << 30, rowGroupImages: 256, rowGroupBytes: 32 << 20 },
  ) {}

  has(id: string): boolean {
    return this.seen.has(id);
  }

  get count(): number {
    return this.seen.size;
  }

  add(id: string, bytes: Uint8Array, check: ImageCheck): void {
    if (this.seen.has(id)) return;
    this.seen.add(id);
    // Copy: the source may be a view into a whole decoded parquet page.
    this.pending.id.push(id);
    this.pending.bytes.push(bytes.slice());
    this.pending.width.push(check.width);
    this.pending.height.push(check.height);
    this.pending.format.push(check.format);
    this.pendingBytes += bytes.byteLength;
    this.totalBytes += bytes.byteLength;
    if (this.pending.id.length >= this.limits.rowGroupImages || this.pendingBytes >= this.limits.rowGroupBytes) this.flush();
  }

  private flush(): void {
    if (!this.pending.id.length) return;
    if (!this.writer) {
      const name = `images-${String(this.shards.length).padStart(5, '0')}.parquet`;
      this.shards.push(name);
      this.writer = new ParquetFileWriter(path.join(this.dir, name), IMAGE_COLUMNS);
    }
    // pageSize 1: one image per data page, so a single image is read without its neighbours.
    this.writer.writeRowGroup(this.pending, 1);
    this.pending = { id: [], bytes: [], width: [], height: [], format: [] };
    this.pendingBytes = 0;
    if (this.writer.bytesWritten >= this.limits.shardBytes) {
      this.writer.finish();
      this.writer = null;
    }
  }

  finish(): { count: number; bytes: number; shards: string[] } {
    this.flush();
    this.writer?.finish();
    this.writer = null;
    return { count: this.seen.size, bytes: this.totalBytes, shards: [...this.shards] };
  }
}

const COMPARISON_COLUMNS = [
  { name: 'user_id', type: 'STRING' as const },
  { name: 'prompt', type: 'STRING' as const },
  { name: 'image0_id', type: 'STRING' as const },
  { name: 'image1_id', type: 'STRING' as const },
  { name: 'label0', type: 'DOUBLE' as const },
  { name: 'liked_id', type: 'STRING' as const, nullable: true },
  { name: 'disliked_id', type: 'STRING' as const, nullable: true },
  { name: 'ranking_id', type: 'STRING' as const, nullable: true },
  { name: 'source', type: 'STRING' as const },
  { name: 'p0', type: 'DOUBLE' as const, nullable: true },
  { name: 'population_pick0', type: 'BOOLEAN' as const, nullable: true },
];

export function writeComparisons(file: string, comparisons: readonly StoredComparison[], rowGroupRows = 100_000): void {
  const w = new ParquetFileWriter(file, COMPARISON_COLUMNS);
  for (let s = 0; s < comparisons.length; s += rowGroupRows) {
    const part = comparisons.slice(s, s + rowGroupRows);
    w.writeRowGroup({
      user_id: part.map((c) => c.userId),
      prompt: part.map((c) => c.prompt),
      image0_id: part.map((c) => c.image0),
      image1_id: part.map((c) => c.image1),
      label0: part.map((c) => c.label0),
      liked_id: part.map(likedOf),
      disliked_id: part.map(dislikedOf),
      ranking_id: part.map((c) => c.rankingId),
      source: part.map((c) => c.source),
      p0: part.map((c) => c.p0),
      population_pick0: part.map((c) => c.populationPick0),
    });
  }
  w.finish();
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await fsp.writeFile(file, JSON.stringify(value, null, 1) + '\n');
}

/** Read side: the comparisons in memory, images fetched one at a time by id. */
export class ProcessedStore {
  private constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly comparisons: readonly StoredComparison[],
    private readonly shards: Array<{ file: OpenedFile; metadata: FileMetaData }>,
    private readonly where: Map<string, number>,
  ) {}

  static async open(dir: string): Promise<ProcessedStore> {
    const manifestPath = path.join(dir, 'manifest.json');
    await requirePath('dataset', dir, 'manifest.json');
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await fsp.readFile(manifestPath, 'utf8')) as Manifest;
    } catch (err) {
      throw new PickapicFormatError(`${manifestPath}: cannot read the processed dataset's manifest (${(err as Error).message}); create it with 'cli.ts import --out ${dir}'`);
    }
    if (manifest.format !== FORMAT_NAME) throw new PickapicFormatError(`${manifestPath}: format is ${JSON.stringify(manifest.format)}, expected "${FORMAT_NAME}"`);
    if (manifest.version !== FORMAT_VERSION) throw new PickapicFormatError(`${manifestPath}: version ${manifest.version} is not supported (this reader knows ${FORMAT_VERSION})`);

    const cmpFile = await openFile(path.join(dir, manifest.comparisons.file));
    const comparisons: StoredComparison[] = [];
    try {
      const meta = await readMetadata(cmpFile);
      const names = [...topLevelColumns(meta).keys()];
      for (const c of COMPARISON_COLUMNS) {
        if (!names.includes(c.name)) throw new PickapicFormatError(`${cmpFile.path}: missing column '${c.name}'`);
      }
      const rows = await readRows(cmpFile, meta, COMPARISON_COLUMNS.map((c) => c.name), 0, Number(meta.num_rows), false);
      for (const r of rows) {
        comparisons.push({
          userId: r.user_id as string,
          prompt: r.prompt as string,
          image0: r.image0_id as string,
          image1: r.image1_id as string,
          label0: r.label0 as number,
          rankingId: (r.ranking_id as string | null) ?? null,
          source: r.source as string,
          p0: (r.p0 as number | null) ?? null,
          populationPick0: (r.population_pick0 as boolean | null) ?? null,
        });
      }
    } finally {
      await cmpFile.close();
    }

    const shards: Array<{ file: OpenedFile; metadata: FileMetaData }> = [];
    const where = new Map<string, number>();
    for (const name of manifest.images.shards) {
      const file = await openFile(path.join(dir, name));
      const metadata = await readMetadata(file);
      const ids = await readRows(file, metadata, ['id'], 0, Number(metadata.num_rows), false);
      const shard = shards.length;
      ids.forEach((r, row) => where.set(r.id as string, shard * 2 ** 32 + row));
      shards.push({ file, metadata });
    }
    for (const c of comparisons) {
      for (const id of [c.image0, c.image1]) {
        if (!where.has(id)) throw new PickapicFormatError(`${dir}: comparison ${c.source} refers to image ${id}, which no image shard holds`);
      }
    }
    return new ProcessedStore(dir, manifest, comparisons, shards, where);
  }

  async readSplit(split: SplitName): Promise<SplitIndex | null> {
    const file = this.manifest.splits[split];
    if (!file) return null;
    const index = JSON.parse(await fsp.readFile(path.join(this.dir, file), 'utf8')) as SplitIndex;
    if (index.split !== split) throw new PickapicFormatError(`${file}: holds split '${index.split}', expected '${split}'`);
    return index;
  }

  hasImage(id: string): boolean {
    return this.where.has(id);
  }

  async imageBytes(id: string): Promise<Uint8Array> {
    const loc = this.where.get(id);
    if (loc === undefined) throw new Error(`image ${id} is not in ${this.dir}`);
    const shard = this.shards[Math.floor(loc / 2 ** 32)];
    const row = loc % 2 ** 32;
    const [r] = await readRows(shard.file, shard.metadata, ['bytes'], row, row + 1, true);
    const bytes = r?.bytes;
    if (!(bytes instanceof Uint8Array)) throw new Error(`image ${id}: no bytes at ${shard.file.path} row ${row}`);
    return bytes;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.file.close()));
    this.shards.length = 0;
  }
}
