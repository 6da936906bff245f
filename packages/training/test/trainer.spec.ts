import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { memoryLogger } from '@userpref/core';
import { Trainer, TrainingDivergedError, latestCheckpoint, scoreSplit, pairwiseAccuracy, type TrainOptions } from '../src';
import { ToyBackbone, ceLoss, toyDataset } from './toy';

describe('Trainer', () => {
  let tmp: string;
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'trainer-'));
  });
  afterEach(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const opts = (over: Partial<TrainOptions> = {}): TrainOptions => ({
    stage: 1, batchSize: 2, gradAccum: 2, epochs: 3, lr: 0.05, weightDecay: 0.01, evalSteps: 0, saveSteps: 4,
    evalBatchSize: 8, outDir: tmp, expName: 'run', seed: 7, ...over,
  });

  it('learns the toy preference and reports validation accuracy', async () => {
    const backbone = new ToyBackbone();
    const dataset = toyDataset();
    const before = pairwiseAccuracy(await scoreSplit(backbone, dataset.split('test'), { batchSize: 8 }), { kind: 'drop' }).accuracy;
    const result = await new Trainer({ backbone, dataset, losses: [{ loss: ceLoss, weight: 1 }], logger: memoryLogger() }, opts()).run();
    const after = pairwiseAccuracy(await scoreSplit(backbone, dataset.split('test'), { batchSize: 8 }), { kind: 'drop' }).accuracy;
    expect(after).toBeGreaterThan(0.8);
    expect(after).toBeGreaterThan(before);
    expect(result.validation!.accuracy).toBeGreaterThan(0.8);
    const lines = (await fs.readFile(path.join(result.runDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.split === 'validation')).toHaveLength(1);
    expect(lines[0]).toEqual(expect.objectContaining({ step: 1, stage: 1 }));
    expect(await latestCheckpoint(result.runDir)).toBe(result.finalCheckpoint);
  });

  it('validates the untrained model first with evalOnStart, then every evalSteps, and a resumed run does not repeat step 0', async () => {
    const backbone = new ToyBackbone();
    const dataset = toyDataset();
    // The untrained model's validation accuracy, measured here independently of the trainer.
    const untrained = pairwiseAccuracy(await scoreSplit(backbone, dataset.split('validation'), { batchSize: 8 }), { kind: 'drop' }).accuracy;
    const crash = new Error('simulated crash');
    const c = () => ({ backbone, dataset, losses: [{ loss: ceLoss, weight: 1 }], logger: memoryLogger() });
    await expect(new Trainer(c(), opts({ evalOnStart: true, evalSteps: 4, maxSteps: 10, onStep: (s) => { if (s.step === 6) throw crash; } })).run()).rejects.toBe(crash);
    await new Trainer(c(), opts({ evalOnStart: true, evalSteps: 4, maxSteps: 10, resume: true })).run();
    const lines = (await fs.readFile(path.join(tmp, 'run', 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    const val = lines.filter((l) => l.split === 'validation');
    expect(val.map((l) => l.step)).toEqual([0, 4, 8, 10]);
    expect(val[0].accuracy).toBeCloseTo(untrained, 12);
  });

  it('resumes after an interruption to exactly the weights of an uninterrupted run', async () => {
    const dataset = toyDataset();
    const full = new ToyBackbone();
    await new Trainer({ backbone: full, dataset, losses: [{ loss: ceLoss, weight: 1 }], logger: memoryLogger() }, opts({ expName: 'full' })).run();

    const broken = new ToyBackbone();
    const crash = new Error('simulated crash');
    await expect(
      new Trainer({ backbone: broken, dataset, losses: [{ loss: ceLoss, weight: 1 }], logger: memoryLogger() }, opts({ expName: 'cut', onStep: (s) => { if (s.step === 6) throw crash; } })).run(),
    ).rejects.toBe(crash);
    // checkpoint-4 exists, step 5 and 6 are lost; a fresh process (new backbone) resumes.
    expect(await latestCheckpoint(path.join(tmp, 'cut'))).toBe(path.join(tmp, 'cut', 'checkpoint-4'));
    const resumed = new ToyBackbone(123);
    const res = await new Trainer({ backbone: resumed, dataset, losses: [{ loss: ceLoss, weight: 1 }], logger: memoryLogger() }, opts({ expName: 'cut', resume: true })).run();
    expect(res.steps).toBeGreaterThan(6);
    expect(Array.from(resumed.w.dataSync())).toEqual(Array.from(full.w.dataSync()));
  });

  it('stops on a non-finite loss naming the step and the batch', async () => {
    const nanLoss = { name: 'nan', compute: (l: { liked: tf.Tensor2D }) => tf.mul(tf.sum(l.liked), NaN) as tf.Scalar };
    const run = new Trainer({ backbone: new ToyBackbone(), dataset: toyDataset(), losses: [{ loss: nanLoss, weight: 1 }], logger: memoryLogger() }, opts()).run();
    await expect(run).rejects.toThrow(TrainingDivergedError);
    await expect(new Trainer({ backbone: new ToyBackbone(), dataset: toyDataset(), losses: [{ loss: nanLoss, weight: 1 }], logger: memoryLogger() }, opts({ expName: 'b' })).run()).rejects.toThrow(
      /loss is NaN at step 1 \(epoch 0, micro-batch 0, examples \d+, \d+, users u\d+, u\d+\)/,
    );
  });

  it('rejects bad options before doing any work', () => {
    expect(() => new Trainer({ backbone: new ToyBackbone(), dataset: toyDataset(), losses: [], logger: memoryLogger() }, opts({ batchSize: 0 }))).toThrow(/batchSize must be a positive integer/);
    expect(() => new Trainer({ backbone: new ToyBackbone(), dataset: toyDataset(), losses: [], logger: memoryLogger() }, opts({ stage: 2 }))).toThrow(/stage 2 needs preference tokens/);
  });
});
