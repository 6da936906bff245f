/**
 * The training loop of both stages (SPEC §3-§5): micro-batches of `batchSize` examples, gradients
 * accumulated over `gradAccum` micro-batches, AdamW with linear decay, evaluation on the
 * VALIDATION split every `evalSteps` updates (the original evaluated stage 2 on its training set,
 * SPEC §8), atomic checkpoints every `saveSteps`, exact resume, and a stop on a non-finite loss that
 * names the step and the batch. Metrics go to metrics.jsonl and, mirrored, to a TensorBoard event
 * file in the run directory (tensorboard.ts).
 *
 * Stage 1 trains the backbone's adapter; stage 2 prepends the preference tokens and trains them
 * (and optionally the adapter too).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, type Backbone, type Logger, type PreferenceDataset, type PreferenceTokens, type WeightedLoss } from '@userpref/core';
import { AdamW, type AdamWState } from './adamw';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint';
import { scoreSplit } from './evaluate';
import { pairwiseAccuracy } from './metrics';
import { objective, plusProbability } from './objective';
import { progressBar } from './progress';
import { TensorBoardMetrics } from './tensorboard';

export interface TrainOptions {
  stage: 1 | 2;
  batchSize: number;
  gradAccum: number;
  epochs: number;
  lr: number;
  weightDecay: number;
  /** Validate every N optimizer updates (0 = only at the end). */
  evalSteps: number;
  /** Checkpoint every N optimizer updates (0 = only at the end). */
  saveSteps: number;
  evalBatchSize: number;
  /** Validation examples per evaluation (all when undefined). */
  evalLimit?: number;
  outDir: string;
  expName: string;
  seed: number;
  /** Continue from the newest checkpoint in the run directory (or the given one). */
  resume?: boolean | string;
  /** Stop after this many updates (for smoke runs); default: the epochs' worth. */
  maxSteps?: number;
  /** Stage 2: also train the adapter. */
  trainAdapter?: boolean;
  /** Called after every update; tests use it to kill or inspect a run. */
  onStep?: (state: TrainerState) => void | Promise<void>;
}

export interface TrainComponents {
  backbone: Backbone;
  losses: readonly WeightedLoss[];
  dataset: PreferenceDataset;
  tokens?: PreferenceTokens;
  logger: Logger;
}

export interface TrainResult {
  runDir: string;
  steps: number;
  finalCheckpoint: string;
  lastLoss: number;
  validation?: { accuracy: number; ci95: [number, number]; n: number };
}

export class TrainingDivergedError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

interface MetricsRecord {
  [k: string]: unknown;
}

export class Trainer {
  constructor(
    private readonly c: TrainComponents,
    private readonly o: TrainOptions,
  ) {
    for (const [k, v] of Object.entries({ batchSize: o.batchSize, gradAccum: o.gradAccum, epochs: o.epochs, evalBatchSize: o.evalBatchSize })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
    }
    if (!(o.lr > 0)) throw new Error(`lr must be positive, got ${o.lr}`);
    if (o.stage === 2 && !c.tokens) throw new Error('stage 2 needs preference tokens: configure plugins.tokens');
  }

  get runDir(): string {
    return path.join(this.o.outDir, this.o.expName);
  }

  private trainables(): tf.Variable[] {
    const { backbone, tokens } = this.c;
    if (this.o.stage === 1) return backbone.adapterVariables();
    const vars = [...tokens!.variables()];
    if (this.o.trainAdapter) vars.push(...backbone.adapterVariables());
    return vars;
  }

