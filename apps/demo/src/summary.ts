/**
 * The demo's closing lines: stage 1's learning curve (its metrics.jsonl: training loss and
 * accuracy in windows of updates, validation accuracy at the points the trainer validated), what
 * stage 2 adds over stage 1 (their paired row of the evaluation) and what similar-user mining on
 * the stage-2 model finds (purity against its random baseline), read back from the evaluation's
 * results.json and the mining run's neighbours.json.
 */
import { promises as fs } from 'fs';
import { learningCurve, type LearningCurve, type PairedResult as PairedRow } from '@userpref/training';

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

/** Updates per row of the printed training curve: 25, or a multiple of 25 that keeps a run to at most 6 rows (600 updates: 100). */
export function curveWindow(lastStep: number): number {
  return 25 * Math.max(1, Math.ceil(lastStep / 150));
}

/**
 * The learning curve as a table: one row per window of updates (mean loss, its terms, mean
 * training-batch accuracy) and the validation accuracy measured at the window's last update; a
 * validation before the first update (eval_on_start) gets a row of its own.
 */
export function curveLines(curve: LearningCurve, title: string, window: number): string[] {
  if (!curve.windows.length) return [`${title}: no training updates recorded`];
  const atStep = new Map(curve.validation.map((v) => [v.step, v]));
  const val = (step: number) => {
    const v = atStep.get(step);
    if (!v) return '';
    return Number.isFinite(v.ci95[0]) ? `${pct(v.accuracy)}% (${pct(v.ci95[0])}-${pct(v.ci95[1])}, n ${v.n})` : `${pct(v.accuracy)}% (n ${v.n})`;
  };
  const termNames = Object.keys(curve.windows[0].terms);
  const lossHead = termNames.length ? `loss (${termNames.map((t) => t.replace(/^loss\//, '')).join(' + ')})` : 'loss';
  const rows: string[][] = [['updates', lossHead, 'training accuracy', 'validation accuracy (95% CI, n)']];
  if (atStep.has(0)) rows.push(['0 (untrained)', '', '', val(0)]);
  for (const w of curve.windows) {
    const terms = termNames.map((t) => (w.terms[t] ?? NaN).toFixed(3)).join(' + ');
    rows.push([`${w.fromStep}-${w.toStep}`, `${w.loss.toFixed(3)}${termNames.length ? ` (${terms})` : ''}`, `${pct(w.accuracy)}%`, val(w.toStep)]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = [`${title} (training figures: means over ${window} updates, dropout on; validation: pairwise accuracy on the validation split's first comparisons):`];
  for (const r of rows) lines.push(`  ${r.map((x, c) => x.padEnd(widths[c])).join('   ')}`.trimEnd());
  if (curve.skipped) lines.push(`  (${curve.skipped} line(s) of the metrics file did not parse and were skipped)`);
  return lines;
}

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

export async function demoSummary(files: { stage1Metrics: string; results: string; neighbours: string }): Promise<string> {
  let window = 0;
  const curve = learningCurve(await fs.readFile(files.stage1Metrics, 'utf8'), (lastStep) => (window = curveWindow(lastStep)));
  const results = JSON.parse(await fs.readFile(files.results, 'utf8')) as { paired?: PairedRow[] };
  const mined = JSON.parse(await fs.readFile(files.neighbours, 'utf8')) as { purity: MinedPurity | null };
  return [...curveLines(curve, "Stage 1's learning curve", window), '', ...summaryLines(results, mined)].join('\n') + '\n';
}
