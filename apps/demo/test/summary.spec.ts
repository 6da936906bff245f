/** The demo's closing lines: stage 2 against stage 1 (paired) and mining purity against its random baseline. */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { STAGE1_LABEL, STAGE2_LABEL, demoSummary, summaryLines } from '../src/summary';

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

  it('reads the evaluation and mining files', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'demo-summary-'));
    try {
      await fs.writeFile(path.join(dir, 'results.json'), JSON.stringify({ paired }));
      await fs.writeFile(path.join(dir, 'neighbours.json'), JSON.stringify({ purity }));
      const text = await demoSummary(path.join(dir, 'results.json'), path.join(dir, 'neighbours.json'));
      expect(text.split('\n')).toHaveLength(4);
      expect(text).toContain('1.31x');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
