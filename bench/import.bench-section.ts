/** `npm run bench -- import`: import throughput and peak memory of the dataset plugin. */
import { runImportBench } from '../plugins/dataset-pickapic/bench/import.bench';
import { registerSection } from './main';
import { benchQuick } from './quick';

registerSection({
  name: 'import',
  run: async () => {
    const pickles = (process.env.USERPREF_BENCH_PICKLES ?? '').split(':').filter(Boolean);
    if (!pickles.length) console.log('import: release pickles not measured (set USERPREF_BENCH_PICKLES; bench/make_release_pickle.py makes one)');
    // Quick: the tiny synthpick set and big files of 2 and 0.5 MB from a pool of 4 images.
    const sizes = benchQuick() ? { bigGb: 0.002, synthPreset: 'tiny' as const, poolSize: 4 } : { bigGb: Number(process.env.USERPREF_BENCH_BIG_GB ?? 2) };
    const report = await runImportBench({ ...sizes, log: (l) => console.log(l), pickles });
    for (const m of report.measurements) {
      console.log(`import ${m.label}: ${(m.fileBytes / 1e9).toFixed(2)} GB, ${m.rows} rows, ${m.rowsPerSec.toFixed(0)} rows/s, ${m.mbPerSec.toFixed(1)} MB/s, peak RSS ${m.peakRssMB.toFixed(0)} MB (baseline ${m.baselineRssMB.toFixed(0)} MB)`);
    }
    return report as unknown as Record<string, unknown>;
  },
});
