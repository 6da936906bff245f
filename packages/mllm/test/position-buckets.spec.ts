/**
 * Vision position buckets against transformers for every grid and every patch count: the table
 * (fixtures/position_buckets.bin.gz) was read off transformers' Idefics2VisionEmbeddings
 * on CPU torch by goldens/make_position_bucket_table.py.
 */
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import * as path from 'path';
import { gunzipSync } from 'zlib';
import { bucketPosition, patchLayout, positionBoundaries } from '../src/vision';

const GOLDEN_DIR = path.join(__dirname, 'fixtures');

const meta = JSON.parse(readFileSync(path.join(GOLDEN_DIR, 'position_buckets.json'), 'utf8')) as {
  max_per_side: number;
  max_count: number;
  bytes: number;
  sha256: string;
};
const table = gunzipSync(readFileSync(path.join(GOLDEN_DIR, 'position_buckets.bin.gz')));

/** Offset of (P, n = 1) in the table: P-major, then n, then i < n. */
const perSideBytes = (meta.max_count * (meta.max_count + 1)) / 2;
const at = (P: number, n: number, i: number) => (P - 1) * perSideBytes + ((n - 1) * n) / 2 + i;

describe('vision position buckets vs transformers (every grid P <= 128, every count n <= 128)', () => {
  it('the table is the one the script wrote', () => {
    expect(table.length).toBe(meta.bytes);
    expect(createHash('sha256').update(table).digest('hex')).toBe(meta.sha256);
    expect([meta.max_per_side, meta.max_count]).toEqual([128, 128]);
  });

  it('bucketPosition(i, n, P) equals the table for every P, n and i', () => {
    const wrong: string[] = [];
    let checked = 0;
    for (let P = 1; P <= meta.max_per_side; P++) {
      for (let n = 1; n <= meta.max_count; n++) {
        for (let i = 0; i < n; i++) {
          const want = table[at(P, n, i)];
          const got = bucketPosition(i, n, P);
          checked++;
          if (got !== want && wrong.length < 10) wrong.push(`P ${P} n ${n} i ${i}: ours ${got}, transformers ${want}`);
        }
      }
    }
    expect(checked).toBe(meta.bytes);
    expect(wrong).toEqual([]);
  });

  it('the case of the issue: P = 19, boundary 11 is 0.63157898 (not float(12/19)), so patch 12 of a 19 x 19 grid is in bucket 11', () => {
    const b = positionBoundaries(19);
    expect(b.length).toBe(19); // ceil((1 - 1/19) / (1/19)) = 19 in double: the last boundary is 1.0
    expect(b[11]).toBe(Math.fround(0.63157898));
    expect(b[11]).not.toBe(Math.fround(12 / 19));
    // coord 12 * float(1/19) lies between float(12/19) and torch's boundary: transformers puts patch
    // 12 in bucket 11 (position id 11 twice, 12 never); bucketing against float(1/19 + k/19) gave 12.
    const row = Array.from({ length: 19 }, (_, i) => table[at(19, 19, i)]);
    expect(row).toEqual(Array.from({ length: 19 }, (_, i) => (i === 12 ? 11 : i)));
    expect(Array.from({ length: 19 }, (_, i) => bucketPosition(i, 19, 19))).toEqual(row);
  });

  it('patchLayout combines row and column buckets as transformers does (13 x 19 real patches of a 19 x 19 grid)', () => {
    const patch = 2;
    const H = 19 * patch;
    const W = 19 * patch;
    const mask = new Uint8Array(H * W);
    for (let y = 0; y < 13 * patch; y++) mask.fill(1, y * W, (y + 1) * W);
    const { valid, positionIds } = patchLayout(mask, 1, H, W, patch, 19);
    for (let r = 0; r < 19; r++) {
      for (let c = 0; c < 19; c++) {
        const k = r * 19 + c;
        expect(valid[k]).toBe(r < 13 ? 1 : 0);
        expect(positionIds[k]).toBe(r < 13 ? table[at(19, 13, r)] * 19 + table[at(19, 19, c)] : 0);
      }
    }
  });
});
