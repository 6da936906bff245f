import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { initRuntime } from '@userpref/runtime';
import { memoryLogger, type PreferenceExample } from '@userpref/core';
import { Trainer, markdownTable, nearestReferenceScores, runSuite, writeReport } from '../src';
import { ToyBackbone, ceLoss, image, toyDataset } from './toy';

describe('evaluation suite', () => {
  let tmp: string;
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'suite-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('scores nearest-reference as cosine to liked minus cosine to disliked (hand math)', async () => {
    // Embeddings are RGB - 128. liked ref (228,128,128) -> (100,0,0); disliked (128,228,128) -> (0,100,0).
    // image0 (178,128,128) -> (50,0,0): cos to liked 1, to disliked 0 -> score 1.
    // image1 (128,128,228) -> (0,0,100): cos 0 and 0 -> score 0.
    const ex: PreferenceExample = {
      userId: 'u',
      references: [{ prompt: 'p', liked: image('l', [228, 128, 128]), disliked: image('d', [128, 228, 128]) }],
      likedFirst: [false],
      target: { prompt: 'p', image0: image('a', [178, 128, 128]), image1: image('b', [128, 128, 228]), label0: 1 },
    };
    const [s] = await nearestReferenceScores(new ToyBackbone(), [ex], 1);
    expect(s.score0).toBeCloseTo(1, 6);
    expect(s.score1).toBeCloseTo(0, 6);
  });

  it('evaluates trained models against baselines and writes JSON, Markdown and a PNG plot', async () => {
    const backbone = new ToyBackbone();
    const dataset = toyDataset();
    const logger = memoryLogger();
    const res = await new Trainer({ backbone, dataset, losses: [{ loss: ceLoss, weight: 1 }], logger }, {
      stage: 1, batchSize: 4, gradAccum: 1, epochs: 3, lr: 0.05, weightDecay: 0, evalSteps: 0, saveSteps: 0, evalBatchSize: 8, outDir: tmp, expName: 's1', seed: 3,
    }).run();
    const report = await runSuite({ backbone: new ToyBackbone(9), dataset, logger }, {
      split: 'test', batchSize: 8, tiePolicy: { kind: 'drop' }, bootstrapSamples: 200, refCounts: [0, 1, 3], seed: 1,
      models: [{ label: 'stage1', adapter: path.join(res.finalCheckpoint, 'adapter') }, { label: 'no-refs', adapter: path.join(res.finalCheckpoint, 'adapter'), referencePairs: 0 }],
      baselines: ['random', 'nearest-reference', 'bayes-optimal'],
    });
    const row = (l: string) => report.rows.find((r) => r.label === l)!;
    expect(report.rows.map((r) => r.label)).toEqual(['stage1', 'no-refs', 'random', 'nearest-reference']); // toy data has no Bayes-optimal
    // ... and the report says so instead of dropping the row silently.
    const why = "the test split's comparisons carry no hidden utilities (the true preference probabilities that only synthetic data such as synthpick records), so there is no Bayes-optimal accuracy";
    expect(report.leftOut).toEqual([{ label: 'bayes-optimal', reason: why }]);
    expect(logger.records.filter((r) => r.level === 'warn').map((r) => r.message)).toContain(`bayes-optimal baseline left out: ${why}`);
    expect(markdownTable(report)).toContain(`\nLeft out: bayes-optimal (${why}).\n`);
    expect(row('stage1').accuracy).toBeGreaterThan(0.8);
    // Without references the toy model has no information: exactly 0.5 (equal scores earn half credit).
    expect(row('no-refs').accuracy).toBeCloseTo(0.5, 6);
    expect(report.curve.map((p) => p.referencePairs)).toEqual([0, 1, 3]);
    expect(report.curve[0].accuracy).toBeCloseTo(0.5, 6);
    expect(report.curve[2].accuracy).toBeCloseTo(row('stage1').accuracy, 12);
    expect(row('stage1').ci95[0]).toBeLessThanOrEqual(row('stage1').accuracy);

    // Paired differences, by default the first model against every other row with scores: on the
    // same comparisons the difference of accuracies is the mean paired difference.
    expect(report.paired.map((d) => [d.a, d.b])).toEqual([['stage1', 'no-refs'], ['stage1', 'random'], ['stage1', 'nearest-reference']]);
    for (const d of report.paired) {
      expect(d.n).toBe(row('stage1').n);
      expect(d.difference).toBeCloseTo(row(d.a).accuracy - row(d.b).accuracy, 12);
      expect(d.ci95[0]).toBeLessThanOrEqual(d.difference);
      expect(d.ci95[1]).toBeGreaterThanOrEqual(d.difference);
    }
    expect(report.paired[0].pValue).toBeLessThan(0.01);

    const files = await writeReport(report, path.join(tmp, 'eval'));
    const md = await fs.readFile(files.markdown, 'utf8');
    expect(md).toContain('| stage1 |');
    expect(md).toContain('| reference pairs | accuracy % | 95% CI |');
    expect(md).toContain('| a | b | difference | 95% CI | a better | b better | p |');
    expect(md).toContain(`| stage1 | no-refs | +${(100 * report.paired[0].difference).toFixed(2)} |`);
    expect(markdownTable(report)).toBe(md);
    const meta = await sharp(files.png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe(760);
    expect(meta.height).toBe(400);
    expect(JSON.parse(await fs.readFile(files.json, 'utf8')).rows).toHaveLength(4);

    // The curve can belong to another model; a model without an adapter cannot follow one with.
    const base = { split: 'test' as const, batchSize: 8, tiePolicy: { kind: 'drop' as const }, bootstrapSamples: 50, refCounts: [0, 3], seed: 1, baselines: [] };
    const adapter = path.join(res.finalCheckpoint, 'adapter');
    const second = await runSuite({ backbone: new ToyBackbone(9), dataset, logger }, { ...base, models: [{ label: 'untrained' }, { label: 'stage1', adapter, curve: true }] });
    expect(second.curveModel).toBe('stage1');
    expect(second.curve[1].accuracy).toBeCloseTo(row('stage1').accuracy, 12);
    expect(second.rows[0].accuracy).toBeLessThan(row('stage1').accuracy);
    expect(markdownTable(second)).toContain('Accuracy of stage1 against the number of reference pairs');
    await expect(runSuite({ backbone: new ToyBackbone(9), dataset, logger }, { ...base, models: [{ label: 'stage1', adapter }, { label: 'untrained' }] })).rejects.toThrow("model 'untrained' has no adapter but comes after 'stage1'");
    await expect(runSuite({ backbone: new ToyBackbone(9), dataset, logger }, { ...base, models: [{ label: 'a', adapter, curve: true }, { label: 'b', adapter, curve: true }] })).rejects.toThrow('only one model');
    // Pairs are checked before anything is scored; [] asks for none.
    const models = [{ label: 'untrained' }, { label: 'stage1', adapter }];
    expect((await runSuite({ backbone: new ToyBackbone(9), dataset, logger }, { ...base, refCounts: [], models, paired: [] })).paired).toEqual([]);
    const named = await runSuite({ backbone: new ToyBackbone(9), dataset, logger }, { ...base, refCounts: [], models, paired: [['stage1', 'untrained']] });
    expect(named.paired.map((d) => [d.a, d.b, d.aBetter > d.bBetter])).toEqual([['stage1', 'untrained', true]]);
    const bad = (paired: Array<[string, string]>) => runSuite({ backbone: new ToyBackbone(9), dataset, logger }, { ...base, models, baselines: ['random', 'bayes-optimal'], paired });
    await expect(bad([['stage1', 'stage2']])).rejects.toThrow("no row 'stage2' (rows with scores: untrained, stage1, random)");
    await expect(bad([['stage1', 'bayes-optimal']])).rejects.toThrow('bayes-optimal has no per-comparison scores');
    await expect(bad([['stage1', 'stage1']])).rejects.toThrow('a row against itself');
  });
});
