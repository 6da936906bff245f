/**
 * Splits of real Pick-a-Pic v2 shards (fixtures/v2-layout, written by pandas + pyarrow; expected
 * counts computed with pandas by goldens/make_v2_layout_fixtures.py): the upstream split of each file is
 * kept by default, `_unique` shards count as their parent split without counting a comparison
 * twice, references come from where the options say, re-splitting happens only when asked and
 * says what crossed, skipped rows name their ranking_id and user, and a damaged row group either
 * stops the import or, when asked, is skipped and counted.
 */
import * as fs from 'fs';
import * as path from 'path';
import { memoryLogger, type SplitName } from '@userpref/core';
import { main } from '../src/cli';
import { PickapicDataset } from '../src/dataset';
import { importDataset, splitFromShardName } from '../src/import';
import type { ImportedSplitIndex } from '../src/splits';
import { ProcessedStore } from '../src/store';
import { generateSynthpick } from '../src/synthpick';
import { fixture, options, tmpDir } from './helpers';

const LAYOUT = fixture('v2-layout');
interface SplitExpectation {
  read: number;
  kept: number;
  skipped: Record<string, number>;
  examples: number;
  users: number;
  example_ranking_ids: string[];
  without_references: Record<'train' | 'train+same-split', number>;
}
const want = JSON.parse(fs.readFileSync(path.join(LAYOUT, 'expected.json'), 'utf8')) as {
  per_split: Record<SplitName, SplitExpectation>;
  skipped_rows: Array<{ file: string; row: number; ranking_id: string; user: string; reason: string }>;
  damaged: { rows_per_row_group: number[]; damaged_row_group: number; pyarrow: string; good_ranking_ids: number[] };
};
const SPLITS: SplitName[] = ['train', 'validation', 'test'];
const nonZero = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).filter(([, n]) => n));
const fileOf = (source: string) => source.split(':')[0];

async function load(dir: string) {
  const store = await ProcessedStore.open(dir);
  const splits = {} as Record<SplitName, ImportedSplitIndex>;
  for (const s of SPLITS) splits[s] = (await store.readSplit(s)) as ImportedSplitIndex;
  const comparisons = store.comparisons;
  await store.close();
  return { comparisons, splits };
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const so = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const se = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(argv), out, err };
  } finally {
    so.mockRestore();
    se.mockRestore();
  }
}

describe('shard names', () => {
  it.each([
    ['train-00000-of-00645.parquet', 'train'],
    ['train-00003-of-00645-b66ac786bf6fb553.parquet', 'train'],
    ['validation-00000-of-00001.parquet', 'validation'],
    ['test-00000-of-00001.parquet', 'test'],
    ['validation_unique-00000-of-00001.parquet', 'validation'],
    ['test_unique-00000-of-00001.parquet', 'test'],
    ['test.parquet', 'test'],
  ])('%s is %s', (name, split) => expect(splitFromShardName(`/data/${name}`)?.split).toBe(split));
  it.each(['pickapic_pyarrow.parquet', 'my_test_shard.parquet', 'testing-00000.parquet', 'synthpick-00000-of-00002.parquet'])('%s says no split', (name) => expect(splitFromShardName(name)).toBeNull());
});

