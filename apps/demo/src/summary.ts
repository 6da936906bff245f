/**
 * The demo's closing lines: what stage 2 adds over stage 1 (their paired row of the evaluation)
 * and what similar-user mining on the stage-2 model finds (purity against its random baseline),
 * read back from the evaluation's results.json and the mining run's neighbours.json.
 */
import { promises as fs } from 'fs';
import type { PairedResult as PairedRow } from '@userpref/training';

interface MinedPurity {
  k: number;
  purity: number;
  randomBaseline: number;
  users: number;
}

export const STAGE1_LABEL = 'stage 1 (LoRA)';
export const STAGE2_LABEL = 'stage 2 (+tokens)';

const pct = (x: number) => (100 * x).toFixed(1);
const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
const pv = (p: number) => (p < 1e-3 ? p.toExponential(1) : p.toFixed(3));

/** The lines for parsed files (separate from reading them, for tests). */
export function summaryLines(results: { paired?: PairedRow[] }, mined: { purity: MinedPurity | null }): string[] {
  const lines = ['What stage 2 adds, and whom mining groups together:'];
  const row = results.paired?.find((r) => r.a === STAGE2_LABEL && r.b === STAGE1_LABEL);
  lines.push(
    row
      ? `  stage 2 - stage 1 on the same ${row.n} comparisons: ${signed(row.difference)} points (95% paired CI ${signed(row.ci95[0])} to ${signed(row.ci95[1])}); stage 2 better on ${row.aBetter}, stage 1 on ${row.bBetter}; sign test p ${pv(row.pValue)}`
      : '  stage 2 - stage 1: no such paired row in the evaluation',
  );
  const p = mined.purity;
  lines.push(
    p
      ? `  similar-user mining on the stage-2 model: purity@${p.k} ${pct(p.purity)}% against its random baseline ${pct(p.randomBaseline)}% (${(p.purity / p.randomBaseline).toFixed(2)}x), ${p.users} test users`
      : '  similar-user mining: no hidden taste groups known, so no purity',
  );
  return lines;
}

export async function demoSummary(resultsFile: string, neighboursFile: string): Promise<string> {
  const results = JSON.parse(await fs.readFile(resultsFile, 'utf8')) as { paired?: PairedRow[] };
  const mined = JSON.parse(await fs.readFile(neighboursFile, 'utf8')) as { purity: MinedPurity | null };
  return summaryLines(results, mined).join('\n') + '\n';
}
