/**
 * Reader 2: the paper's processed release (pandas DataFrame pickles, protocol 4 and 5, made by
 * pandas in goldens/make_parquet_fixtures.py) through @userpref/pickle, and its import:
 * targets and references become comparisons, training draws references, evaluation takes the
 * first ones in order (SPEC §6).
 */
import * as fs from 'fs';
import * as path from 'path';
import { memoryLogger } from '@userpref/core';
import { PickapicDataset } from '../src/dataset';
import { imageId } from '../src/images';
import { importDataset } from '../src/import';
import { paperRowBatches, readPaperPickle, rowImageBytes } from '../src/paper-pickle';
import { expected, fixture, options, tmpDir } from './helpers';

describe.each([4, 5])('paper release pickled with protocol %i', (protocol) => {
  const file = fixture(`paper_p${protocol}.pkl`);

  it('reads every row as pandas wrote it', async () => {
    const frame = await readPaperPickle(file);
    const rows = frame.rows(0, frame.length);
    frame.close();
    expect(() => frame.rows(0, 1)).toThrow(/after the file was closed/);
    expect(rows.length).toBe(expected.paper.length);
    rows.forEach((r, i) => {
      const e = expected.paper[i];
      expect(r.userId).toBe(e.user_id);
      expect(r.prompt).toBe(e.prompt);
      expect(r.label0).toBe(e.label0);
      expect(imageId(r.image0!)).toBe(e.image0);
      expect(imageId(r.image1!)).toBe(e.image1);
      expect(r.liked.map((b) => imageId(b!))).toEqual(e.liked);
      expect(r.disliked.map((b) => imageId(b!))).toEqual(e.disliked);
      expect(r.prompts).toEqual(e.reference_prompts);
    });
  });

  it('imports as a split whose examples keep their own references; evaluation takes the first ones in order', async () => {
    const dir = tmpDir('paper');
    // the fixture's name says no split: name it explicitly
    const r = await importDataset({ from: [file], out: dir, split: 'test', logger: memoryLogger() });
    expect(r.reconciliation).toEqual({ read: 4, kept: 4, skipped: expect.objectContaining({ corrupt_image: 0 }) });
    const ds = new PickapicDataset(options(dir, { refPairNum: 3 }), { seed: 42, baseDir: '/' });
    await ds.init();
    const test = ds.split('test');
    expect(test.size).toBe(4);
    for (let i = 0; i < test.size; i++) {
      const ex = await test.get(i);
      const e = expected.paper[i];
      expect(ex.userId).toBe(e.user_id);
      expect(ex.target.prompt).toBe(e.prompt);
      expect([ex.target.image0.id, ex.target.image1.id, ex.target.label0]).toEqual([e.image0, e.image1, e.label0]);
      expect(ex.references.map((p) => [p.liked.id, p.disliked.id, p.prompt])).toEqual(e.liked.slice(0, 3).map((l, j) => [l, e.disliked[j], e.reference_prompts[j]]));
      expect(ex.likedFirst).toEqual([false, false, false]);
    }
    await ds.close();
  });

  it('names the split from the release file names', async () => {
    const dir = tmpDir('paper-names');
    const named = path.join(dir, 'bench_train_w_bad_split_0.pkl');
    fs.copyFileSync(file, named);
    const r = await importDataset({ from: [named], out: path.join(dir, 'out'), logger: memoryLogger() });
    expect(r.splits.train.examples).toBe(4);
    const noName = path.join(dir, 'whatever.pkl');
    fs.copyFileSync(file, noName);
    await expect(importDataset({ from: [noName], out: path.join(dir, 'out2'), logger: memoryLogger() })).rejects.toThrow(/whatever\.pkl: cannot tell its split from the name/);
  });
});

