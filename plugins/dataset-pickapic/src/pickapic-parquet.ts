/**
 * Reader 1: Pick-a-Pic v2 parquet shards as published (SPEC §6). The train split is 322 GB in
 * ~2 GB shards, so a shard is streamed: footer first, then one row group at a time (and, when
 * the writer left offset indexes, a few hundred rows at a time inside a row group), reading only
 * the columns we use. Peak memory is one batch of rows, whatever the file size.
 *
 * The schema is checked before any row is read: a missing column or a column of the wrong type is
 * an error naming the file and the column, not a crash in the middle of the split.
 */
import type { FileMetaData, SchemaElement } from './esm';
import { PickapicFormatError, canReadInBatches, openFile, readMetadata, readRows, rowGroupStarts, topLevelColumns, type OpenedFile } from './parquet-io';

/** One published row, reduced to what the import uses. Nulls are kept: the importer counts them. */
export interface PickapicRow {
  /** `file:row` (row = 0-based position in the file), for messages. */
  readonly where: string;
  readonly userId: string | null;
  readonly prompt: string | null;
  readonly label0: number | null;
  readonly hasLabel: boolean | null;
  readonly areDifferent: boolean | null;
  readonly jpg0: Uint8Array | null;
  readonly jpg1: Uint8Array | null;
  readonly rankingId: string | null;
  readonly image0Uid: string | null;
  readonly image1Uid: string | null;
  readonly model0: string | null;
  readonly model1: string | null;
}

type Kind = 'bool' | 'string' | 'binary' | 'float' | 'int' | 'id';
const KIND_TEXT: Record<Kind, string> = {
  bool: 'BOOLEAN',
  string: 'a UTF8 string (BYTE_ARRAY)',
  binary: 'binary (BYTE_ARRAY, or a struct with a binary "bytes" field)',
  float: 'DOUBLE or FLOAT',
  int: 'INT64 or INT32',
  id: 'INT64, INT32 or a string',
};

/** Columns the import needs, with their published types; optional ones may be absent. */
export const PICKAPIC_COLUMNS: ReadonlyArray<{ name: string; kind: Kind; required: boolean }> = [
  { name: 'are_different', kind: 'bool', required: true },
  { name: 'caption', kind: 'string', required: true },
  { name: 'has_label', kind: 'bool', required: true },
  { name: 'jpg_0', kind: 'binary', required: true },
  { name: 'jpg_1', kind: 'binary', required: true },
  { name: 'label_0', kind: 'float', required: true },
  { name: 'user_id', kind: 'id', required: true },
  { name: 'ranking_id', kind: 'id', required: false },
  { name: 'image_0_uid', kind: 'string', required: false },
  { name: 'image_1_uid', kind: 'string', required: false },
  { name: 'model_0', kind: 'string', required: false },
  { name: 'model_1', kind: 'string', required: false },
];

function typeText(el: SchemaElement): string {
  if (el.num_children) return 'a struct';
  const logical = el.logical_type?.type ?? el.converted_type;
  return `${el.type}${logical ? ` (${logical})` : ''}`;
}

function isString(el: SchemaElement): boolean {
  return el.type === 'BYTE_ARRAY' && (el.converted_type === 'UTF8' || el.logical_type?.type === 'STRING');
}

function matches(kind: Kind, el: SchemaElement, children: SchemaElement[]): boolean {
  switch (kind) {
    case 'bool':
      return el.type === 'BOOLEAN';
    case 'string':
      return isString(el);
    case 'binary':
      if (el.num_children) return children.some((c) => c.name === 'bytes' && c.type === 'BYTE_ARRAY');
      return el.type === 'BYTE_ARRAY' && !isString(el);
    case 'float':
      return el.type === 'DOUBLE' || el.type === 'FLOAT';
    case 'int':
      return el.type === 'INT64' || el.type === 'INT32';
    case 'id':
      return el.type === 'INT64' || el.type === 'INT32' || isString(el);
  }
}

/** Throws a PickapicFormatError naming every missing or mistyped column; returns the columns to read. */
export function checkPickapicSchema(path: string, metadata: FileMetaData): string[] {
  const top = topLevelColumns(metadata);
  const flat = metadata.schema;
  const problems: string[] = [];
  const read: string[] = [];
  for (const col of PICKAPIC_COLUMNS) {
    const el = top.get(col.name);
    if (!el) {
      if (col.required) problems.push(`missing column '${col.name}' (expected ${KIND_TEXT[col.kind]})`);
      continue;
    }
    const at = flat.indexOf(el);
    const children = el.num_children ? flat.slice(at + 1, at + 1 + el.num_children) : [];
    if (!matches(col.kind, el, children)) {
      problems.push(`column '${col.name}' is ${typeText(el)}, expected ${KIND_TEXT[col.kind]}`);
      continue;
    }
    read.push(col.name);
  }
  if (problems.length) {
    const found = [...top.keys()].join(', ');
    throw new PickapicFormatError(`${path}: not a Pick-a-Pic v2 shard: ${problems.join('; ')} (columns found: ${found})`);
  }
  return read;
}

