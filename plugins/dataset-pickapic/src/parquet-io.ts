/**
 * Parquet plumbing shared by the readers and the processed store: a file-handle AsyncBuffer
 * (hyparquet asks for byte ranges; we pread exactly those, so a 2 GB shard is never read whole),
 * decompressors for the codecs other writers use (pyarrow: snappy; DuckDB: snappy/gzip/zstd),
 * and a row-group-at-a-time file writer over hyparquet-writer.
 */
import { promises as fsp } from 'fs';
import * as zlib from 'zlib';
import { hyparquet, hyparquetWriter, type AsyncBuffer, type ColumnSource, type FileMetaData, type SchemaElement } from './esm';

/** An input file that is not what it should be; the message names the file and the fault. */
export class PickapicFormatError extends Error {
  /** A user-facing failure: printed as one line by the runners (see isExpectedError in core). */
  readonly expected = true;
  constructor(message: string) {
    super(message);
    this.name = 'PickapicFormatError';
  }
}

export interface OpenedFile {
  readonly path: string;
  readonly buffer: AsyncBuffer;
  readonly byteLength: number;
  /** Bytes read through `buffer` so far (for throughput reports). */
  bytesRead(): number;
  close(): Promise<void>;
}

/** Opens `path` for ranged reads. Each `slice` is one positioned read of just that range. */
export async function openFile(path: string): Promise<OpenedFile> {
  const fh = await fsp.open(path, 'r');
  const { size } = await fh.stat();
  let read = 0;
  const buffer: AsyncBuffer = {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = Math.min(end ?? size, size);
      const length = Math.max(0, stop - start);
      const out = new ArrayBuffer(length);
      const view = new Uint8Array(out);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(view, done, length - done, start + done);
        if (bytesRead === 0) throw new PickapicFormatError(`${path}: unexpected end of file at byte ${start + done} (file is ${size} bytes)`);
        done += bytesRead;
      }
      read += length;
      return out;
    },
  };
  return { path, buffer, byteLength: size, bytesRead: () => read, close: () => fh.close() };
}

/** Decompressors beyond hyparquet's built-in snappy, from Node's zlib. */
export const decompressors: Record<string, (input: Uint8Array, outputLength: number) => Uint8Array> = {
  GZIP: (input) => new Uint8Array(zlib.gunzipSync(input)),
  BROTLI: (input) => new Uint8Array(zlib.brotliDecompressSync(input)),
  ...(typeof (zlib as unknown as Record<string, unknown>).zstdDecompressSync === 'function'
    ? { ZSTD: (input: Uint8Array) => new Uint8Array((zlib as unknown as { zstdDecompressSync(b: Uint8Array): Buffer }).zstdDecompressSync(input)) }
    : {}),
};

/** Reads the footer of an opened file, with a message that says what is wrong with a bad file. */
export async function readMetadata(file: OpenedFile): Promise<FileMetaData> {
  if (file.byteLength === 0) throw new PickapicFormatError(`${file.path}: file is empty (0 bytes), not a parquet file`);
  if (file.byteLength < 12) throw new PickapicFormatError(`${file.path}: only ${file.byteLength} bytes, too short to be a parquet file`);
  const head = new Uint8Array(await file.buffer.slice(0, 4));
  const tail = new Uint8Array(await file.buffer.slice(file.byteLength - 4, file.byteLength));
  const magic = (b: Uint8Array) => String.fromCharCode(...b);
  if (magic(head) !== 'PAR1') throw new PickapicFormatError(`${file.path}: not a parquet file (starts with ${JSON.stringify(magic(head))}, expected "PAR1")`);
  if (magic(tail) !== 'PAR1') {
    throw new PickapicFormatError(`${file.path}: parquet footer missing (file ends with ${JSON.stringify(magic(tail))}, expected "PAR1"): the file is truncated or still being written`);
  }
  try {
    return await hyparquet.parquetMetadataAsync(file.buffer);
  } catch (err) {
    throw new PickapicFormatError(`${file.path}: parquet footer unreadable (${(err as Error).message})`);
  }
}

/** Row offset of each row group. */
export function rowGroupStarts(metadata: FileMetaData): number[] {
  const starts: number[] = [];
  let at = 0;
  for (const rg of metadata.row_groups) {
    starts.push(at);
    at += Number(rg.num_rows);
  }
  return starts;
}

