/**
 * Files of a mining run: neighbours.json (each user's k nearest users with similarity, purity and
 * its random baseline, the settings), users.csv (one row per user with its vector) and a heatmap
 * of the user x user similarity matrix (SVG, rendered to PNG by sharp), users sorted by hidden
 * cluster when known so that a block-diagonal pattern means the clusters were found.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { MiningResult } from './mine';
import { at } from './similarity';

export interface ReportExtras {
  /** Where the clusters came from (manifest or truth file), if anywhere. */
  readonly clusterSource?: string | null;
  /** Free-form facts to record (checkpoint, adapter, tokens paths ...). */
  readonly run?: Record<string, unknown>;
}

export interface WrittenReport {
  readonly neighbours: string;
  readonly users: string;
  readonly heatmapSvg: string;
  readonly heatmapPng: string;
}

const round = (x: number, digits = 6) => Number(x.toFixed(digits));

/** Heatmap order: by cluster (unknown last), then by the mining order (user id). */
export function heatmapOrder(result: MiningResult): number[] {
  const idx = [...result.users.keys()];
  const key = (i: number) => result.users[i].cluster ?? Number.POSITIVE_INFINITY;
  return idx.sort((a, b) => key(a) - key(b) || a - b);
}

export function neighboursJson(result: MiningResult, extras: ReportExtras = {}): unknown {
  const { users, neighbours, purity } = result;
  return {
    createdAt: new Date().toISOString(),
    method:
      'Same target image after each user history; attention from the target image tokens (queries) to the preference tokens (keys), mean over heads, target-image tokens, layers and re-orderings; cosine similarity between users.',
    target: result.target,
    settings: { ...result.options, layers: result.layers, heads: result.heads ?? 'all', prefixLength: result.prefixLength, vectorLength: users[0]?.vector.length ?? 0 },
    run: extras.run ?? {},
    clusters: extras.clusterSource ?? null,
    purity: purity
      ? {
          k: Math.min(result.options.k, users.length - 1),
          purity: purity.purity,
          randomBaseline: purity.randomBaseline,
          users: purity.counted,
          unknownClusterUsers: purity.unknown,
          bySimilarity: Object.fromEntries(Object.entries(result.purityBySimilarity ?? {}).map(([k, v]) => [k, { purity: v.purity, randomBaseline: v.randomBaseline }])),
        }
      : null,
    users: users.map((u, i) => ({
      userId: u.userId,
      cluster: u.cluster,
      purity: purity?.perUser[i] ?? null,
      neighbours: neighbours[i].map((nb) => ({ userId: users[nb.index].userId, cluster: users[nb.index].cluster, similarity: round(nb.similarity) })),
    })),
    heatmapOrder: heatmapOrder(result).map((i) => users[i].userId),
    similarity: users.map((_, i) => users.map((__, j) => round(at(result.similarity, i, j)))),
  };
}

const csvField = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function usersCsv(result: MiningResult): string {
  const { users, neighbours, purity } = result;
  const len = users[0]?.vector.length ?? 0;
  const per = result.options.vector === 'per-layer' ? result.prefixLength : len;
  const names = Array.from({ length: len }, (_, j) => (result.options.vector === 'per-layer' ? `v_l${result.layers[Math.floor(j / per)]}_t${j % per}` : `v_t${j}`));
  const lines = [['user_id', 'cluster', 'example', 'references', 'purity_at_k', 'neighbours', ...names].join(',')];
  users.forEach((u, i) => {
    const nbs = neighbours[i].map((nb) => `${users[nb.index].userId}:${nb.similarity.toFixed(6)}`).join(' ');
    lines.push([u.userId, u.cluster, u.example, u.references, purity?.perUser[i] ?? '', nbs, ...u.vector.map((x) => x.toPrecision(8))].map(csvField).join(','));
  });
  return lines.join('\n') + '\n';
}