  async run(): Promise<TrainResult> {
    const { backbone, dataset, tokens, logger } = this.c;
    const o = this.o;
    if (o.stage === 2) {
      tokens!.build(backbone.textHiddenSize);
      backbone.setPrefixProvider(tokens!);
    }
    const train = dataset.split('train');
    if (train.size === 0) throw new Error('the training split is empty');
    const microPerEpoch = Math.ceil(train.size / o.batchSize);
    const stepsPerEpoch = Math.ceil(microPerEpoch / o.gradAccum);
    const totalSteps = Math.min(o.maxSteps ?? Infinity, stepsPerEpoch * o.epochs);
    let state: TrainerState = {
      stage: o.stage,
      step: 0,
      totalSteps,
      epoch: 0,
      micro: 0,
      seed: o.seed,
      examplesSeen: 0,
      options: { batchSize: o.batchSize, gradAccum: o.gradAccum, lr: o.lr, weightDecay: o.weightDecay, epochs: o.epochs },
    };
    await fs.mkdir(this.runDir, { recursive: true });
    let resumedOptimizer: AdamWState | undefined;
    if (o.resume) {
      const dir = typeof o.resume === 'string' ? o.resume : await latestCheckpoint(this.runDir);
      if (dir) {
        const loaded = await loadCheckpoint(dir);
        if (loaded.state.stage !== o.stage) throw new Error(`${dir} is a stage ${loaded.state.stage} checkpoint, this is stage ${o.stage}`);
        if (o.stage === 1 || o.trainAdapter) await backbone.loadAdapter(path.join(dir, 'adapter'));
        if (tokens && o.stage === 2) await tokens.load(path.join(dir, 'tokens'));
        resumedOptimizer = loaded.optimizer;
        state = { ...loaded.state, totalSteps };
        logger.info(`resumed from ${dir}`, { step: state.step, epoch: state.epoch, micro: state.micro });
      } else {
        logger.info('no checkpoint to resume from; starting fresh', { runDir: this.runDir });
      }
    }
    const vars = this.trainables();
    if (!vars.length) throw new Error(`stage ${o.stage} has no trainable variables`);
    const names = new Set<string>();
    for (const v of vars) {
      if (names.has(v.name)) throw new Error(`two trainable variables share the name '${v.name}'`);
      names.add(v.name);
    }
    // Optimizer state is keyed by the variable's position in the trainable list (tfjs names are
    // process-global and differ between runs); a resume checks that the shapes agree.
    const keyOf = new Map(vars.map((v, i) => [v.name, `param${String(i).padStart(4, '0')}`]));
    const keyed = vars.map((v) => ({ v, key: keyOf.get(v.name)! }));
    const optimizer = new AdamW({ lr: o.lr, weightDecay: o.weightDecay, totalSteps });
    if (resumedOptimizer) {
      for (const { v, key } of keyed) {
        const m = resumedOptimizer.moments[key];
        if (m && !tf.util.arraysEqual(m.shape, v.shape)) throw new Error(`optimizer state ${key} has shape [${m.shape}] but trainable variable ${v.name} has [${v.shape}]`);
      }
      optimizer.loadState(resumedOptimizer);
    }
    const metricsFile = path.join(this.runDir, 'metrics.jsonl');
    // TensorBoard mirror (never throws); its purge step hides a killed run's steps after this resume point.
    const board = new TensorBoardMetrics(this.runDir, { purgeStep: state.step + 1, logger });
    const record = async (r: MetricsRecord) => {
      const now = new Date();
      await fs.appendFile(metricsFile, JSON.stringify({ time: now.toISOString(), ...r }) + '\n');
      await board.record(r, now.getTime() / 1000);
    };
    logger.info(`stage ${o.stage} training`, { examples: train.size, stepsPerEpoch, totalSteps, trainable: vars.reduce((a, v) => a + v.size, 0), runDir: this.runDir });

    const bar = progressBar(`stage ${o.stage}`, totalSteps, state.step);
    const started = Date.now();
    const startExamples = state.examplesSeen;
    let lastLoss = NaN;
    let lastCheckpoint = '';
    const order = (epoch: number) => Rng.stream(o.seed, `order-${epoch}`).shuffle([...Array(train.size).keys()]);
    let epochOrder = order(state.epoch);
    const writers = {
      saveAdapter: o.stage === 1 || o.trainAdapter ? (d: string) => backbone.saveAdapter(d) : undefined,
      saveTokens: o.stage === 2 ? (d: string) => tokens!.save(d) : undefined,
    };

    while (state.step < totalSteps) {
      const acc: Record<string, tf.Tensor> = {};
      let micro = 0;
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      const termSums: Record<string, number> = {};
      for (; micro < o.gradAccum; micro++) {
        if (state.micro >= microPerEpoch) {
          if (micro > 0) break; // the epoch's last update takes fewer micro-batches
          state.epoch += 1;
          state.micro = 0;
          epochOrder = order(state.epoch);
        }
        const idx = epochOrder.slice(state.micro * o.batchSize, (state.micro + 1) * o.batchSize);
        const examples = await Promise.all(idx.map((i) => train.get(i, state.epoch)));
        const prepared = await backbone.prepare(examples);
        const dropoutSeed = Rng.stream(o.seed, `dropout-${state.step}-${micro}`).seed();
        let parts: { terms: Record<string, tf.Scalar>; right: tf.Scalar } | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const logits = backbone.pairLogits(prepared, { training: true, seed: dropoutSeed });
          const obj = objective(logits, backbone.readout, this.c.losses);
          const right = tf.sum(tf.cast(tf.greater(plusProbability(logits.liked, backbone.readout), plusProbability(logits.disliked, backbone.readout)), 'float32')) as tf.Scalar;
          parts = { terms: Object.fromEntries(Object.entries(obj.terms).map(([k, v]) => [k, tf.keep(v)])), right: tf.keep(right) };
          return obj.total;
        }, vars);
        prepared.dispose();
        const lossValue = (await value.data())[0];
        value.dispose();
        if (!Number.isFinite(lossValue)) {
          Object.values(grads).forEach((g) => g.dispose());
          Object.values(acc).forEach((g) => g.dispose());
          const users = examples.map((e) => e.userId).join(', ');
          const msg = `loss is ${lossValue} at step ${state.step + 1} (epoch ${state.epoch}, micro-batch ${state.micro}, examples ${idx.join(', ')}, users ${users}); stopping. Last good checkpoint: ${lastCheckpoint || (await latestCheckpoint(this.runDir)) || 'none'}`;
          logger.error(msg);
          bar.stop();
          throw new TrainingDivergedError(msg);
        }
        for (const [name, g] of Object.entries(grads)) {
          if (acc[name]) {
            const sum = tf.add(acc[name], g);
            acc[name].dispose();
            g.dispose();
            acc[name] = sum;
          } else acc[name] = g;
        }
        for (const [k, v] of Object.entries(parts!.terms)) {
          termSums[k] = (termSums[k] ?? 0) + (await v.data())[0];
          v.dispose();
        }
        correct += (await parts!.right.data())[0];
        parts!.right.dispose();
        lossSum += lossValue;
        seen += examples.length;
        state.micro += 1;
      }
      // Mean over the micro-batches of this update (HF divides each micro loss by the count).
      const scaled: Record<string, tf.Tensor> = {};
      for (const [k, g] of Object.entries(acc)) {
        scaled[keyOf.get(k)!] = tf.div(g, micro);
        g.dispose();
      }
      const lr = optimizer.currentLr();
      optimizer.apply(keyed, scaled);
      Object.values(scaled).forEach((g) => g.dispose());
      state.step += 1;
      state.examplesSeen += seen;
      lastLoss = lossSum / micro;
      const rate = (state.examplesSeen - startExamples) / ((Date.now() - started) / 1000);
      const trainAcc = correct / seen;
      bar.update(state.step, { loss: lastLoss.toFixed(4), acc: trainAcc.toFixed(3), rate: rate.toFixed(2) });
      await record({ stage: o.stage, step: state.step, epoch: state.epoch, loss: lastLoss, accuracy: trainAcc, lr, examplesPerSecond: rate, ...Object.fromEntries(Object.entries(termSums).map(([k, v]) => [`loss/${k}`, v / micro])) });

