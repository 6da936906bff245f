/**
 * A stand-in for a pretrained base. The paper starts LoRA from idefics2-8b, which already reads
 * images and text; the embedded demo's `small` checkpoint is random, so LoRA would adapt nothing.
 * This trains ALL weights of the connector and the text model (vision tower frozen, as in the
 * paper, so its cached outputs stay valid) for a short while with the stage-1 objective
 * (base + contrastive, SPEC §4) on a synthpick set of OTHER users (generated with another seed:
 * other tastes, same attribute space), and writes the result as a Hugging Face checkpoint that
 * then is the base of stage 1 and stage 2. The base thereby learns the general skill of reading a
 * preference history, as a model trained on other people's data would; stage 1 adapts it to the
 * demo's users with LoRA.
 *
 * The loop is the training package's Trainer, stage 1, given a Backbone wrapper whose
 * adapterVariables() returns the base weights (made tf.Variables by
 * Idefics2Model.trainableBaseVariables) and whose saveAdapter() writes a full HF checkpoint: so
 * AdamW, accumulation, the divergence stop, metrics.jsonl and the progress bar are the ones stage
 * 1 uses. The LoRA the backbone attaches at init (B = 0, an exact no-op) is merged away first, so
 * only base weights exist. Deterministic: same options -> same bytes (wasm/cpu backends, one thread).
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone, ForwardOptions, Logger, PairLogits, PreferenceBatch, PreferenceImage, PreparedBatch, PrefixProvider, ReadoutTokens } from '@userpref/core';
import { createLogger } from '@userpref/core';
import { Idefics2Backbone, fanInReinit, type ExportDtype } from '@userpref/backbone-idefics2';
import { PickapicDataset } from '@userpref/dataset-pickapic';
import { BasePreferenceLoss, ContrastivePreferenceLoss } from '@userpref/loss-preference';
import { Trainer, pairwiseAccuracy, scoreSplit, type TrainerState } from '@userpref/training';

export interface PretrainOptions {
  /** Checkpoint directory to start from (e.g. the random `small` one). */
  base: string;
  /** Processed dataset directory of the pre-training users (its train split is used). */
  data: string;
  /** New checkpoint directory (must differ from `base`). */
  out: string;
  /** Optimizer updates (default 200). */
  steps?: number;
  /** Peak learning rate, linear decay to 0 over `steps` (default 1e-3). */
  lr?: number;
  /** Examples per micro-batch (default 4). */
  batch?: number;
  /** Micro-batches per update (default 1): an update sees batch * gradAccum examples. */
  gradAccum?: number;
  weightDecay?: number;
  /** Seed of the data order, reference draws and dropout (default 0). */
  seed?: number;
  /** Reference pairs per pre-training example (default 8). */
  refPairNum?: number;
  /**
   * Starting weights of the trained parts: the checkpoint's own ('checkpoint', default), or
   * fan-in scaled ('fan-in', see fanInReinit: at the CPU presets' widths the checkpoint's 0.02
   * scale leaves the images nearly indistinguishable to the text model).
   */
  init?: 'checkpoint' | 'fan-in';
  /** On-disk dtype of the written weights (default F32). */
  dtype?: ExportDtype;
  /** Processor settings, as the demo's: images resized to imageSize, prompts cut to maxPromptLen characters. */
  imageSize?: number;
  maxPromptLen?: number | null;
  usePrompt?: boolean;
  /**
   * A processed dataset to measure on while pre-training (e.g. the demo's): accuracy of the base
   * as it stands, without LoRA, on `evalSplit`, for each of `evalRefPairs`. Default: none.
   */
  evalData?: string;
  evalSplit?: 'train' | 'validation' | 'test';
  /** Examples of that split (seeded subset, default 100). */
  evalLimit?: number;
  /** Measure every this many updates (0 = before and after only; default 0). */
  evalEvery?: number;
  /** Reference-pair counts to measure with (the first K of each example; default [8, 0]). */
  evalRefPairs?: number[];
  /** Seed of evalData's reference draws (default 42, the demo's run seed). */
  evalSeed?: number;
  /** Examples of the pre-training data's own validation split scored at the end (default 64). */
  validationLimit?: number;
  /** Keep the Trainer's run directory (metrics.jsonl, last checkpoint) here; default: a temporary one, removed. */
  runDir?: string;
  logger?: Logger;
  /** Called after every update with its loss (tests, progress). */
  onStep?: (step: number, loss: number) => void;
}

export interface PretrainEvaluation {
  step: number;
  refPairs: number;
  accuracy: number;
  ci95: [number, number];
  n: number;
}

export interface PretrainResult {
  out: string;
  files: string[];
  steps: number;
  /** Training loss per update (mean over the update's examples). */
  losses: number[];
  /** Accuracy on the pre-training data's own validation split at the end (in distribution). */
  validation?: { accuracy: number; n: number };
  evaluations: PretrainEvaluation[];
  trainedParameters: number;
  /** Wall time of the updates alone (no evaluation), seconds. */
  trainSeconds: number;
  secondsPerStep: number;
}

