/**
 * `npm run bench`: speed and memory numbers of this machine, printed as a table and written to
 * bench-results.json. Sections can be picked: `npm run bench -- wasm import forward train`.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { benchWasmMatMul } from './wasm-matmul.bench';

type Section = { name: string; run: () => Promise<Record<string, unknown>> };

const sections: Section[] = [
  {
    name: 'wasm',
    run: async () => {
      const rows = [256, 512].map((n) => benchWasmMatMul(n));
      for (const r of rows) {
        console.log(`wasm matMul gradient ${r.size}x${r.size}: stock ${r.stockMs.toFixed(1)} ms, patched ${r.patchedMs.toFixed(1)} ms -> ${r.speedup.toFixed(1)}x faster (plain forward ${r.plainForwardMs.toFixed(1)} ms, ${((2 * r.size ** 3) / r.plainForwardMs / 1e6).toFixed(1)} GFLOP/s)`);
      }
      return { matMulGradient: rows };
    },
  },
];

export function registerSection(s: Section): void {
  sections.push(s);
}

async function main() {
  // Sections of the packages that have benchmarks (they register themselves).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./import.bench-section');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./model.bench-section');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./rank.bench-section');
  require('./memory.bench-section'); // eslint-disable-line @typescript-eslint/no-require-imports
  const wanted = process.argv.slice(2);
  const results: Record<string, unknown> = { machine: { cpus: require('os').cpus().length, node: process.version }, startedAt: new Date().toISOString() };
  for (const s of sections) {
    if (wanted.length && !wanted.includes(s.name)) continue;
    console.log(`\n== ${s.name} ==`);
    results[s.name] = await s.run();
  }
  const out = path.join(__dirname, '..', '..', 'bench-results.json');
  await fs.writeFile(out, JSON.stringify(results, null, 2) + '\n');
  console.log(`\nwritten ${out}`);
}

if (require.main === module || process.argv[1] === __filename) main().catch((e) => { console.error(e); process.exit(1); });