describe('upstream splits (the default) of train, validation, test and the _unique shards', () => {
  const out = tmpDir('v2-upstream');
  const log = memoryLogger();
  let result: Awaited<ReturnType<typeof importDataset>>;
  let data: Awaited<ReturnType<typeof load>>;
  beforeAll(async () => {
    result = await importDataset({ from: [LAYOUT], out, logger: log });
    data = await load(out);
  });

  it('counts rows per source split and per reason as pandas does (test_unique / validation_unique rows are duplicates)', () => {
    expect(result.protocol).toBe('upstream');
    expect(result.references).toBe('train+same-split');
    for (const s of SPLITS) {
      const got = result.bySplit[s];
      expect({ read: got.read, kept: got.kept, skipped: nonZero(got.skipped) }).toEqual({ read: want.per_split[s].read, kept: want.per_split[s].kept, skipped: want.per_split[s].skipped });
    }
    expect(Object.keys(result.bySplit)).toEqual(SPLITS);
    expect(result.manifest.sourceSplits).toEqual({
      'test-00000-of-00001.parquet': 'test',
      'test_unique-00000-of-00001.parquet': 'test',
      'train-00000-of-00002.parquet': 'train',
      'train-00001-of-00002.parquet': 'train',
      'validation-00000-of-00001.parquet': 'validation',
      'validation_unique-00000-of-00001.parquet': 'validation',
    });
  });

  it('keeps every comparison in the split of its file: exact examples per split, no upstream test comparison in training', () => {
    for (const s of SPLITS) {
      const ids = data.splits[s].examples.map(([t]) => data.comparisons[t].rankingId!).sort();
      expect(ids).toEqual(want.per_split[s].example_ranking_ids);
      expect(data.splits[s].users).toBe(want.per_split[s].users);
      expect(result.splits[s]).toEqual({ examples: want.per_split[s].examples, users: want.per_split[s].users, withoutReferences: want.per_split[s].without_references['train+same-split'] });
      for (const [t] of data.splits[s].examples) expect(SPLITS.find((x) => fileOf(data.comparisons[t].source).startsWith(x))).toBe(s);
    }
    // Nothing from a validation / test file is a training target or a training reference.
    const heldOut = new Set(data.comparisons.flatMap((c, i) => (/^(validation|test)/.test(fileOf(c.source)) ? [i] : [])));
    expect(heldOut.size).toBe(want.per_split.validation.kept + want.per_split.test.kept);
    const train = data.splits.train;
    for (const [t, p] of train.examples) {
      expect(heldOut.has(t)).toBe(false);
      for (const r of train.pools[p]) expect(heldOut.has(r)).toBe(false);
    }
    // 7777 was published in a train shard and in the test shard: kept once, in test.
    const leaked = data.comparisons.flatMap((c, i) => (c.rankingId === '7777' ? [i] : []));
    expect(leaked).toHaveLength(1);
    expect(fileOf(data.comparisons[leaked[0]].source)).toBe('test-00000-of-00001.parquet');
  });

  it("references: the user's training comparisons and the target's own split, never the target itself", async () => {
    for (const s of SPLITS) {
      const allowed = s === 'train' ? ['train'] : ['train', s];
      for (const [t, p] of data.splits[s].examples) {
        for (const r of data.splits[s].pools[p]) {
          expect(data.comparisons[r].userId).toBe(data.comparisons[t].userId);
          expect(allowed).toContain(SPLITS.find((x) => fileOf(data.comparisons[r].source).startsWith(x)));
        }
      }
    }
    const ds = new PickapicDataset(options(out, { refPairNum: 50, tooFewReferences: 'fewer', imageSize: 4 }), { seed: 1, baseDir: '/' });
    await ds.init();
    let checked = 0;
    for (const s of SPLITS) {
      const split = ds.split(s);
      split.targets().forEach((t, i) => {
        expect(split.referenceIndices(i)).not.toContain(t);
        checked++;
      });
    }
    await ds.close();
    // u3 has only test comparisons: with train+same-split its two test targets reference each other.
    expect(checked).toBe(SPLITS.reduce((a, s) => a + want.per_split[s].examples, 0));
  });

  it('names every skipped row by file:row, ranking_id and user, and says that the _unique shards were deduplicated', () => {
    const lines = fs.readFileSync(path.join(out, 'skipped.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const key = (x: { where: string; ranking_id: string; user_id: string; reason: string }) => `${x.where} ${x.ranking_id} ${x.user_id} ${x.reason}`;
    expect(lines.map(key).sort()).toEqual(want.skipped_rows.map((r) => key({ where: `${r.file}:${r.row}`, ranking_id: r.ranking_id, user_id: r.user, reason: r.reason })).sort());
    const dup = lines.find((l) => l.reason === 'duplicate' && l.ranking_id === '7777');
    expect(dup.detail).toBe('same comparison as test-00000-of-00001.parquet:4 (test), kept there');
    const messages = log.records.map((r) => r.message);
    expect(messages).toContain('import: test_unique is a deduplicated subset of test: both are imported as test, and a comparison found in both is kept once (the other copy counted as duplicate)');
    expect(messages).toContain('import: 4 comparison(s) imported more than once were kept once (counted as duplicate, listed in skipped.jsonl); across splits, kept in the held-out one: 1 train -> test');
    expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/^skipped row validation-00000-of-00001\.parquet:3 \(ranking_id 4101, user 4\): corrupt_image \(jpg_0 \(image [0-9a-f]{12}\) does not decode/)]));
  });
});

describe('--references train', () => {
  it('restricts every pool to training comparisons; a user without any is reported', async () => {
    const out = tmpDir('v2-train-refs');
    const log = memoryLogger();
    const r = await importDataset({ from: [LAYOUT], out, references: 'train', logger: log });
    const data = await load(out);
    for (const s of SPLITS) {
      expect(r.splits[s].withoutReferences).toBe(want.per_split[s].without_references.train);
      for (const pool of data.splits[s].pools) for (const c of pool) expect(fileOf(data.comparisons[c].source)).toMatch(/^train-/);
      expect(data.splits[s].references).toBe('train');
    }
    expect(log.records.filter((x) => x.level === 'warn').map((x) => x.message)).toContain(
      'import: test: 2 of 7 examples have no reference comparison (their user has no other usable comparison in the training split)',
    );
  });
});

