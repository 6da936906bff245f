/**
 * Zero-shot scorer rows in the evaluation suite: scored on the same comparisons as the model rows,
 * grouped as Table 1, and paired with any other row.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initRuntime } from '@userpref/runtime';
import { memoryLogger, type PreferenceImage, type ZeroShotScorer } from '@userpref/core';
import { markdownTable, runSuite, writeReport } from '../src';
import { ToyBackbone, toyDataset } from './toy';

/** score(prompt, image) = sign x the image's red channel; counts init / dispose calls. */
class RedScorer implements ZeroShotScorer {
  inits = 0;
  disposed = 0;
  prompts: string[] = [];
  constructor(private readonly sign: number) {}
  async init() {
    this.inits++;
  }
  async score(prompt: string, images: readonly PreferenceImage[]) {
    if (this.inits === 0) throw new Error('score() before init()');
    this.prompts.push(prompt);
    return Promise.all(images.map(async (im) => this.sign * (await im.decode()).data[0]));
  }
  async dispose() {
    this.disposed++;
  }
}

describe('evaluation suite: zero-shot scorer rows', () => {
  let tmp: string;
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'suite-scorers-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('credits score(prompt, liked) > score(prompt, disliked), groups rows as Table 1 and pairs scorers with any row', async () => {
    const dataset = toyDataset();
    const logger = memoryLogger();
    const red = new RedScorer(1);
    const antiRed = new RedScorer(-1);
    const split = dataset.split('test');
    // By hand: in the toy data odd users like red, even users dislike it, and no comparison is a
    // tie; so 'red' is right exactly on the odd users' comparisons and 'anti-red' on the others.
    let redRight = 0;
    const promptsWant: string[] = [];
    for (let i = 0; i < split.size; i++) {
      const ex = await split.get(i);
      promptsWant.push(ex.target.prompt);
      const c0 = (await ex.target.image0.decode()).data[0];
      const c1 = (await ex.target.image1.decode()).data[0];
      expect(c0).not.toBe(c1);
      const redWins = (c0 > c1) === ex.target.label0 >= 0.5;
      if (redWins) redRight++;
    }
    const report = await runSuite(
      { backbone: new ToyBackbone(9), dataset, logger, scorers: new Map([['red', red], ['anti-red', antiRed], ['unused', new RedScorer(1)]]) },
      {
        split: 'test', batchSize: 8, tiePolicy: { kind: 'drop' }, bootstrapSamples: 100, refCounts: [0, 1], seed: 1, baselines: ['random'],
        models: [{ label: 'untrained' }, { label: 'Red', scorer: 'red' }, { label: 'anti-red', scorer: 'anti-red' }],
        paired: [['Red', 'anti-red'], ['Red', 'untrained'], ['random', 'anti-red']],
      },
    );
    const row = (l: string) => report.rows.find((r) => r.label === l)!;
    expect(row('Red').kind).toBe('scorer');
    expect(row('Red').group).toBe('zero-shot');
    expect(row('untrained').group).toBe('in-context');
    expect(row('random').group).toBe('baseline');
    expect(row('Red').n).toBe(split.size);
    expect(row('Red').accuracy).toBeCloseTo(redRight / split.size, 12);
    expect(row('anti-red').accuracy).toBeCloseTo(1 - redRight / split.size, 12);
    // Per user a colour scorer is all right or all wrong.
    expect(row('Red').perUser!.quantiles.min).toBe(0);
    expect(row('Red').perUser!.quantiles.max).toBe(1);
    // Each scorer saw every target prompt once, was initialised once and disposed; unused ones are left alone.
    expect(red.prompts).toEqual(promptsWant);
    expect([red.inits, red.disposed, antiRed.inits]).toEqual([1, 1, 1]);
    // The curve belongs to the first row that is not a scorer.
    expect(report.curveModel).toBe('untrained');
    // Red and anti-red disagree on every comparison.
    const [ra, ru, rand] = report.paired;
    expect([ra.a, ra.b, ra.n, ra.aBetter + ra.bBetter]).toEqual(['Red', 'anti-red', split.size, split.size]);
    expect(ra.aBetter).toBe(redRight);
    expect(ra.difference).toBeCloseTo(row('Red').accuracy - row('anti-red').accuracy, 12);
    expect([ru.a, ru.b]).toEqual(['Red', 'untrained']);
    expect(ru.difference).toBeCloseTo(row('Red').accuracy - row('untrained').accuracy, 12);
    expect(rand.difference).toBeCloseTo(row('random').accuracy - row('anti-red').accuracy, 12);

    // Markdown in Table 1's order: zero-shot scorers, then in-context, then baselines.
    const md = markdownTable(report);
    const at = (s: string) => md.indexOf(s);
    expect(at('| **zero-shot scorers (no references)** |')).toBeGreaterThan(0);
    expect(at('| **zero-shot scorers (no references)** |')).toBeLessThan(at('| Red |'));
    expect(at('| anti-red |')).toBeLessThan(at('| **in-context (references, no adapter)** |'));
    expect(at('| **in-context (references, no adapter)** |')).toBeLessThan(at('| untrained |'));
    expect(at('| untrained |')).toBeLessThan(at('| **baselines** |'));
    expect(md).not.toContain('| **trained** |');
    const files = await writeReport(report, path.join(tmp, 'eval'));
    expect(JSON.parse(await fs.readFile(files.json, 'utf8')).rows.map((r: { group: string }) => r.group)).toEqual(['in-context', 'zero-shot', 'zero-shot', 'baseline']);
  });

  it('runs scorer rows without a backbone, and refuses what a scorer row cannot be', async () => {
    const dataset = toyDataset();
    const logger = memoryLogger();
    const base = { split: 'test' as const, batchSize: 8, tiePolicy: { kind: 'drop' as const }, bootstrapSamples: 50, refCounts: [], seed: 1, baselines: [] };
    const only = await runSuite({ dataset, logger, scorers: new Map([['red', new RedScorer(1)]]) }, { ...base, models: [{ label: 'Red', scorer: 'red' }], baselines: ['nearest-reference'] });
    expect(only.rows.map((r) => r.label)).toEqual(['Red']);
    const scorers = new Map([['red', new RedScorer(1)]]);
    await expect(runSuite({ dataset, logger, scorers }, { ...base, models: [{ label: 'Red', scorer: 'red' }, { label: 'm' }] })).rejects.toThrow("model 'm' needs a backbone");
    await expect(runSuite({ dataset, logger, scorers }, { ...base, models: [{ label: 'Red', scorer: 'clip' }] })).rejects.toThrow("names scorer 'clip', which plugins.scorers does not configure (configured: red)");
    await expect(runSuite({ dataset, logger, scorers }, { ...base, models: [{ label: 'Red', scorer: 'red', adapter: 'x', referencePairs: 2 }] })).rejects.toThrow("it takes no adapter, referencePairs");
    // An explicit group overrides the default.
    const grouped = await runSuite({ dataset, logger, scorers }, { ...base, models: [{ label: 'Red', scorer: 'red', group: 'in-context' }] });
    expect(grouped.rows[0].group).toBe('in-context');
  });
});
