/**
 * `import` of the pyarrow and DuckDB fixtures: the reconciliation and the kept comparisons equal
 * what the Python script computed with pandas + PIL (expected.json), images are stored once under
 * their sha256, corrupt images skip their row with a counted warning naming it, and the processed
 * files are plain parquet / JSON.
 */
import * as fs from 'fs';
import * as path from 'path';
import { memoryLogger } from '@userpref/core';
import { decodeRgb } from '../src/images';
import { importDataset } from '../src/import';
import { ProcessedStore, dislikedOf, likedOf } from '../src/store';
import { PickapicDataset } from '../src/dataset';
import { expected, fixture, options, tmpDir } from './helpers';

describe.each(['pickapic_pyarrow.parquet', 'pickapic_duckdb.parquet'])('import %s', (file) => {
  const out = tmpDir('import');
  const log = memoryLogger();
  let result: Awaited<ReturnType<typeof importDataset>>;
  beforeAll(async () => {
    // The fixture's name says no split: re-split it.
    result = await importDataset({ from: [fixture(file)], out, logger: log, seed: 3, splitProtocol: 'by-comparison' });
  });

  it('reconciles: rows read = rows kept + each skip reason, as computed by pandas + PIL', () => {
    const r = result.reconciliation;
    expect(r.read).toBe(expected.reconciliation.read);
    expect(r.kept).toBe(expected.reconciliation.kept);
    for (const [reason, n] of Object.entries(expected.reconciliation.skipped)) expect(r.skipped[reason]).toBe(n);
    expect(r.read).toBe(r.kept + Object.values(r.skipped).reduce((a, b) => a + b, 0));
    const rec = log.records.find((x) => x.message === 'import: reconciliation');
    expect(rec?.fields).toMatchObject({ rowsRead: expected.reconciliation.read, rowsKept: expected.reconciliation.kept, skipped_tie: 1, skipped_corrupt_image: 2 });
  });

  it('keeps exactly the expected comparisons with sha256 image ids and liked/disliked from label_0', async () => {
    const store = await ProcessedStore.open(out);
    try {
      expect(store.comparisons.map((c) => ({
        ranking_id: Number(c.rankingId), user_id: c.userId, prompt: c.prompt, image0: c.image0, image1: c.image1, label0: c.label0, liked: likedOf(c), disliked: dislikedOf(c),
      }))).toEqual(expected.kept);
      // each distinct image once, bytes intact
      expect(store.manifest.images.count).toBe(expected.distinct_kept_images);
      for (const id of new Set(expected.kept.flatMap((k) => [k.image0, k.image1]))) {
        const bytes = await store.imageBytes(id);
        expect(require('crypto').createHash('sha256').update(bytes).digest('hex')).toBe(id);
      }
    } finally {
      await store.close();
    }
  });

  it('names each skipped row (file:row, ranking_id, user) and why in skipped.jsonl, and warns about corrupt images by row', () => {
    const lines = fs.readFileSync(path.join(out, 'skipped.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const byRow = expected.rows
      .map((r, i) => ({ where: `${file}:${i}`, ranking_id: String(r.ranking_id), user_id: r.user_id, reason: r.skip }))
      .filter((r) => r.reason);
    expect(lines.map((l) => ({ where: l.where, ranking_id: l.ranking_id, user_id: l.user_id, reason: l.reason }))).toEqual(byRow);
    const warns = log.records.filter((r) => r.level === 'warn').map((r) => r.message);
    const at = (i: number) => `${file.replace('.', '\\.')}:${i} \\(ranking_id ${expected.rows[i].ranking_id}, user ${expected.rows[i].user_id}\\)`;
    expect(warns).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`skipped row ${at(10)}: corrupt_image \\(jpg_1 \\(image [0-9a-f]{12}\\) does not decode`)), expect.stringMatching(new RegExp(`${at(11)}: corrupt_image \\(jpg_0`))]));
  });

  it('stores decodable pixels: each image resized (stretched) to the asked size, colours as PIL decoded them', async () => {
    const store = await ProcessedStore.open(out);
    try {
      for (const [id, info] of Object.entries(expected.images)) {
        if (!store.hasImage(id)) continue;
        const img = await decodeRgb(await store.imageBytes(id), 16, id);
        expect([img.width, img.height, img.data.length]).toEqual([16, 16, 16 * 16 * 3]);
        const tol = info.format === 'JPEG' ? 6 : 1;
        for (let y = 0; y < 16; y++) {
          for (const [x, want] of [[0, info.left], [15, info.right]] as const) {
            const px = Array.from(img.data.subarray((y * 16 + x) * 3, (y * 16 + x) * 3 + 3));
            px.forEach((v, c) => expect(Math.abs(v - want[c])).toBeLessThanOrEqual(tol));
          }
        }
      }
    } finally {
      await store.close();
    }
  });
});

