/**
 * Throughput of the tfjs IDEFICS2 on this CPU.
 *
 * benchForward: for the `tiny` and `small` random presets, one SPEC-shaped example (8 reference
 * pairs + target = 17 images, two target sequences like pairLogits) timed as: vision tower (once per
 * image, what the cache saves), connector + text forward in eval, and connector + text forward +
 * backward w.r.t. LoRA (a training step's model part). Reports text tokens/s and peak RSS.
 *
 * benchBackbone: the Backbone end to end on `small` (prepare + pairLogits; training adds the
 * backward w.r.t. LoRA), training step time per example and evaluation pairs/s, with and without
 * the vision-output cache (imageCacheBytes 0 runs the tower for every image of every batch) and
 * with and without the shared reference prefix: 4 rows, each in its own child process (clean peak
 * RSS: the wasm heap never shrinks). Examples are 8 reference pairs + target with ~100-character
 * prompts (~1.8k tokens); every configuration sees the same examples for a warm-up epoch, then is
 * timed over a second epoch (so the cache is warm where it is enabled). Wall and CPU time are both
 * reported: other jobs may share the machine (the load average is recorded).
 *
 * Run: node tools/scripts/run-ts.js plugins/backbone-idefics2/bench/forward.bench.ts [tiny|small ...]
 *      node tools/scripts/run-ts.js plugins/backbone-idefics2/bench/forward.bench.ts backbone
 */
import { fork, spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime, runtimeInfo, type BackendName } from '@userpref/runtime';
import { writeIdefics2Checkpoint, type PresetName } from '../src/checkpoint';
import { LoraAdapter } from '@userpref/mllm';
import { PAPER_LORA } from '../src/lora';
import { Idefics2Backbone } from '../src/backbone';
import { Idefics2Model } from '../src/model/idefics2';
import { benchExample } from './examples';

export interface ForwardBenchResult {
  preset: PresetName;
  backend: string;
  parameters: number;
  images: number;
  sequences: number;
  tokensPerSequence: number;
  visionMsPerImage: number;
  forwardMs: number;
  forwardTokensPerSecond: number;
  trainStepMs: number;
  trainTokensPerSecond: number;
  peakRssMb: number;
}

function timeIt(fn: () => void, repeats: number): number {
  fn(); // warm-up (kernel set-up, allocation)
  const t = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e6 / repeats;
}