describe('batches of release rows', () => {
  it('stop at the row that reaches the byte limit, or at the row limit', async () => {
    const frame = await readPaperPickle(fixture('paper_p5.pkl'));
    try {
      const bytes = frame.rows(0, frame.length).map(rowImageBytes);
      expect(bytes).toHaveLength(4);
      const spans = (maxRows: number, maxBytes: number) => [...paperRowBatches(frame, { maxRows, maxBytes })].map((b) => [b.start, b.rows.length]);
      expect(spans(3, Infinity)).toEqual([[0, 3], [3, 1]]);
      expect(spans(64, 1)).toEqual([[0, 1], [1, 1], [2, 1], [3, 1]]);
      // rows 0 and 1 together stay below bytes[0] + bytes[1] + 1, row 2 reaches it
      expect(spans(64, bytes[0] + bytes[1] + 1)).toEqual([[0, 3], [3, 1]]);
      expect(spans(64, bytes[0] + bytes[1])).toEqual([[0, 2], [2, 2]]);
    } finally {
      frame.close();
    }
  });

  it('do not change what is imported', async () => {
    const dir = tmpDir('paper-batches');
    const one = await importDataset({ from: [fixture('paper_p5.pkl')], out: path.join(dir, 'one'), split: 'test', batchBytes: 1, logger: memoryLogger() });
    const all = await importDataset({ from: [fixture('paper_p5.pkl')], out: path.join(dir, 'all'), split: 'test', logger: memoryLogger() });
    expect(one.reconciliation).toEqual(all.reconciliation);
    for (const f of ['comparisons.parquet', 'images-00000.parquet', 'split-test.json']) {
      expect({ f, same: fs.readFileSync(path.join(dir, 'one', f)).equals(fs.readFileSync(path.join(dir, 'all', f))) }).toEqual({ f, same: true });
    }
  });
});

describe('a release file larger than Node reads at once', () => {
  it('imports a 2 GiB+ pickle (a sparse file) as it imports the same rows from a small one', async () => {
    const dir = tmpDir('paper-big');
    const small = new Uint8Array(fs.readFileSync(fixture('paper_p5.pkl')));
    expect([small[0], small[1]]).toEqual([0x80, 5]); // PROTO 5; a FRAME follows
    // Between PROTO and the first FRAME (outside any frame, so Python reads it too): BINBYTES8 of
    // 2 GiB + 1000 bytes that are a hole in the file, then POP. The frame pickled after it is unchanged.
    const n = 2 ** 31 + 1000;
    const big = path.join(dir, 'bench_test_w_bad.pkl');
    const fd = fs.openSync(big, 'w');
    try {
      const head = Uint8Array.from([0x80, 5, 0x8e, ...new Uint8Array(new BigUint64Array([BigInt(n)]).buffer)]);
      fs.writeSync(fd, head, 0, head.length, 0);
      const rest = Uint8Array.from([0x30, ...small.subarray(2)]);
      fs.writeSync(fd, rest, 0, rest.length, head.length + n);
    } finally {
      fs.closeSync(fd);
    }
    expect(fs.statSync(big).size).toBeGreaterThan(2 ** 31);

    const frame = await readPaperPickle(big);
    try {
      expect(frame.byteLength).toBe(fs.statSync(big).size);
      expect(frame.rows(0, frame.length).map((r) => [r.userId, r.prompt, imageId(r.image0!), r.liked.map((b) => imageId(b!))])).toEqual(
        expected.paper.map((e) => [e.user_id, e.prompt, e.image0, e.liked]),
      );
    } finally {
      frame.close();
    }
    const r = await importDataset({ from: [big], out: path.join(dir, 'out'), logger: memoryLogger() });
    expect(r.reconciliation).toEqual({ read: 4, kept: 4, skipped: expect.objectContaining({ corrupt_image: 0 }) });
    expect(r.splits.test.examples).toBe(4);
  });
});

describe('bad pickles', () => {
  it('an empty file and a non-pickle are clear errors naming the file', async () => {
    const dir = tmpDir('badpkl');
    fs.writeFileSync(path.join(dir, 'empty.pkl'), '');
    fs.writeFileSync(path.join(dir, 'text.pkl'), 'not a pickle');
    await expect(readPaperPickle(path.join(dir, 'empty.pkl'))).rejects.toThrow(/empty\.pkl: file is empty/);
    await expect(readPaperPickle(path.join(dir, 'text.pkl'))).rejects.toThrow(/text\.pkl: not a readable pandas DataFrame pickle/);
  });
});
