/**
 * Import throughput and peak memory. Three inputs: the default synthpick set (every image is
 * new, so this measures decode-validation too), and two big Pick-a-Pic-shaped parquet files
 * (0.5 GB and >= 2 GB by default, 512x512 noisy PNGs drawn from a pool and repeated across rows,
 * snappy-compressed like the published shards) that measure streaming: peak RSS must stay flat
 * as the file grows. Each import runs in a fresh child process so its RSS is its own.
 *
 *   node tools/scripts/run-ts.js plugins/dataset-pickapic/bench/import.bench.ts [--big-gb 2] [--keep] [--pickle <file.pkl> ...]
 *
 * `runImportBench()` is what `npm run bench` calls. Big files go to the OS temp dir and are
 * deleted afterwards unless `keep`.
 *
 * The paper's release format (pandas pickles) cannot be written without pandas, so pickles are
 * measured only when given: `pickles` (USERPREF_BENCH_PICKLES in `npm run bench`, paths separated
 * by ':'), e.g. the release's own files or one made by bench/make_release_pickle.py.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { memoryLogger, Rng } from '@userpref/core';
import { encodeRgb } from '../src/images';
import { importDataset } from '../src/import';
import { ParquetFileWriter } from '../src/parquet-io';
import { PICKAPIC_WRITE_COLUMNS, PRESETS, generateSynthpick, pickapicRow, renderImage, simulateSynthpick, toColumns, type SynthpickPreset } from '../src/synthpick';

export interface ImportMeasurement {
  readonly label: string;
  readonly fileBytes: number;
  readonly rows: number;
  readonly seconds: number;
  readonly rowsPerSec: number;
  readonly mbPerSec: number;
  readonly peakRssMB: number;
  readonly baselineRssMB: number;
  readonly images: number;
}

export interface ImportBenchReport {
  readonly name: 'dataset-pickapic/import';
  readonly measurements: ImportMeasurement[];
}

export interface ImportBenchOptions {
  /** Size of the largest generated file in GB (default 2). Also a file of a quarter of it. */
  bigGb?: number;
  workDir?: string;
  keep?: boolean;
  log?: (line: string) => void;
  /** Release-format pickles (bench_*_w_bad*.pkl) to import and measure as well. */
  pickles?: string[];
  /** The synthpick preset measured first (default `default`; `npm run bench --quick` takes `tiny`). */
  synthPreset?: SynthpickPreset;
  /** Images in the big files' pool (default 96; each a 512x512 noisy PNG). */
  poolSize?: number;
}

const RUN_TS = path.resolve(__dirname, '../../../tools/scripts/run-ts.js');

/** Child side: import `from` into `out`, sampling RSS; prints one JSON line. */
async function measureInThisProcess(label: string, from: string, out: string): Promise<ImportMeasurement> {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 20);
  const fileBytes = fs.statSync(from).isDirectory()
    ? fs.readdirSync(from).filter((f) => f.endsWith('.parquet')).reduce((a, f) => a + fs.statSync(path.join(from, f)).size, 0)
    : fs.statSync(from).size;
  const t0 = process.hrtime.bigint();
  const r = await importDataset({ from: [from], out, logger: memoryLogger(), onBatch: sample });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  sample();
  return {
    label,
    fileBytes,
    rows: r.reconciliation.read,
    seconds: +seconds.toFixed(2),
    rowsPerSec: Math.round(r.reconciliation.read / seconds),
    mbPerSec: +(fileBytes / 1e6 / seconds).toFixed(1),
    peakRssMB: Math.round(peak / 2 ** 20),
    baselineRssMB: Math.round(baseline / 2 ** 20),
    images: r.manifest.images.count,
  };
}

