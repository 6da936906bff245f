/**
 * `npm run bench`: speed and memory numbers of this machine, printed as a table and written to
 * bench-results.json. Sections can be picked: `npm run bench -- wasm import forward train`.
 * `--quick` (or USERPREF_BENCH_QUICK=1) runs each section at its smallest size (see quick.ts) and
 * writes no bench-results.json.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { benchQuick } from './quick';
import { benchWasmMatMul } from './wasm-matmul.bench';

type Section = { name: string; run: () => Promise<Record<string, unknown>> };

const sections: Section[] = [
  {
    name: 'wasm',
    run: async () => {
      const rows = (benchQuick() ? [64] : [256, 512]).map((n) => benchWasmMatMul(n, benchQuick() ? 1 : 5));
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
  const args = process.argv.slice(2);
  // Children of the sections (row processes, import children) read quick mode from the environment.
  if (args.includes('--quick')) process.env.USERPREF_BENCH_QUICK = '1';
  const wanted = args.filter((a) => a !== '--quick');
  // Sections of the packages that have benchmarks (they register themselves).
  require('./import.bench-section'); // eslint-disable-line @typescript-eslint/no-require-imports
  require('./model.bench-section'); // eslint-disable-line @typescript-eslint/no-require-imports
  require('./rank.bench-section'); // eslint-disable-line @typescript-eslint/no-require-imports
  require('./memory.bench-section'); // eslint-disable-line @typescript-eslint/no-require-imports
  const unknown = wanted.filter((w) => !sections.some((s) => s.name === w));
  if (unknown.length) throw new Error(`unknown bench section(s) ${unknown.join(', ')}; the sections: ${sections.map((s) => s.name).join(', ')}`);
  const quick = benchQuick();
  if (quick) console.log('quick mode: each section at its smallest size; the numbers measure nothing and are not written');
  const results: Record<string, unknown> = { machine: { cpus: require('os').cpus().length, node: process.version }, startedAt: new Date().toISOString() };
  for (const s of sections) {
    if (wanted.length && !wanted.includes(s.name)) continue;
    console.log(`\n== ${s.name} ==`);
    const t0 = Date.now();
    results[s.name] = await s.run();
    if (quick) console.log(`(${s.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  if (quick) return;
  const out = path.join(__dirname, '..', 'bench-results.json');
  await fs.writeFile(out, JSON.stringify(results, null, 2) + '\n');
  console.log(`\nwritten ${out}`);
}

if (require.main === module || process.argv[1] === __filename) main().catch((e) => { console.error(e); process.exit(1); });