const asString = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v));
const asId = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const asBool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);
const asNumber = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null);
function asBytes(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v;
  if (v && typeof v === 'object' && (v as { bytes?: unknown }).bytes instanceof Uint8Array) return (v as { bytes: Uint8Array }).bytes;
  return null;
}

export interface ParquetBatch {
  readonly rows: PickapicRow[];
  /** Row group being read and how many there are (for progress). */
  readonly rowGroup: number;
  readonly rowGroups: number;
  /** Bytes read from the file so far. */
  readonly bytesRead: number;
  /** With `skipBadRowGroups`: rows [rowStart, rowEnd) of this row group could not be read and were
   *  left out (then `rows` is empty); the reader goes on with the next row group. */
  readonly lost?: { rowStart: number; rowEnd: number; error: string };
}

export interface PickapicShard {
  readonly path: string;
  readonly rows: number;
  readonly rowGroups: number;
  readonly byteLength: number;
  /** Streams the rows in file order, `batchRows` at most per batch where the file allows it. A
   *  row group that cannot be read throws a PickapicFormatError naming the file, the rows and the
   *  row group; with `skipBadRowGroups` it yields a `lost` batch for the rest of that row group
   *  instead and goes on. */
  batches(batchRows?: number, opts?: { skipBadRowGroups?: boolean }): AsyncGenerator<ParquetBatch>;
  close(): Promise<void>;
}

/** Opens a shard and checks its footer and schema (nothing else is read yet). */
export async function openPickapicShard(path: string): Promise<PickapicShard> {
  const file: OpenedFile = await openFile(path);
  let metadata: FileMetaData;
  let columns: string[];
  try {
    metadata = await readMetadata(file);
    columns = checkPickapicSchema(path, metadata);
  } catch (err) {
    await file.close();
    throw err;
  }
  const starts = rowGroupStarts(metadata);
  const name = path.split(/[\\/]/).pop() ?? path;
  async function* batches(batchRows = 256, opts: { skipBadRowGroups?: boolean } = {}): AsyncGenerator<ParquetBatch> {
    for (let g = 0; g < metadata.row_groups.length; g++) {
      const groupRows = Number(metadata.row_groups[g].num_rows);
      // Without offset indexes a row range still costs the whole column chunk: read the group once.
      const paged = canReadInBatches(metadata, g, columns);
      const step = paged ? Math.max(1, batchRows) : groupRows;
      for (let off = 0; off < groupRows; off += step) {
        const rowStart = starts[g] + off;
        const rowEnd = Math.min(starts[g] + groupRows, rowStart + step);
        let objects: Array<Record<string, unknown>>;
        try {
          objects = await readRows(file, metadata, columns, rowStart, rowEnd, paged);
          if (objects.length !== rowEnd - rowStart) throw new Error(`${objects.length} rows decoded, ${rowEnd - rowStart} expected`);
        } catch (err) {
          const message = err instanceof PickapicFormatError ? err.message.replace(`${path}: `, '') : (err as Error).message;
          if (!opts.skipBadRowGroups) {
            throw new PickapicFormatError(`${path}: rows ${rowStart}-${rowEnd - 1} (row group ${g}) unreadable: ${message} (--skip-bad-row-groups skips such a row group and counts its rows)`);
          }
          // The rest of this row group is lost; earlier batches of it were already good.
          yield { rows: [], rowGroup: g, rowGroups: metadata.row_groups.length, bytesRead: file.bytesRead(), lost: { rowStart, rowEnd: starts[g] + groupRows, error: message } };
          break;
        }
        const rows = objects.map((o, i): PickapicRow => ({
          where: `${name}:${rowStart + i}`,
          userId: asId(o.user_id),
          prompt: asString(o.caption),
          label0: asNumber(o.label_0),
          hasLabel: asBool(o.has_label),
          areDifferent: asBool(o.are_different),
          jpg0: asBytes(o.jpg_0),
          jpg1: asBytes(o.jpg_1),
          rankingId: asId(o.ranking_id),
          image0Uid: asString(o.image_0_uid),
          image1Uid: asString(o.image_1_uid),
          model0: asString(o.model_0),
          model1: asString(o.model_1),
        }));
        yield { rows, rowGroup: g, rowGroups: metadata.row_groups.length, bytesRead: file.bytesRead() };
      }
    }
  }
  return {
    path,
    rows: Number(metadata.num_rows),
    rowGroups: metadata.row_groups.length,
    byteLength: file.byteLength,
    batches,
    close: () => file.close(),
  };
}