function measureInChild(label: string, from: string, out: string): ImportMeasurement {
  const stdout = execFileSync(process.execPath, [RUN_TS, __filename, '--child', label, from, out], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as ImportMeasurement;
}

/**
 * Writes a Pick-a-Pic-shaped file of about `bytes`: rows cycle through the default synthpick
 * comparisons, each image taken from a pool of 512x512 PNGs with pixel noise (~0.5 MB each).
 */
export async function writeBigPickapicFile(file: string, bytes: number, log: (s: string) => void = () => {}, poolSize = 96): Promise<{ rows: number; bytes: number }> {
  const sim = simulateSynthpick(PRESETS.default, 7);
  const rng = Rng.stream(7, 'bench/pool');
  const pool: Uint8Array[] = [];
  for (let k = 0; k < poolSize; k++) {
    const c = sim.comparisons[k];
    const img = renderImage(c.image0, 512);
    for (let i = 0; i < img.data.length; i++) img.data[i] = Math.max(0, Math.min(255, img.data[i] + rng.int(17) - 8));
    pool.push(await encodeRgb(img, 'png'));
  }
  const perRow = pool.reduce((a, b) => a + b.byteLength, 0) / pool.length * 2;
  const rows = Math.ceil(bytes / perRow);
  const w = new ParquetFileWriter(file, PICKAPIC_WRITE_COLUMNS);
  const group = 64;
  for (let s = 0; s < rows; s += group) {
    const part = [];
    for (let i = s; i < Math.min(rows, s + group); i++) {
      const c = sim.comparisons[i % sim.comparisons.length];
      const row = pickapicRow(sim, c, pool[rng.int(pool.length)], pool[rng.int(pool.length)], i);
      part.push({ ...row, ranking_id: BigInt(i + 1), are_different: true, has_label: true, label_0: c.label0 === 0.5 ? 1 : c.label0, label_1: c.label0 === 0.5 ? 0 : 1 - c.label0 });
    }
    w.writeRowGroup(toColumns(part));
    if ((s / group) % 8 === 0) log(`  writing ${path.basename(file)}: ${(w.bytesWritten / 1e9).toFixed(2)} GB`);
  }
  w.finish();
  return { rows, bytes: fs.statSync(file).size };
}

export async function runImportBench(opts: ImportBenchOptions = {}): Promise<ImportBenchReport> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const work = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'userpref-import-bench-'));
  const bigGb = opts.bigGb ?? 2;
  const measurements: ImportMeasurement[] = [];
  try {
    const synthPreset = opts.synthPreset ?? 'default';
    const synth = path.join(work, `synthpick-${synthPreset}`);
    const t0 = Date.now();
    await generateSynthpick({ preset: synthPreset, seed: 42, outDir: synth });
    log(`synthpick ${synthPreset} generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    measurements.push(measureInChild(`synthpick ${synthPreset}`, synth, path.join(work, 'out-synth')));
    log(JSON.stringify(measurements.at(-1)));
    for (const gb of [bigGb / 4, bigGb]) {
      const file = path.join(work, `train-big-${gb}gb.parquet`); // "train-": the import keeps the split its name says
      const t1 = Date.now();
      const w = await writeBigPickapicFile(file, gb * 1e9 * 1.02, log, opts.poolSize);
      log(`wrote ${file}: ${w.rows} rows, ${(w.bytes / 1e9).toFixed(2)} GB in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      const out = path.join(work, `out-${gb}`);
      measurements.push(measureInChild(`pickapic-shaped ${(w.bytes / 1e9).toFixed(2)} GB`, file, out));
      log(JSON.stringify(measurements.at(-1)));
      if (!opts.keep) {
        fs.rmSync(file);
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
    for (const file of opts.pickles ?? []) {
      const out = path.join(work, `out-${path.basename(file)}`);
      measurements.push(measureInChild(`release pickle ${path.basename(file)}`, file, out));
      log(JSON.stringify(measurements.at(-1)));
      fs.rmSync(out, { recursive: true, force: true });
    }
  } finally {
    if (!opts.keep && !opts.workDir) fs.rmSync(work, { recursive: true, force: true });
  }
  return { name: 'dataset-pickapic/import', measurements };
}

if (require.main === module || process.argv[1] === __filename) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const [, label, from, out] = args;
    measureInThisProcess(label, from, out).then(
      (m) => process.stdout.write(JSON.stringify(m) + '\n'),
      (err: Error) => {
        process.stderr.write(`error: ${err.stack ?? err.message}\n`);
        process.exit(1);
      },
    );
  } else {
    const gbAt = args.indexOf('--big-gb');
    const pickles = args.flatMap((a, i) => (args[i - 1] === '--pickle' ? [a] : []));
    runImportBench({ bigGb: gbAt >= 0 ? Number(args[gbAt + 1]) : 2, keep: args.includes('--keep'), pickles }).then(
      (r) => {
        const rows = r.measurements.map((m) => `${m.label.padEnd(28)} ${(m.fileBytes / 1e6).toFixed(0).padStart(7)} MB ${String(m.rows).padStart(7)} rows ${String(m.rowsPerSec).padStart(6)} rows/s ${m.mbPerSec.toFixed(1).padStart(7)} MB/s  peak RSS ${m.peakRssMB} MB (baseline ${m.baselineRssMB} MB)`);
        process.stdout.write(rows.join('\n') + '\n');
      },
      (err: Error) => {
        process.stderr.write(`error: ${err.stack ?? err.message}\n`);
        process.exit(1);
      },
    );
  }
}