      const last = state.step === totalSteps;
      if ((o.evalSteps > 0 && state.step % o.evalSteps === 0) || last) {
        const val = await this.validate();
        if (val) {
          await record({ stage: o.stage, step: state.step, split: 'validation', accuracy: val.accuracy, ci95: val.ci95, n: val.n });
          logger.info(`validation at step ${state.step}`, { accuracy: val.accuracy, n: val.n });
          state.bestValAccuracy = Math.max(state.bestValAccuracy ?? 0, val.accuracy);
          if (last) {
            bar.stop();
            lastCheckpoint = await saveCheckpoint(this.runDir, state, optimizer.state(), writers);
            await o.onStep?.(state);
            return { runDir: this.runDir, steps: state.step, finalCheckpoint: lastCheckpoint, lastLoss, validation: val };
          }
        }
      }
      if ((o.saveSteps > 0 && state.step % o.saveSteps === 0) || last) {
        lastCheckpoint = await saveCheckpoint(this.runDir, state, optimizer.state(), writers);
      }
      await o.onStep?.(state);
    }
    bar.stop();
    if (!lastCheckpoint) lastCheckpoint = (await latestCheckpoint(this.runDir)) ?? '';
    return { runDir: this.runDir, steps: state.step, finalCheckpoint: lastCheckpoint, lastLoss };
  }

  private async validate() {
    const val = this.c.dataset.split('validation');
    if (val.size === 0) return undefined;
    const scores = await scoreSplit(this.c.backbone, val, { batchSize: this.o.evalBatchSize, limit: this.o.evalLimit });
    const r = pairwiseAccuracy(scores, { kind: 'drop' }, { samples: 200, seed: this.o.seed });
    return { accuracy: r.accuracy, ci95: r.ci95, n: r.n };
  }
}