describe('one shard alone, --split, and names that say nothing', () => {
  it('a test shard imported alone stays test: nothing is split again', async () => {
    const out = tmpDir('v2-test-alone');
    const r = await importDataset({ from: [path.join(LAYOUT, 'test-00000-of-00001.parquet')], out, logger: memoryLogger() });
    expect(r.splits.train.examples).toBe(0);
    expect(r.splits.validation.examples).toBe(0);
    expect(r.splits.test.examples).toBe(want.per_split.test.examples);
    expect(r.resplit).toBeNull();
  });

  it('--split names the split of every file, overriding (with a warning) what a name says', async () => {
    const out = tmpDir('v2-split');
    const log = memoryLogger();
    const r = await importDataset({ from: [path.join(LAYOUT, 'test-00000-of-00001.parquet')], out, split: 'validation', logger: log });
    expect([r.splits.train.examples, r.splits.validation.examples, r.splits.test.examples]).toEqual([0, want.per_split.test.examples, 0]);
    expect(log.records.map((x) => x.message)).toContain('test-00000-of-00001.parquet: its name says test; imported as validation because of --split validation');
  });

  it('a file whose name says no split is a one-line error naming it, unless --split is given', async () => {
    const dir = tmpDir('v2-nameless');
    fs.copyFileSync(path.join(LAYOUT, 'test-00000-of-00001.parquet'), path.join(dir, 'shard.parquet'));
    fs.copyFileSync(path.join(LAYOUT, 'train-00000-of-00002.parquet'), path.join(dir, 'train-00000-of-00001.parquet'));
    // (cli.ts prints the message after 'error: ' and exits 1)
    await expect(run(['import', '--from', dir, '--out', path.join(dir, 'out')])).rejects.toThrow(
      /^shard\.parquet: the file name says no split \(Pick-a-Pic v2 names: train\|validation\|test\|validation_unique\|test_unique-NNNNN-of-NNNNN\.parquet\); pass --split train\|validation\|test for these files, or re-split everything with --split-protocol by-comparison\|by-user$/,
    );
    expect(fs.existsSync(path.join(dir, 'out'))).toBe(false);
    const ok = await importDataset({ from: [path.join(dir, 'shard.parquet')], out: path.join(dir, 'out2'), split: 'test', logger: memoryLogger() });
    expect(ok.splits.test.examples).toBe(want.per_split.test.examples);
  });
});

describe('re-splitting only when asked', () => {
  it('by-comparison pools all files and reports how many upstream validation / test comparisons crossed into training', async () => {
    const out = tmpDir('v2-resplit');
    const log = memoryLogger();
    const r = await importDataset({ from: [LAYOUT], out, splitProtocol: 'by-comparison', validationFraction: 0.3, testFraction: 0.3, seed: 4, logger: log });
    const data = await load(out);
    // The crossing matrix agrees with the split files: a comparison is in train when it is a training target.
    const inTrain = new Set(data.splits.train.examples.map(([t]) => t));
    const crossed = (from: string) => data.comparisons.filter((c, i) => fileOf(c.source).startsWith(from) && inTrain.has(i)).length;
    expect(r.resplit!.test.train ?? 0).toBe(crossed('test'));
    expect(r.resplit!.validation.train ?? 0).toBe(crossed('validation'));
    expect(Object.values(r.resplit!).reduce((a, row) => a + Object.values(row).reduce((x, y) => x + y, 0), 0)).toBe(data.comparisons.length);
    expect(crossed('test') + crossed('validation')).toBeGreaterThan(0);
    expect(log.records.filter((x) => x.level === 'warn').map((x) => x.message)).toContain(
      `import: by-comparison re-split: ${crossed('test')} of ${want.per_split.test.kept} comparisons from upstream test files are now training comparisons`,
    );
    expect(r.manifest.fractions).toEqual({ validation: 0.3, test: 0.3 });
  });

  it('by-user refuses --references train (its held-out users have no training comparisons)', async () => {
    await expect(importDataset({ from: [LAYOUT], out: tmpDir('v2-byuser'), splitProtocol: 'by-user', references: 'train', logger: memoryLogger() })).rejects.toThrow(/--references train does not fit --split-protocol by-user/);
  });
});

