/**
 * Reader 1 against parquet written by two independent writers (pyarrow, as the published shards
 * were, and DuckDB), compared with the values pandas read (expected.json); and every kind of bad
 * file gives a message naming the file and the fault.
 */
import * as fs from 'fs';
import * as path from 'path';
import { imageId } from '../src/images';
import { PickapicFormatError, canReadInBatches, openFile, readMetadata } from '../src/parquet-io';
import { openPickapicShard, type PickapicRow } from '../src/pickapic-parquet';
import { expected, fixture, tmpDir } from './helpers';

async function readAll(file: string, batchRows?: number): Promise<{ rows: PickapicRow[]; groups: Set<number>; batches: number }> {
  const shard = await openPickapicShard(file);
  const rows: PickapicRow[] = [];
  const groups = new Set<number>();
  let batches = 0;
  try {
    for await (const b of shard.batches(batchRows)) {
      rows.push(...b.rows);
      groups.add(b.rowGroup);
      batches++;
    }
  } finally {
    await shard.close();
  }
  return { rows, groups, batches };
}

describe.each([
  ['pyarrow', 'pickapic_pyarrow.parquet', expected.pyarrow_row_groups],
  ['duckdb', 'pickapic_duckdb.parquet', expected.duckdb_row_groups],
])('Pick-a-Pic v2 parquet written by %s', (_writer, file, rowGroups) => {
  it('yields every row with the values pandas read', async () => {
    const { rows, groups } = await readAll(fixture(file));
    expect(groups.size).toBe(rowGroups);
    expect(rows).toHaveLength(expected.rows.length);
    rows.forEach((r, i) => {
      const e = expected.rows[i];
      expect(r.where).toBe(`${file}:${i}`);
      expect(r.userId).toBe(e.user_id);
      expect(r.prompt).toBe(e.caption);
      expect(r.label0).toBe(e.label_0);
      expect(r.hasLabel).toBe(e.has_label);
      expect(r.areDifferent).toBe(e.are_different);
      expect(r.rankingId).toBe(String(e.ranking_id));
      expect(r.image0Uid).toBe(e.image_0_uid);
      expect(r.jpg0!.byteLength).toBe(e.jpg_0_len);
      expect(imageId(r.jpg0!)).toBe(e.jpg_0_sha256);
      expect(imageId(r.jpg1!)).toBe(e.jpg_1_sha256);
    });
  });
});

describe('streaming', () => {
  it('reads bounded batches that never cross a row group, rows in file order', async () => {
    const whole = await readAll(fixture('pickapic_pyarrow.parquet'), 1000);
    const shard = await openPickapicShard(fixture('pickapic_pyarrow.parquet'));
    const rows: string[] = [];
    for await (const b of shard.batches(3)) {
      expect(b.rows.length).toBeLessThanOrEqual(3);
      // pyarrow wrote row groups of 4 rows: a batch lies inside one
      const first = Number(b.rows[0].where.split(':')[1]);
      const last = Number(b.rows[b.rows.length - 1].where.split(':')[1]);
      expect(Math.floor(first / 4)).toBe(Math.floor(last / 4));
      expect(b.rowGroup).toBe(Math.floor(first / 4));
      rows.push(...b.rows.map((r) => r.where));
    }
    await shard.close();
    expect(rows).toEqual(whole.rows.map((r) => r.where));
    expect(whole.batches).toBe(expected.pyarrow_row_groups);
  });

  it('reads a whole row group at once when its chunks are big and have no offset index (a row range would re-read them)', async () => {
    const file = await openFile(fixture('pickapic_pyarrow.parquet'));
    const meta = await readMetadata(file);
    await file.close();
    const cols = ['caption', 'jpg_0'];
    expect(meta.row_groups[0].columns.some((c) => c.offset_index_offset)).toBe(false);
    expect(canReadInBatches(meta, 0, cols)).toBe(true); // small chunks: cheap to re-read
    expect(canReadInBatches(meta, 0, cols, 100)).toBe(false); // "big" chunks without offset index
  });
});

describe('bad input files', () => {
  it('names a missing column', async () => {
    await expect(openPickapicShard(fixture('bad_missing_column.parquet'))).rejects.toThrow(/bad_missing_column\.parquet: not a Pick-a-Pic v2 shard: missing column 'jpg_1'/);
  });
  it('names a column of the wrong type, with what it is and what was expected', async () => {
    await expect(openPickapicShard(fixture('bad_wrong_type.parquet'))).rejects.toThrow(/bad_wrong_type\.parquet: .*column 'label_0' is BYTE_ARRAY \(STRING\), expected DOUBLE or FLOAT/);
  });
  it('says an empty file is empty', async () => {
    await expect(openPickapicShard(fixture('bad_empty.parquet'))).rejects.toThrow(/bad_empty\.parquet: file is empty \(0 bytes\)/);
  });
  it('says a truncated file is truncated', async () => {
    const err = await openPickapicShard(fixture('bad_truncated.parquet')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PickapicFormatError);
    expect((err as Error).message).toMatch(/bad_truncated\.parquet: parquet footer missing .*truncated/);
  });
  it('says a file that is not parquet at all is not parquet', async () => {
    const dir = tmpDir('notparquet');
    const f = path.join(dir, 'x.parquet');
    fs.writeFileSync(f, 'hello, this is a text file and not parquet');
    await expect(openPickapicShard(f)).rejects.toThrow(/x\.parquet: not a parquet file \(starts with "hell"/);
  });
});
