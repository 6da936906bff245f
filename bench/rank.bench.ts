/**
 * Ranking N candidates for one person on the `small` (by default) random IDEFICS2 (8 reference pairs with
 * ~100-character prompts, ~1.8k history tokens), ms per candidate at each N:
 *
 * - history once: rankCandidates with the backbone's history session (the history's key-value
 *   state computed once, the candidates' turns on top of it);
 * - full pass per candidate: the same computation with a new session for every candidate, i.e.
 *   the history and the candidate's turn run again for each candidate (what scoring candidates
 *   one at a time costs);
 * - pairs: rankCandidates through prepare / pairLogits (the fallback of backbones without
 *   openHistory; on IDEFICS2 examples with one history share its prefix within a batch).
 *
 * Every image's vision-tower output is cached beforehand (each candidate is encoded once in
 * every method), so the numbers compare the language-model work. Median of `repeats` runs, the
 * methods taking turns to go first.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Idefics2Backbone, writeIdefics2Checkpoint, type PresetName } from '@userpref/backbone-idefics2';
import { initRuntime, runtimeInfo } from '@userpref/runtime';
import { benchExample, benchImage, benchPrompt } from '../plugins/backbone-idefics2/bench/examples';
import { rankCandidates, type RankCandidate } from '@userpref/ranking';

export interface RankBenchRow {
  candidates: number;
  historyOnceMsPerCandidate: number;
  fullPassMsPerCandidate: number;
  pairsMsPerCandidate: number;
  speedup: number;
}

export interface RankBenchResult {
  preset: PresetName;
  backend: string;
  referencePairs: number;
  loadAverage: number[];
  rows: RankBenchRow[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchRank(counts: number[] = [1, 8, 32], repeats = 3, preset: PresetName = 'small'): Promise<RankBenchResult> {
  await initRuntime({ device: 'cpu' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-rank-'));
  try {
    await writeIdefics2Checkpoint({ preset, outDir: dir, seed: 0 });
    const backbone = new Idefics2Backbone({ path: dir, usePrompt: true, maxPromptLen: 100 }, { seed: 0, baseDir: dir });
    await backbone.init();
    const history = { references: benchExample(0, 8).references };
    const prompt = benchPrompt(4242);
    const all: RankCandidate[] = Array.from({ length: Math.max(...counts) }, (_, i) => ({ name: `c${i}`, image: benchImage(50_000 + i, 96 + 8 * (i % 3), 88) }));
    // Warm-up: every image through the vision tower (cached), every kernel once.
    await rankCandidates(backbone, { history, prompt, candidates: all });
    const time = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return performance.now() - t;
    };
    const rows: RankBenchRow[] = [];
    for (const n of counts) {
      const candidates = all.slice(0, n);
      const fast: number[] = [];
      const full: number[] = [];
      const pairs: number[] = [];
      const runs = [
        async () => fast.push(await time(() => rankCandidates(backbone, { history, prompt, candidates }))),
        async () =>
          full.push(
            await time(async () => {
              for (const c of candidates) await rankCandidates(backbone, { history, prompt, candidates: [c] });
            }),
          ),
        async () => pairs.push(await time(() => rankCandidates(backbone, { history, prompt, candidates }, { method: 'pairs' }))),
      ];
      // The three methods take turns going first, so no one always runs right after another.
      for (let r = 0; r < repeats; r++) for (let j = 0; j < runs.length; j++) await runs[(r + j) % runs.length]();
      const row = { candidates: n, historyOnceMsPerCandidate: median(fast) / n, fullPassMsPerCandidate: median(full) / n, pairsMsPerCandidate: median(pairs) / n, speedup: median(full) / median(fast) };
      rows.push(row);
    }
    backbone.dispose();
    return { preset, backend: runtimeInfo()?.backend ?? 'unknown', referencePairs: 8, loadAverage: os.loadavg(), rows };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchRank().then((r) => console.log(JSON.stringify(r, null, 2)), (e) => {
    console.error(e);
    process.exit(1);
  });
}