export async function benchForward(preset: PresetName, repeats = 3): Promise<ForwardBenchResult> {
  await initRuntime({ device: 'cpu' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `bench-idefics2-${preset}-`));
  let peak = process.memoryUsage().rss;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 20);
  try {
    const written = await writeIdefics2Checkpoint({ preset, outDir: dir, seed: 0 });
    const model = await Idefics2Model.load(dir);
    const adapter = LoraAdapter.attach(model, { ...PAPER_LORA, dropout: 0 }, 0);
    const c = model.config;
    const L = c.perceiver.numLatents;
    const size = c.vision.imageSize;
    const nImages = 17;
    // SPEC §2 layout: per image ~ "User:" + fake + L image tokens + fake + ~20 prompt tokens + answer turn.
    const ids: number[] = [c.text.bosTokenId ?? 1];
    for (let i = 0; i < nImages; i++) {
      ids.push(5, 6, 7);
      ids.push(c.imageTokenId - 1, ...Array(L).fill(c.imageTokenId), c.imageTokenId - 1);
      for (let k = 0; k < 20; k++) ids.push(10 + ((i * 7 + k) % 200));
      if (i < nImages - 1) ids.push(11, 12, 13, 14);
    }
    const T = ids.length;
    const pixels = tf.randomUniform([nImages, 3, size, size], -1, 1, 'float32', 1) as tf.Tensor4D;
    let vision = model.visionTower(pixels, null);
    const visionMs = timeIt(() => {
      vision.hidden.dispose();
      vision = model.visionTower(pixels, null);
    }, repeats);
    // Two sequences (liked / disliked target) as pairLogits runs them.
    const ids2 = [...ids, ...ids];
    const run = () => {
      const feats = model.connector(vision.hidden, vision.patchValid);
      const both = tf.concat([feats, feats], 0) as tf.Tensor3D;
      const emb = model.embed(ids2, 2, T, both);
      const out = model.textForward(emb.embeds, { lastIndex: emb.lastIndex, ctx: { training: false } });
      const v = out.logits.dataSync()[0];
      tf.dispose([feats, both, emb.embeds, out.logits]);
      return v;
    };
    const forwardMs = timeIt(() => void run(), repeats);
    const vars = adapter.variables();
    const trainStepMs = timeIt(() => {
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const feats = model.connector(vision.hidden, vision.patchValid, { training: true, seed: 1 });
          const both = tf.concat([feats, feats], 0) as tf.Tensor3D;
          const emb = model.embed(ids2, 2, T, both);
          const out = model.textForward(emb.embeds, { lastIndex: emb.lastIndex, ctx: { training: true, seed: 1 } });
          return tf.mean(out.logits) as tf.Scalar;
        }),
        vars,
      );
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    }, repeats);
    sample();
    tf.dispose([pixels, vision.hidden]);
    adapter.detach();
    model.dispose();
    return {
      preset,
      backend: runtimeInfo()?.backend ?? tf.getBackend(),
      parameters: written.parameters,
      images: nImages,
      sequences: 2,
      tokensPerSequence: T,
      visionMsPerImage: visionMs / nImages,
      forwardMs,
      forwardTokensPerSecond: (2 * T) / (forwardMs / 1000),
      trainStepMs,
      trainTokensPerSecond: (2 * T) / (trainStepMs / 1000),
      peakRssMb: peak / 2 ** 20,
    };
  } finally {
    clearInterval(timer);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export interface BackboneBenchRow {
  backend: string;
  visionCache: boolean;
  sharedPrefix: boolean;
  trainBatch: number;
  evalBatch: number;
  tokensPerSequence: number;
  /** Mean wall / CPU milliseconds of one training example (prepare + forward + backward). */
  trainMsPerExample: number;
  trainCpuMsPerExample: number;
  /** Examples (liked/disliked pairs) scored per second in evaluation (prepare + forward). */
  evalPairsPerSecond: number;
  evalCpuPairsPerSecond: number;
  /** Peak RSS of the child process that ran this row. */
  peakRssMb: number;
}

export interface BackboneBenchResult {
  preset: PresetName;
  /** The backends measured, in order (every one that loads here unless asked otherwise). */
  backends: string[];
  loadAverage: number[];
  rows: BackboneBenchRow[];
  /** The PyTorch like-for-like (bench/torch_step.py), when USERPREF_TORCH_PYTHON names a Python with torch. */
  torch?: TorchBenchResult | { skipped: string };
}

export interface TorchBenchResult {
  torch: string;
  threads: number;
  tokensPerSequence: number;
  trainMsPerExample: number;
  trainCpuMsPerExample: number;
  evalPairsPerSecond: number;
  evalCpuPairsPerSecond: number;
  peakRssMb: number;
}

export interface BackboneBenchOptions {
  preset?: PresetName;
  /** Distinct training examples (timed over the second pass). */
  trainExamples?: number;
  trainBatch?: number;
  /** Distinct evaluation examples (distinct users: no prefix is shared across examples). */
  evalExamples?: number;
  evalBatch?: number;
  /** Backends to compare (default: env USERPREF_BENCH_BACKENDS, else every one that loads here, tensorflow then wasm). */
  backends?: BackendName[];
  /** Python with torch + transformers + peft for the like-for-like (default env USERPREF_TORCH_PYTHON). */
  torchPython?: string;
  /** Only these (vision cache, shared prefix) rows per backend (default all four; `npm run bench --quick` takes the default one). */
  rows?: Array<{ visionCache: boolean; sharedPrefix: boolean }>;
}

interface RowRequest {
  backend: BackendName;
  dir: string;
  /** Write the first training example's token ids and shapes here (for the PyTorch like-for-like). */
  dumpRequest?: string;
  visionCache: boolean;
  sharedPrefix: boolean;
  trainExamples: number;
  trainBatch: number;
  evalExamples: number;
  evalBatch: number;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** One row, in this process (the child side of benchBackbone). */
async function backboneRow(req: RowRequest): Promise<BackboneBenchRow> {
  await initRuntime({ device: 'cpu', prefer: req.backend });
  const bb = new Idefics2Backbone(
    { path: req.dir, imageCacheBytes: req.visionCache ? 2 ** 30 : 0, sharedPrefix: req.sharedPrefix },
    { seed: 0, baseDir: '/' },
  );
  await bb.init();
  const vars = bb.adapterVariables();
  const train = Array.from({ length: req.trainExamples }, (_, i) => benchExample(i, 8, i % 2));
  const evalSet = Array.from({ length: req.evalExamples }, (_, i) => benchExample(1000 + i, 8, i % 2));
  let tokens = 0;
  if (req.dumpRequest) {
    const prepared = (await bb.prepare([train[0]])) as unknown as { seqLen: number; inputIds: Int32Array; dispose(): void };
    const config = JSON.parse(await fs.readFile(path.join(req.dir, 'config.json'), 'utf8'));
    await fs.writeFile(req.dumpRequest, JSON.stringify({
      checkpoint: req.dir,
      inputIds: Array.from(prepared.inputIds.subarray(0, prepared.seqLen)),
      images: 2 * train[0].references.length + 1,
      imageSize: config.vision_config.image_size,
      readout: bb.readout.positive,
      trainExamples: req.trainExamples,
      evalExamples: req.evalExamples,
      evalBatch: req.evalBatch,
      threads: os.cpus().length,
    }));
    prepared.dispose();
  }
  const trainEpoch = async (step0: number) => {
    for (let i = 0; i < train.length; i += req.trainBatch) {
      const prepared = await bb.prepare(train.slice(i, i + req.trainBatch));
      tokens = (prepared as unknown as { seqLen: number }).seqLen;
      const { value, grads } = tf.variableGrads(() => {
        const o = bb.pairLogits(prepared, { training: true, seed: step0 + i });
        const pos = bb.readout.positive;
        // A loss of the SPEC §4 shape (both readout logits of both sequences); the backward's cost
        // does not depend on its exact form.
        return tf.sub(tf.mean(tf.gather(o.disliked, [pos], 1)), tf.mean(tf.gather(o.liked, [pos], 1))) as tf.Scalar;
      }, vars);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
      prepared.dispose();
    }
  };
  const evalEpoch = async () => {
    for (let i = 0; i < evalSet.length; i += req.evalBatch) {
      const prepared = await bb.prepare(evalSet.slice(i, i + req.evalBatch));
      const o = bb.pairLogits(prepared, { training: false });
      o.liked.dataSync();
      tf.dispose([o.liked, o.disliked]);
      prepared.dispose();
    }
  };
  await trainEpoch(0); // warm-up epoch (fills the cache where enabled)
  let w = Date.now();
  let c = cpuMs();
  await trainEpoch(1000);
  const trainWall = (Date.now() - w) / train.length;
  const trainCpu = (cpuMs() - c) / train.length;
  await evalEpoch();
  w = Date.now();
  c = cpuMs();
  await evalEpoch();
  const evalWall = (Date.now() - w) / 1000;
  const evalCpu = (cpuMs() - c) / 1000;
  bb.dispose();
  return {
    backend: runtimeInfo()?.backend ?? tf.getBackend(),
    visionCache: req.visionCache,
    sharedPrefix: req.sharedPrefix,
    trainBatch: req.trainBatch,
    evalBatch: req.evalBatch,
    tokensPerSequence: tokens,
    trainMsPerExample: trainWall,
    trainCpuMsPerExample: trainCpu,
    evalPairsPerSecond: evalSet.length / evalWall,
    evalCpuPairsPerSecond: evalSet.length / evalCpu,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  };
}

/** The CPU backends that initialise here (each probed in a child process: tfjs-node may not load). */
export function availableBackends(): BackendName[] {
  const out: BackendName[] = [];
  const root = path.join(__dirname, '..', '..', '..');
  const probe = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { cwd: root, stdio: 'ignore', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  if (probe.status === 0) out.push('tensorflow');
  out.push('wasm');
  return out;
}

/** The 4 rows (vision cache x shared prefix) per backend, each in a child process; then PyTorch's like-for-like. */
export async function benchBackbone(options: BackboneBenchOptions = {}): Promise<BackboneBenchResult> {
  const preset = options.preset ?? 'small';
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `bench-backbone-${preset}-`));
  try {
    await writeIdefics2Checkpoint({ preset, outDir: dir, seed: 0 });
    const loadAverage = os.loadavg();
    const pinned = process.env.USERPREF_BENCH_BACKENDS?.split(',').map((b) => b.trim()).filter(Boolean) as BackendName[] | undefined;
    const backends = options.backends ?? (pinned?.length ? pinned : availableBackends());
    const torchPython = options.torchPython ?? process.env.USERPREF_TORCH_PYTHON;
    const torchRequest = path.join(dir, 'torch-request.json');
    const rows: BackboneBenchRow[] = [];
    for (const backend of backends) {
      for (const visionCache of [false, true]) {
        for (const sharedPrefix of [false, true]) {
          if (options.rows && !options.rows.some((r) => r.visionCache === visionCache && r.sharedPrefix === sharedPrefix)) continue;
          const req: RowRequest = {
            backend,
            dir,
            dumpRequest: torchPython && rows.length === 0 ? torchRequest : undefined,
            visionCache,
            sharedPrefix,
            trainExamples: options.trainExamples ?? 3,
            trainBatch: options.trainBatch ?? 1,
            evalExamples: options.evalExamples ?? 8,
            evalBatch: options.evalBatch ?? 4,
          };
          rows.push(await runChild(req));
        }
      }
    }
    let torch: BackboneBenchResult['torch'];
    if (torchPython) {
      const script = path.join(__dirname, '..', '..', '..', 'bench', 'torch_step.py');
      // Passive OpenMP waits: with active ones, PyTorch's 2 threads spin on barriers and run ~30x
      // slower whenever other jobs share the cores (measured here at load average 13-20).
      const r = spawnSync(torchPython, [script, '--request', torchRequest], { encoding: 'utf8', maxBuffer: 16 << 20, env: { OMP_WAIT_POLICY: 'PASSIVE', ...process.env } });
      const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
      if (r.status === 0 && line.startsWith('{')) torch = JSON.parse(line) as TorchBenchResult;
      else torch = { skipped: `${torchPython} ${path.basename(script)} failed (exit ${r.status}): ${(r.stderr ?? String(r.error)).trim().split('\n').slice(-2).join(' | ')}` };
    }
    return { preset, backends, loadAverage: loadAverage.map((x, i) => (x + os.loadavg()[i]) / 2), rows, ...(torch ? { torch } : {}) };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function runChild(req: RowRequest): Promise<BackboneBenchRow> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, '..', '..', '..', 'tools', 'scripts', 'run-ts.js'), [__filename, '--row', JSON.stringify(req)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: BackboneBenchRow | null = null;
    child.on('message', (m) => (result = m as BackboneBenchRow));
    child.on('error', reject);
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`bench row ${JSON.stringify({ ...req, dir: undefined })} exited with code ${code}`))));
  });
}

if (require.main === module || process.argv[1] === __filename) {
  (async () => {
    const args = process.argv.slice(2);
    if (args[0] === '--row') {
      const row = await backboneRow(JSON.parse(args[1]) as RowRequest);
      process.send?.(row);
      return;
    }
    if (args[0] === 'backbone') {
      const r = await benchBackbone({ preset: (args[1] as PresetName) ?? 'small' });
      console.log(JSON.stringify(r, null, 2));
      return;
    }
    const presets = (args.length > 0 ? args : ['tiny', 'small']) as PresetName[];
    for (const p of presets) {
      const r = await benchForward(p);
      console.log(JSON.stringify(r));
    }
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
