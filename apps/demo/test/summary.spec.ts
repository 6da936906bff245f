/** The demo's closing lines: stage 1's learning curve, stage 2 against stage 1 (paired) and mining purity against its random baseline. */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { STAGE1_LABEL, STAGE2_LABEL, curveLines, curveWindow, demoSummary, summaryLines } from '../src/summary';

const paired = [
  { a: STAGE1_LABEL, b: 'base (no LoRA)', n: 640, difference: 0.135, ci95: [0.098, 0.173] as [number, number], aBetter: 92, bBetter: 20, pValue: 3.2e-12 },
  { a: STAGE2_LABEL, b: STAGE1_LABEL, n: 640, difference: -0.003125, ci95: [-0.0125, 0.00625] as [number, number], aBetter: 3, bBetter: 5, pValue: 0.7265625 },
];
const purity = { k: 5, purity: 0.6535, randomBaseline: 0.4977, users: 217 };

describe('demo summary', () => {
  it('prints the stage 2 vs stage 1 paired row and the purity against its random baseline', () => {
    const lines = summaryLines({ paired }, { purity });
    expect(lines[1]).toBe('  stage 2 - stage 1 on the same 640 comparisons: -0.3 points (95% paired CI -1.3 to +0.6); stage 2 better on 3, stage 1 on 5; sign test p 0.727');
    expect(lines[2]).toBe('  similar-user mining on the stage-2 model: purity@5 65.3% against its random baseline 49.8% (1.31x), 217 test users');
  });

  it('says so when a part is missing instead of inventing it', () => {
    const lines = summaryLines({ paired: paired.slice(0, 1) }, { purity: null });
    expect(lines[1]).toMatch(/no such paired row/);
    expect(lines[2]).toMatch(/no purity/);
  });

  it('prints the learning curve: a row per window of updates, validation where the window ends, the untrained start on its own row', () => {
    const curve = {
      stage: 1,
      windows: [
        { fromStep: 1, toStep: 25, updates: 25, loss: 1.8, accuracy: 0.56, terms: { 'loss/base': 0.7, 'loss/contrastive': 1.1 } },
        { fromStep: 26, toStep: 50, updates: 25, loss: 1.5, accuracy: 0.7, terms: { 'loss/base': 0.6, 'loss/contrastive': 0.9 } },
      ],
      validation: [
        { step: 0, accuracy: 0.625, ci95: [0.5, 0.75] as [number, number], n: 64 },
        { step: 50, accuracy: 0.78125, ci95: [0.6875, 0.875] as [number, number], n: 64 },
      ],
      skipped: 1,
    };
    const lines = curveLines(curve, 'Curve', 25);
    expect(lines[0]).toMatch(/^Curve \(training figures: means over 25 updates/);
    expect(lines.slice(1).map((l) => l.split(/ {3,}/))).toEqual([
      ['  updates', 'loss (base + contrastive)', 'training accuracy', 'validation accuracy (95% CI, n)'],
      ['  0 (untrained)', '62.5% (50.0-75.0, n 64)'],
      ['  1-25', '1.800 (0.700 + 1.100)', '56.0%'],
      ['  26-50', '1.500 (0.600 + 0.900)', '70.0%', '78.1% (68.8-87.5, n 64)'],
      ['  (1 line(s) of the metrics file did not parse and were skipped)'],
    ]);
    // A validation line without its interval (written by another tool) still prints its accuracy.
    const bare = curveLines({ ...curve, validation: [{ step: 50, accuracy: 0.5, ci95: [NaN, NaN], n: 8 }], skipped: 0 }, 'Curve', 25);
    expect(bare[bare.length - 1]).toMatch(/70\.0% +50\.0% \(n 8\)$/);
    expect(curveLines({ windows: [], validation: [], skipped: 0 }, 'Curve', 25)).toEqual(['Curve: no training updates recorded']);
  });

  it('keeps a long run to at most 6 rows of whole 25s of updates', () => {
    expect([1, 20, 150, 151, 300, 600, 601].map(curveWindow)).toEqual([25, 25, 25, 50, 50, 100, 125]);
  });

  it('reads the metrics, evaluation and mining files', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'demo-summary-'));
    try {
      await fs.writeFile(path.join(dir, 'results.json'), JSON.stringify({ paired }));
      await fs.writeFile(path.join(dir, 'neighbours.json'), JSON.stringify({ purity }));
      const updates = Array.from({ length: 50 }, (_, i) => JSON.stringify({ stage: 1, step: i + 1, loss: i < 25 ? 2 : 1, accuracy: i < 25 ? 0.5 : 1 }));
      await fs.writeFile(path.join(dir, 'metrics.jsonl'), updates.join('\n') + '\n');
      const text = await demoSummary({ stage1Metrics: path.join(dir, 'metrics.jsonl'), results: path.join(dir, 'results.json'), neighbours: path.join(dir, 'neighbours.json') });
      expect(text).toMatch(/\n  1-25 +2\.000 +50\.0%\n  26-50 +1\.000 +100\.0%\n/);
      expect(text).toContain('1.31x');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
