/** `npm run bench -- import`: import throughput and peak memory of the dataset plugin. */
import { runImportBench } from '../../plugins/dataset-pickapic/bench/import.bench';
import { registerSection } from './main';

registerSection({
  name: 'import',
  run: async () => {
    const pickles = (process.env.USERPREF_BENCH_PICKLES ?? '').split(':').filter(Boolean);
    if (!pickles.length) console.log('import: release pickles not measured (set USERPREF_BENCH_PICKLES; tools/bench/make_release_pickle.py makes one)');
    const report = await runImportBench({ bigGb: Number(process.env.USERPREF_BENCH_BIG_GB ?? 2), log: (l) => console.log(l), pickles });
    for (const m of report.measurements) {
      console.log(`import ${m.label}: ${(m.fileBytes / 1e9).toFixed(2)} GB, ${m.rows} rows, ${m.rowsPerSec.toFixed(0)} rows/s, ${m.mbPerSec.toFixed(1)} MB/s, peak RSS ${m.peakRssMB.toFixed(0)} MB (baseline ${m.baselineRssMB.toFixed(0)} MB)`);
    }
    return report as unknown as Record<string, unknown>;
  },
});
