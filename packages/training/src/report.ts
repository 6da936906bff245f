/** Writes a suite report as JSON, a Markdown table and a PNG plot (SVG rendered by sharp). */
import { promises as fs } from 'fs';
import * as path from 'path';
import { ROW_GROUPS, type RowGroup, type RowResult, type SuiteReport } from './suite';

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(2) : '-');

/** A row's Table 1 group (reports written before groups existed: models count as trained). */
const groupOfRow = (row: RowResult): RowGroup => row.group ?? (row.kind === 'baseline' ? 'baseline' : 'trained');

/** The rows in Table 1's order of groups (zero-shot scorers, in-context, trained, baselines), config order within a group. */
export function groupedRows(r: SuiteReport): Array<{ group: RowGroup; title: string; rows: RowResult[] }> {
  return ROW_GROUPS.map((g) => ({ ...g, rows: r.rows.filter((row) => groupOfRow(row) === g.group) })).filter((g) => g.rows.length > 0);
}

export function markdownTable(r: SuiteReport): string {
  const lines = [
    `Pairwise accuracy on the ${r.split} split: ${r.comparisons} comparisons, ${r.users} users, tie policy ${r.tiePolicy.kind}.`,
    '',
    '| model | accuracy % | 95% CI | n | ROC AUC | per-user median % | note |',
    '|---|---:|---|---:|---:|---:|---|',
  ];
  for (const g of groupedRows(r)) {
    lines.push(`| **${g.title}** | | | | | | |`);
    for (const row of g.rows) {
      lines.push(
        `| ${row.label} | ${pct(row.accuracy)} | ${Number.isFinite(row.ci95[0]) ? `${pct(row.ci95[0])}-${pct(row.ci95[1])}` : '-'} | ${row.n} | ${row.auc !== undefined && Number.isFinite(row.auc) ? row.auc.toFixed(3) : '-'} | ${row.perUser ? pct(row.perUser.quantiles.median) : '-'} | ${row.note ?? ''} |`,
      );
    }
  }
  // Rows that were asked for but could not be computed on this data say so, instead of vanishing.
  for (const x of r.leftOut ?? []) lines.push('', `Left out: ${x.label} (${x.reason}).`);
  if (r.curve.length) {
    lines.push('', `Accuracy of ${r.curveModel ?? r.rows[0]?.label} against the number of reference pairs:`, '', '| reference pairs | accuracy % | 95% CI |', '|---:|---:|---|');
    for (const p of r.curve) lines.push(`| ${p.referencePairs} | ${pct(p.accuracy)} | ${pct(p.ci95[0])}-${pct(p.ci95[1])} |`);
  }
  const paired = r.paired ?? [];
  if (paired.length) {
    const pts = (x: number) => (Number.isFinite(x) ? `${x > 0 ? '+' : ''}${(100 * x).toFixed(2)}` : '-');
    const pv = (p: number) => (p < 1e-3 ? p.toExponential(1) : p.toFixed(3));
    lines.push(
      '',
      'Paired differences on the same comparisons (a minus b, accuracy points; 95% paired bootstrap interval; exact sign test on the comparisons where a and b differ):',
      '',
      '| a | b | difference | 95% CI | a better | b better | p |',
      '|---|---|---:|---|---:|---:|---:|',
      ...paired.map((d) => `| ${d.a} | ${d.b} | ${pts(d.difference)} | ${pts(d.ci95[0])} to ${pts(d.ci95[1])} | ${d.aBetter} | ${d.bBetter} | ${pv(d.pValue)} |`),
    );
  }
  return lines.join('\n') + '\n';
}

/** Bar chart of the rows plus, when present, the reference-count curve. */
export function plotSvg(r: SuiteReport): string {
  const W = 760;
  const H = 400;
  const pad = 48;
  const bottom = 96; // room for slanted labels
  const half = r.curve.length ? (W - pad * 3) / 2 : W - pad * 2;
  const y = (a: number) => H - bottom - (H - pad - bottom) * a;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  const axis = (x0: number, w: number, title: string) => {
    parts.push(`<text x="${x0 + w / 2}" y="18" text-anchor="middle" font-size="13">${title}</text>`);
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`, `<text x="${x0 - 4}" y="${y(t) + 4}" text-anchor="end">${t * 100}%</text>`);
    }
  };
  axis(pad, half, `Pairwise accuracy (${r.split})`);
  const bw = half / Math.max(1, r.rows.length);
  const fill: Record<RowGroup, string> = { 'zero-shot': '#8c6bb1', 'in-context': '#74a9cf', trained: '#3b6ea8', baseline: '#b0b0b0' };
  groupedRows(r).flatMap((g) => g.rows).forEach((row, i) => {
    const x = pad + i * bw + bw * 0.15;
    const a = Number.isFinite(row.accuracy) ? row.accuracy : 0;
    parts.push(`<rect x="${x}" y="${y(a)}" width="${bw * 0.7}" height="${y(0) - y(a)}" fill="${fill[groupOfRow(row)]}"/>`);
    if (Number.isFinite(row.ci95[0])) parts.push(`<line x1="${x + bw * 0.35}" x2="${x + bw * 0.35}" y1="${y(row.ci95[0])}" y2="${y(row.ci95[1])}" stroke="black"/>`);
    parts.push(`<text x="${x + bw * 0.35}" y="${y(a) - 4}" text-anchor="middle">${(a * 100).toFixed(1)}</text>`);
    const lx = x + bw * 0.35;
    const ly = H - bottom + 14;
    parts.push(`<text x="${lx}" y="${ly}" text-anchor="end" transform="rotate(-30 ${lx} ${ly})">${escapeXml(row.label.slice(0, 24))}</text>`);
  });
  if (r.curve.length) {
    const x0 = pad * 2 + half;
    axis(x0, half, 'Accuracy vs. reference pairs');
    parts.push(`<text x="${x0 + half / 2}" y="${H - bottom + 34}" text-anchor="middle">reference pairs</text>`);
    const maxK = Math.max(1, ...r.curve.map((p) => p.referencePairs));
    const x = (k: number) => x0 + (half * k) / maxK;
    parts.push(`<polyline fill="none" stroke="#3b6ea8" stroke-width="2" points="${r.curve.map((p) => `${x(p.referencePairs)},${y(p.accuracy)}`).join(' ')}"/>`);
    for (const p of r.curve) {
      parts.push(`<line x1="${x(p.referencePairs)}" x2="${x(p.referencePairs)}" y1="${y(p.ci95[0])}" y2="${y(p.ci95[1])}" stroke="#3b6ea8"/>`);
      parts.push(`<text x="${x(p.referencePairs)}" y="${H - bottom + 14}" text-anchor="middle">${p.referencePairs}</text>`);
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

export async function writeReport(r: SuiteReport, dir: string): Promise<{ json: string; markdown: string; png: string }> {
  await fs.mkdir(dir, { recursive: true });
  const json = path.join(dir, 'results.json');
  const markdown = path.join(dir, 'results.md');
  const png = path.join(dir, 'results.png');
  await fs.writeFile(json, JSON.stringify(r, null, 2) + '\n');
  await fs.writeFile(markdown, markdownTable(r));
  // sharp renders SVG through librsvg, which its prebuilt binaries include.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sharp = require('sharp') as typeof import('sharp');
  await sharp(Buffer.from(plotSvg(r))).png().toFile(png);
  return { json, markdown, png };
}