/**
 * Whether rows of group `group` can be read a few at a time: every chunk of `columns` either has
 * an offset index (page locations, so a row range reads only its pages) or is small enough
 * (<= `smallBytes`) that re-reading it whole for each batch costs little. Writers omit the
 * offset index of single-page chunks.
 */
export function canReadInBatches(metadata: FileMetaData, group: number, columns: string[], smallBytes = 4 << 20): boolean {
  return metadata.row_groups[group].columns.every((c) => {
    const name = c.meta_data?.path_in_schema[0];
    if (name === undefined || !columns.includes(name)) return true;
    return (!!c.offset_index_offset && !!c.offset_index_length) || Number(c.meta_data?.total_compressed_size ?? Infinity) <= smallBytes;
  });
}

/** Reads rows [rowStart, rowEnd) of `columns` as objects. Binary stays binary (utf8: false). */
export async function readRows(file: OpenedFile, metadata: FileMetaData, columns: string[], rowStart: number, rowEnd: number, useOffsetIndex: boolean): Promise<Array<Record<string, unknown>>> {
  return (await hyparquet.parquetReadObjects({
    file: file.buffer,
    metadata,
    columns,
    rowStart,
    rowEnd,
    utf8: false,
    useOffsetIndex,
    compressors: decompressors,
  })) as Array<Record<string, unknown>>;
}

/** Top-level columns of a file's schema, by name. */
export function topLevelColumns(metadata: FileMetaData): Map<string, SchemaElement> {
  const tree = hyparquet.parquetSchema(metadata);
  return new Map(tree.children.map((c) => [c.element.name, c.element]));
}

export interface ColumnSpec {
  name: string;
  type: 'STRING' | 'BYTE_ARRAY' | 'INT32' | 'INT64' | 'DOUBLE' | 'BOOLEAN' | 'TIMESTAMP';
  nullable?: boolean;
  /** Per-column codec; images (already compressed) are best UNCOMPRESSED. */
  codec?: 'SNAPPY' | 'UNCOMPRESSED';
  /** Statistics of big binary columns cost time and say nothing. Default true. */
  statistics?: boolean;
}

/**
 * Writes a parquet file one row group at a time, so memory holds one row group, never the file.
 * Every chunk gets an offset index, which is what makes single-row random access cheap.
 */
export class ParquetFileWriter {
  private readonly writer: InstanceType<typeof hyparquetWriter.ParquetWriter>;
  private rows = 0;
  private readonly fileWriter: ReturnType<typeof hyparquetWriter.fileWriter>;

  constructor(readonly path: string, private readonly columns: ColumnSpec[], kvMetadata?: Record<string, string>) {
    this.fileWriter = hyparquetWriter.fileWriter(path);
    const schema = hyparquetWriter.schemaFromColumnData({
      columnData: columns.map((c) => ({ name: c.name, data: [], type: c.type, nullable: c.nullable ?? false })),
    });
    this.writer = new hyparquetWriter.ParquetWriter({
      writer: this.fileWriter,
      schema,
      codec: 'SNAPPY',
      kvMetadata: kvMetadata ? Object.entries(kvMetadata).map(([key, value]) => ({ key, value })) : undefined,
      createdBy: '@userpref/dataset-pickapic',
    });
  }

  /** Appends one row group; `data[name]` are the column values, all of the same length. */
  writeRowGroup(data: Record<string, unknown[]>, pageSize?: number): void {
    const n = data[this.columns[0].name]?.length ?? 0;
    if (n === 0) return;
    const columnData: ColumnSource[] = this.columns.map((c) => {
      const values = data[c.name];
      if (!values || values.length !== n) throw new Error(`${this.path}: column '${c.name}' has ${values?.length ?? 0} values, expected ${n}`);
      return { name: c.name, data: values, codec: c.codec, statistics: c.statistics ?? true } as ColumnSource;
    });
    void this.writer.write({ columnData, rowGroupSize: n, pageSize });
    this.rows += n;
  }

  get rowCount(): number {
    return this.rows;
  }

  get bytesWritten(): number {
    return this.fileWriter.offset;
  }

  finish(): void {
    void this.writer.finish();
  }
}