describe('ties', () => {
  it('--keep-ties keeps them as evaluation-only targets; tiePolicy decides whether evaluation sees them', async () => {
    const out = tmpDir('ties');
    const r = await importDataset({ from: [fixture('pickapic_pyarrow.parquet')], out, logger: memoryLogger(), keepTies: true, splitProtocol: 'by-comparison', validationFraction: 0.3, testFraction: 0.3 });
    expect(r.reconciliation.skipped.tie).toBe(0);
    expect(r.reconciliation.kept).toBe(expected.reconciliation.kept + expected.ties.length);
    expect(r.manifest.comparisons.ties).toBe(1);
    const store = await ProcessedStore.open(out);
    const tieIndex = store.comparisons.findIndex((c) => c.label0 === 0.5);
    expect(Number(store.comparisons[tieIndex].rankingId)).toBe(expected.ties[0]);
    const train = (await store.readSplit('train'))!;
    expect(train.examples.some(([t]) => t === tieIndex)).toBe(false);
    for (const s of ['train', 'validation', 'test'] as const) {
      for (const pool of (await store.readSplit(s))!.pools) expect(pool).not.toContain(tieIndex);
    }
    await store.close();
    const held = async (tiePolicy: 'drop' | 'keep') => {
      const ds = new PickapicDataset(options(out, { refPairNum: 1, tiePolicy, tooFewReferences: 'fewer' }), { seed: 1, baseDir: '/' });
      await ds.init();
      const targets = [...ds.split('validation').targets(), ...ds.split('test').targets()];
      const stats = ds.stats('validation').skippedTies + ds.stats('test').skippedTies;
      await ds.close();
      return { hasTie: targets.includes(tieIndex), stats };
    };
    expect(await held('drop')).toEqual({ hasTie: false, stats: 1 });
    expect(await held('keep')).toEqual({ hasTie: true, stats: 0 });
  });
});

describe('images that fail later', () => {
  it('decode() names the image id when its bytes are corrupt', async () => {
    const bad = fs.readFileSync(fixture('pickapic_pyarrow.parquet')).subarray(0, 50);
    await expect(decodeRgb(bad, 8, 'deadbeef')).rejects.toThrow(/cannot decode image deadbeef: /);
  });
});

describe('bad input files stop the import before any work, with the file named', () => {
  it.each([
    ['bad_missing_column.parquet', /missing column 'jpg_1'/],
    ['bad_wrong_type.parquet', /column 'label_0' is BYTE_ARRAY/],
    ['bad_empty.parquet', /file is empty/],
    ['bad_truncated.parquet', /footer missing/],
  ])('%s', async (name, message) => {
    const out = tmpDir('badimport');
    await expect(importDataset({ from: [fixture('pickapic_pyarrow.parquet'), fixture(name)], out, split: 'train', logger: memoryLogger() })).rejects.toThrow(message);
    expect(fs.existsSync(path.join(out, 'manifest.json'))).toBe(false);
  });
});