describe('synthpick has no upstream split', () => {
  it('writes synthpick-NNNNN-of-NNNNN.parquet, which the import splits by-comparison by default; upstream is refused by name', async () => {
    const dir = tmpDir('v2-synth');
    const g = await generateSynthpick({ preset: 'tiny', seed: 2, outDir: path.join(dir, 'raw') });
    expect(g.files.map((f) => path.basename(f))).toEqual(['synthpick-00000-of-00001.parquet']);
    const r = await importDataset({ from: [path.join(dir, 'raw')], out: path.join(dir, 'out'), logger: memoryLogger() });
    expect(r.protocol).toBe('by-comparison');
    expect(r.references).toBe('train');
    expect(SPLITS.every((s) => r.splits[s].examples > 0)).toBe(true);
    expect(Object.keys(r.resplit!)).toEqual(['none']);
    await expect(importDataset({ from: [path.join(dir, 'raw')], out: path.join(dir, 'out2'), splitProtocol: 'upstream', logger: memoryLogger() })).rejects.toThrow(/synthpick-00000-of-00001\.parquet: the file name says no split/);
  });
});

describe('a damaged row group', () => {
  const damaged = path.join(LAYOUT, 'damaged', 'train-00000-of-00001.parquet');
  const [g0, g1] = want.damaged.rows_per_row_group;

  it('stops the import by default with one message naming the file, the rows and the row group', async () => {
    const out = tmpDir('v2-damaged');
    const err = await importDataset({ from: [damaged], out, logger: memoryLogger() }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.name).toBe('PickapicFormatError');
    expect(err?.message).toMatch(new RegExp(`^${damaged.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: rows ${g0}-${g0 + g1 - 1} \\(row group 1\\) unreadable: .+ \\(--skip-bad-row-groups skips such a row group and counts its rows\\)$`));
    expect(fs.existsSync(path.join(out, 'manifest.json'))).toBe(false);
  });

  it('--skip-bad-row-groups skips it, counts its rows as bad_row_group and keeps the others (as pyarrow can read them)', async () => {
    const dir = tmpDir('v2-damaged-skip');
    const r = await run(['import', '--from', damaged, '--out', dir, '--skip-bad-row-groups']);
    expect(r.code).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.reconciliation).toEqual({ read: 12, kept: 8, skipped: expect.objectContaining({ bad_row_group: g1 }) });
    const store = await ProcessedStore.open(dir);
    expect(store.comparisons.map((c) => Number(c.rankingId))).toEqual(want.damaged.good_ranking_ids);
    await store.close();
    const lines = fs.readFileSync(path.join(dir, 'skipped.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([{ where: `train-00000-of-00001.parquet:${g0}-${g0 + g1 - 1}`, ranking_id: null, user_id: null, reason: 'bad_row_group', rows: g1, detail: expect.stringMatching(/^row group 1: /) }]);
    expect(r.err).toMatch(/\[warn\] skipped 4 row\(s\) train-00000-of-00001\.parquet:4-7: bad_row_group \(row group 1: /);
    expect(r.out).toMatch(/^train +12 +8 .* 4$/m);
    expect(r.out).toMatch(/^rows read 12 = kept 8 \+ .*bad_row_group 4/m);
  });
});

describe('the import report (cli)', () => {
  it('prints rows per source split and per reason, then examples per split', async () => {
    const dir = tmpDir('v2-cli');
    const r = await run(['import', '--from', LAYOUT, '--out', dir]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe("split protocol upstream; references from the user's training comparisons and the target's own split");
    const head = lines[1].split(/\s+/);
    const row = (name: string) => Object.fromEntries(lines.find((l) => l.startsWith(`${name} `))!.split(/\s+/).slice(1).map((v, j) => [head[j + 1], Number(v)]));
    for (const s of SPLITS) expect(nonZero(row(s))).toEqual({ read: want.per_split[s].read, kept: want.per_split[s].kept, ...want.per_split[s].skipped });
    for (const s of SPLITS) expect(lines).toContain(`${s}: ${want.per_split[s].examples} examples, ${want.per_split[s].users} users`);
  });

  it('warns about --split-protocol for the paper pickles only when it was passed', async () => {
    const quiet = await run(['import', '--from', fixture('paper_p4.pkl'), '--out', tmpDir('v2-pkl'), '--split', 'test']);
    expect(quiet.code).toBe(0);
    expect(quiet.err).not.toMatch(/split-protocol/);
    const asked = await run(['import', '--from', fixture('paper_p4.pkl'), '--out', tmpDir('v2-pkl2'), '--split', 'test', '--split-protocol', 'by-user']);
    expect(asked.code).toBe(0);
    expect(asked.err).toMatch(/\[warn\] --split-protocol by-user is ignored for the paper's pickles/);
  });
});