export const PRETRAINING_FILE = 'pretraining.json';

/**
 * The Backbone the Trainer sees: the IDEFICS2 backbone with its base weights in the role of the
 * adapter. Stage-1 code trains adapterVariables() and saves them with saveAdapter(), which here
 * are all base weights and a full checkpoint directory.
 */
export class FullParameterBackbone implements Backbone {
  constructor(
    readonly inner: Idefics2Backbone,
    private readonly variables: tf.Variable[],
  ) {}

  async init(): Promise<void> {
    // The inner backbone is initialised by whoever built this wrapper.
  }
  get textHiddenSize(): number {
    return this.inner.textHiddenSize;
  }
  get readout(): ReadoutTokens {
    return this.inner.readout;
  }
  prepare(batch: PreferenceBatch): Promise<PreparedBatch> {
    return this.inner.prepare(batch);
  }
  pairLogits(prepared: PreparedBatch, options: ForwardOptions): PairLogits {
    return this.inner.pairLogits(prepared, options);
  }
  setPrefixProvider(provider: PrefixProvider | null): void {
    this.inner.setPrefixProvider(provider);
  }
  imageEmbeddings(images: readonly PreferenceImage[]): Promise<tf.Tensor2D> {
    return this.inner.imageEmbeddings(images);
  }
  adapterVariables(): tf.Variable[] {
    return this.variables;
  }
  async saveAdapter(dir: string): Promise<void> {
    await this.inner.idefics2.saveCheckpoint(dir, { sourceDir: this.inner.checkpointDir });
  }
  async loadAdapter(): Promise<void> {
    throw new Error('resuming a pre-training run is not supported: run it again (same options give the same result)');
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return v;
}

export async function pretrainIdefics2(options: PretrainOptions): Promise<PretrainResult> {
  const steps = positiveInt('steps', options.steps ?? 200);
  const batch = positiveInt('batch', options.batch ?? 4);
  const gradAccum = positiveInt('gradAccum', options.gradAccum ?? 1);
  const lr = options.lr ?? 1e-3;
  if (!(lr > 0)) throw new Error(`lr must be positive, got ${lr}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  const refPairNum = options.refPairNum ?? 8;
  if (!Number.isInteger(refPairNum) || refPairNum < 0) throw new Error(`refPairNum must be an integer >= 0, got ${refPairNum}`);
  const dtype = options.dtype ?? 'F32';
  const evalEvery = options.evalEvery ?? 0;
  const evalRefPairs = options.evalRefPairs ?? [8, 0];
  const validationLimit = positiveInt('validationLimit', options.validationLimit ?? 64);
  const log = options.logger ?? createLogger({});
  const base = path.resolve(options.base);
  const out = path.resolve(options.out);
  if (base === out) throw new Error(`--out must differ from --base (${base})`);
  const processor = { usePrompt: options.usePrompt ?? true, maxPromptLen: options.maxPromptLen === undefined ? 100 : options.maxPromptLen };
  const imageSize = options.imageSize ?? 64;

  const inner = new Idefics2Backbone({ path: base, ...processor, mergeAdapter: true }, { seed, baseDir: process.cwd() }, log);
  await inner.init();
  const model = inner.idefics2;
  const weights = model.trainableBaseVariables({ includeVision: false });
  const init = options.init ?? 'checkpoint';
  if (init === 'fan-in') log.info('pretrain: fan-in scaled starting weights', { redrawn: fanInReinit(weights, model.config, seed) });
  else if (init !== 'checkpoint') throw new Error(`pretrain: init must be 'checkpoint' or 'fan-in', got '${String(init)}'`);
  const variables = weights.map((w) => w.variable);
  const trainedParameters = variables.reduce((a, v) => a + v.size, 0);
  const backbone = new FullParameterBackbone(inner, variables);

  const dataset = new PickapicDataset({ path: path.resolve(options.data), refPairNum, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize, tiePolicy: 'drop' }, { seed, baseDir: process.cwd() }, log);
  await dataset.init();
  const trainSize = dataset.split('train').size;
  if (trainSize === 0) throw new Error(`${options.data}: the train split has no example with ${refPairNum} reference pairs`);

  let evalSplit: ReturnType<PickapicDataset['split']> | null = null;
  let evalSet: PickapicDataset | null = null;
  if (options.evalData) {
    const maxRefs = Math.max(...evalRefPairs, 0);
    evalSet = new PickapicDataset(
      { path: path.resolve(options.evalData), refPairNum: maxRefs, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize, tiePolicy: 'drop', limit: options.evalLimit ?? 100 },
      { seed: options.evalSeed ?? 42, baseDir: process.cwd() },
      log,
    );
    await evalSet.init();
    evalSplit = evalSet.split(options.evalSplit ?? 'validation');
  }
  const evaluations: PretrainEvaluation[] = [];
  const measure = async (step: number) => {
    if (!evalSplit) return;
    for (const k of evalRefPairs) {
      // Small batches: the [B, H, T, T] attention of long batches costs more than it saves.
      const scores = await scoreSplit(inner, evalSplit, { batchSize: 2, referencePairs: k });
      const r = pairwiseAccuracy(scores, { kind: 'drop' }, { samples: 1000, seed: 0 });
      evaluations.push({ step, refPairs: k, accuracy: r.accuracy, ci95: r.ci95, n: r.n });
      log.info(`accuracy of the base on ${options.evalData} (${options.evalSplit ?? 'validation'}) at step ${step} with ${k} reference pairs: ${(100 * r.accuracy).toFixed(1)}%`, { n: r.n, ci95: r.ci95 });
    }
  };

  const tempRun = !options.runDir;
  const runRoot = options.runDir ? path.resolve(options.runDir) : await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-pretrain-'));
  try {
    await measure(0);
    let trainMs = 0;
    let mark = Date.now();
    const trainer = new Trainer(
      { backbone, losses: [{ loss: new BasePreferenceLoss(), weight: 1 }, { loss: new ContrastivePreferenceLoss(), weight: 1 }], dataset, logger: log },
      {
        stage: 1,
        batchSize: batch,
        gradAccum,
        // Enough epochs for `steps` updates; maxSteps stops there and sets the linear decay's length.
        epochs: Math.ceil((steps * batch * gradAccum) / trainSize) + 1,
        maxSteps: steps,
        lr,
        weightDecay: options.weightDecay ?? 0.01,
        evalSteps: 0,
        saveSteps: 0,
        evalBatchSize: 2,
        evalLimit: validationLimit,
        outDir: runRoot,
        expName: 'pretrain',
        seed,
        onStep: async (state: TrainerState) => {
          trainMs += Date.now() - mark;
          if (evalEvery > 0 && state.step % evalEvery === 0 && state.step !== steps) await measure(state.step);
          mark = Date.now();
        },
      },
    );
    const result = await trainer.run();
    const losses = await readLosses(path.join(result.runDir, 'metrics.jsonl'));
    losses.forEach((l, i) => options.onStep?.(i + 1, l));
    await measure(result.steps);

    const files = await model.saveCheckpoint(out, {
      dtype,
      sourceDir: base,
      configOverrides: { _name_or_path: `userpref/${path.basename(base)}-pretrained` },
      metadata: { userpref: 'pretrained stand-in; see pretraining.json' },
    });
    const record = {
      kind: 'userpref-pretraining',
      description:
        'Full-parameter pre-training of the connector and text model (vision tower frozen) with the stage-1 objective (base + contrastive, SPEC §4) on synthpick users other than the demo\'s: a stand-in for a pretrained base. Made by apps/pretrain (npx nx run pretrain:run).',
      base: options.base,
      data: options.data,
      dataSource: await describeData(path.resolve(options.data)),
      options: { steps, lr, batch, gradAccum, weightDecay: options.weightDecay ?? 0.01, seed, refPairNum, dtype, imageSize, init, ...processor, schedule: 'AdamW, linear decay to 0, no warm-up' },
      trainedParameters,
      trainExamples: trainSize,
      losses,
      validationOfPretrainingData: result.validation ? { accuracy: result.validation.accuracy, n: result.validation.n } : null,
      evaluations: evaluations.map((e) => ({ ...e, data: options.evalData })),
    };
    const recordFile = path.join(out, PRETRAINING_FILE);
    await fs.writeFile(recordFile, JSON.stringify(record, null, 2) + '\n');
    files.push(recordFile);
    return {
      out,
      files,
      steps: result.steps,
      losses,
      validation: result.validation ? { accuracy: result.validation.accuracy, n: result.validation.n } : undefined,
      evaluations,
      trainedParameters,
      trainSeconds: trainMs / 1000,
      secondsPerStep: trainMs / 1000 / Math.max(1, result.steps),
    };
  } finally {
    inner.dispose();
    await dataset.close();
    await evalSet?.close();
    if (tempRun) await fs.rm(runRoot, { recursive: true, force: true });
  }
}

async function readLosses(file: string): Promise<number[]> {
  const text = await fs.readFile(file, 'utf8');
  const losses: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { step?: number; loss?: number; split?: string };
    if (r.split === undefined && typeof r.loss === 'number' && typeof r.step === 'number') losses[r.step - 1] = r.loss;
  }
  return losses;
}

/** Which synthpick set (preset, seed) a processed directory holds, from its manifest. */
async function describeData(dir: string): Promise<Record<string, unknown>> {
  try {
    const m = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as { splitProtocol?: string; seed?: number; synthetic?: { kind?: string; preset?: string; seed?: number; summary?: unknown } };
    return { splitProtocol: m.splitProtocol, importSeed: m.seed, synthetic: m.synthetic ? { kind: m.synthetic.kind, preset: m.synthetic.preset, seed: m.synthetic.seed, summary: m.synthetic.summary } : null };
  } catch (e) {
    throw new Error(`${dir}: cannot read manifest.json (${(e as Error).message})`);
  }
}