/** Viridis-like ramp through five anchors, t in [0, 1]. */
function colour(t: number): string {
  const stops: Array<[number, number, number]> = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** Digits that make lo and hi differ on the page, plus one. */
function rangeDigits(lo: number, hi: number): number {
  for (let d = 2; d <= 8; d++) if (lo.toFixed(d) !== hi.toFixed(d)) return d + 1;
  return 8;
}

export function heatmapSvg(result: MiningResult): string {
  const order = heatmapOrder(result);
  const n = order.length;
  const cell = Math.max(3, Math.floor(640 / Math.max(1, n)));
  const side = cell * n;
  const left = 90;
  const top = 78;
  const W = left + side + 130;
  const H = top + side + 40;
  const off: number[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) off.push(at(result.similarity, i, j));
  const lo = Math.min(...off);
  const hi = Math.max(...off);
  const scale = (v: number) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
  const p = result.purity;
  const k = Math.min(result.options.k, n - 1);
  const title = `User x user ${result.options.similarity} similarity of target-image -> preference-token attention (${n} users, ${result.options.orders} orders)`;
  const subtitle = p
    ? `purity@${k} ${(100 * p.purity).toFixed(1)}% vs random ${(100 * p.randomBaseline).toFixed(1)}%  ·  users sorted by hidden taste cluster`
    : `no cluster truth: users in id order`;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="13">${escapeXml(title)}</text>`,
    `<text x="${left}" y="38" font-size="12" fill="#333">${escapeXml(subtitle)}</text>`,
  ];
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      const i = order[a];
      const j = order[b];
      const fill = i === j ? '#d0d0d0' : colour(scale(at(result.similarity, i, j)));
      parts.push(`<rect x="${left + b * cell}" y="${top + a * cell}" width="${cell}" height="${cell}" fill="${fill}"/>`);
    }
  }
  // Cluster blocks: boundaries and labels.
  const users = result.users;
  let start = 0;
  for (let a = 1; a <= n; a++) {
    const prev = users[order[a - 1]].cluster;
    if (a < n && users[order[a]].cluster === prev) continue;
    const mid = (start + a) / 2;
    const label = prev === null ? '?' : `c${prev}`;
    if (p) {
      parts.push(`<text x="${left + mid * cell}" y="${top - 8}" text-anchor="middle" font-size="12">${label}</text>`);
      parts.push(`<text x="${left - 8}" y="${top + mid * cell + 4}" text-anchor="end" font-size="12">${label}</text>`);
      if (a < n) {
        parts.push(`<line x1="${left + a * cell}" x2="${left + a * cell}" y1="${top}" y2="${top + side}" stroke="white" stroke-width="2"/>`);
        parts.push(`<line x1="${left}" x2="${left + side}" y1="${top + a * cell}" y2="${top + a * cell}" stroke="white" stroke-width="2"/>`);
      }
    }
    start = a;
  }
  if (!p && n <= 40) {
    order.forEach((i, a) => parts.push(`<text x="${left - 8}" y="${top + (a + 0.5) * cell + 4}" text-anchor="end" font-size="9">${escapeXml(users[i].userId)}</text>`));
  }
  // Colour bar.
  const bx = left + side + 30;
  const steps = 50;
  for (let s = 0; s < steps; s++) {
    parts.push(`<rect x="${bx}" y="${top + (side * s) / steps}" width="18" height="${side / steps + 0.5}" fill="${colour(1 - s / steps)}"/>`);
  }
  const digits = rangeDigits(lo, hi);
  for (const t of [0, 0.25, 0.5, 0.75, 1]) parts.push(`<text x="${bx + 24}" y="${top + side * (1 - t) + 4}">${(lo + (hi - lo) * t).toFixed(digits)}</text>`);
  parts.push(`<text x="${left}" y="${top + side + 24}" fill="#555">diagonal in grey; colour scaled to the off-diagonal range</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

export async function writeMiningReport(result: MiningResult, dir: string, extras: ReportExtras = {}): Promise<WrittenReport> {
  await fs.mkdir(dir, { recursive: true });
  const out: WrittenReport = {
    neighbours: path.join(dir, 'neighbours.json'),
    users: path.join(dir, 'users.csv'),
    heatmapSvg: path.join(dir, 'similarity-heatmap.svg'),
    heatmapPng: path.join(dir, 'similarity-heatmap.png'),
  };
  await fs.writeFile(out.neighbours, JSON.stringify(neighboursJson(result, extras), null, 2) + '\n');
  await fs.writeFile(out.users, usersCsv(result));
  const svg = heatmapSvg(result);
  await fs.writeFile(out.heatmapSvg, svg);
  // sharp renders SVG through librsvg, which its prebuilt binaries include.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sharp = require('sharp') as typeof import('sharp');
  await sharp(Buffer.from(svg)).png().toFile(out.heatmapPng);
  return out;
}
