/** A ranking as a plain-text table, best first (the rank command's output). */
import type { Ranking } from './rank';

export function formatRanking(r: Ranking): string {
  const rows = r.order.map((i) => r.candidates[i]);
  const cells = rows.map((c) => [String(c.rank), c.score.toFixed(4), c.probability.toFixed(4), c.name]);
  const head = ['rank', 'z+ - z-', 'P(like)', 'candidate'];
  const width = head.map((h, j) => Math.max(h.length, ...cells.map((c) => c[j].length)));
  const line = (c: string[]) => c.map((v, j) => (j === c.length - 1 ? v : v.padStart(width[j]))).join('  ');
  return [line(head), line(width.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}
