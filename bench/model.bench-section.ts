/** `npm run bench -- forward`: forward / training-step throughput of the IDEFICS2 backbone. */
import { availableBackends, benchBackbone, benchForward, type BackboneBenchRow } from '../plugins/backbone-idefics2/bench/forward.bench';
import { registerSection } from './main';
import { benchQuick } from './quick';

registerSection({
  name: 'forward',
  run: async () => {
    const rows = [];
    for (const preset of benchQuick() ? (['tiny'] as const) : (['tiny', 'small'] as const)) {
      const r = await benchForward(preset, benchQuick() ? 1 : 3);
      console.log(`${preset}: ${r.parameters} params, ${r.tokensPerSequence} tokens/seq; vision ${r.visionMsPerImage.toFixed(1)} ms/image; forward ${r.forwardMs.toFixed(0)} ms (${r.forwardTokensPerSecond.toFixed(0)} tok/s); train step ${r.trainStepMs.toFixed(0)} ms (${r.trainTokensPerSecond.toFixed(0)} tok/s); peak RSS ${r.peakRssMb.toFixed(0)} MB`);
      rows.push(r);
    }
    return { presets: rows };
  },
});

registerSection({
  name: 'train',
  run: async () => {
    // Quick: the tiny preset, one example each way, the default row on the first backend that loads, no PyTorch.
    const r = await benchBackbone(
      benchQuick()
        ? { preset: 'tiny', trainExamples: 1, evalExamples: 1, evalBatch: 1, backends: [availableBackends()[0]], rows: [{ visionCache: true, sharedPrefix: true }], torchPython: '' }
        : { preset: 'small' },
    );
    const tokens = r.rows[0]?.tokensPerSequence;
    console.log(`${r.preset} preset, 8 reference pairs (${tokens} tokens per sequence), backends ${r.backends.join(', ')}, load average ${r.loadAverage.map((x) => x.toFixed(1)).join(' ')}`);
    const cell = (row: BackboneBenchRow | undefined) =>
      row ? `${row.trainMsPerExample.toFixed(0).padStart(6)} ms ${row.evalPairsPerSecond.toFixed(2).padStart(6)} pairs/s` : ''.padEnd(24);
    console.log(`${'vision cache  shared prefix'.padEnd(28)}${r.backends.map((b) => `| ${b.padEnd(23)}`).join('')}`);
    const find = (b: string, cache: boolean, prefix: boolean) => r.rows.find((x) => x.backend === b && x.visionCache === cache && x.sharedPrefix === prefix);
    for (const cache of [false, true]) {
      for (const prefix of [false, true]) {
        console.log(`${`${cache ? 'on ' : 'off'}           ${prefix ? 'on ' : 'off'}${cache && prefix ? ' (default)' : ''}`.padEnd(28)}${r.backends.map((b) => `| ${cell(find(b, cache, prefix))}`).join('')}`);
      }
    }
    console.log(`(train: wall ms per example, forward + backward w.r.t. LoRA; eval: pairs scored per second; peak RSS ${r.rows.map((x) => x.peakRssMb.toFixed(0)).join('/')} MB)`);
    if (r.torch && 'skipped' in r.torch) console.log(`PyTorch: skipped (${r.torch.skipped})`);
    else if (r.torch) {
      const t = r.torch;
      console.log(`PyTorch ${t.torch}, ${t.threads} threads, the original's algorithm (2 full sequences per example, every image re-encoded; ${t.tokensPerSequence} tokens): train ${t.trainMsPerExample.toFixed(0)} ms/example, eval ${t.evalPairsPerSecond.toFixed(2)} pairs/s`);
      for (const b of r.backends) {
        const def = find(b, true, true);
        const equal = find(b, false, false);
        if (!def || !equal) continue;
        console.log(
          `${b} vs PyTorch: train ${(def.trainMsPerExample / t.trainMsPerExample).toFixed(2)}x its time (target <= 0.5), ` +
            `at equal work (cache and prefix off) ${(equal.trainMsPerExample / t.trainMsPerExample).toFixed(2)}x (target <= 1.2), ` +
            `eval ${(def.evalPairsPerSecond / t.evalPairsPerSecond).toFixed(2)}x its pairs/s (target >= 3)`,
        );
      }
    } else console.log('PyTorch: not run (set USERPREF_TORCH_PYTHON to a Python with torch, transformers and peft for the like-for-like)');
    return r as unknown as Record<string, unknown>;
  },
});
