/** The Trainer's steps on their own: schedule and data position, resume, what a stage trains, one update. */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { memoryLogger, type PreferenceSplit, type PreferenceTokens } from '@userpref/core';
import { AdamW, saveCheckpoint, type TrainOptions, type TrainerState } from '../src';
import { checkpointToResume, freshState, startingPoint } from '../src/resume';
import { EpochCursor, isDue, trainingSchedule } from '../src/schedule';
import { KeyedTrainables, TrainedParts } from '../src/trainables';
import { NonFiniteLoss, TrainingUpdate } from '../src/update';
import { ToyBackbone, ceLoss, toyDataset } from './toy';

let tmp: string;
beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
});
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'trainer-steps-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const opts = (over: Partial<TrainOptions> = {}): TrainOptions => ({
  stage: 1, batchSize: 2, gradAccum: 3, epochs: 2, lr: 0.05, weightDecay: 0, evalSteps: 0, saveSteps: 0,
  evalBatchSize: 8, outDir: tmp, expName: 'run', seed: 7, ...over,
});

describe('schedule', () => {
  it('counts micro-batches and updates per epoch, an epoch\'s last update taking the remainder', () => {
    expect(trainingSchedule(40, { batchSize: 2, gradAccum: 3, epochs: 3 })).toEqual({ microPerEpoch: 20, stepsPerEpoch: 7, totalSteps: 21 });
    expect(trainingSchedule(41, { batchSize: 2, gradAccum: 3, epochs: 3, maxSteps: 5 })).toEqual({ microPerEpoch: 21, stepsPerEpoch: 7, totalSteps: 5 });
    expect(trainingSchedule(41, { batchSize: 2, gradAccum: 3, epochs: 1, maxSteps: 50 }).totalSteps).toBe(7);
  });

  it('makes validation and checkpoints due every N updates and always at the last; N = 0 only at the last', () => {
    expect([1, 2, 3, 4, 5, 6].map((s) => isDue(s, 3, false))).toEqual([false, false, true, false, false, true]);
    expect(isDue(7, 3, true)).toBe(true);
    expect(isDue(6, 0, false)).toBe(false);
    expect(isDue(6, 0, true)).toBe(true);
  });

  it('reads every example once an epoch, reshuffled per epoch, and starts an epoch only at an update\'s first micro-batch', async () => {
    const split: PreferenceSplit = { name: 'train', size: 5, get: async (i) => ({ userId: `u${i}` }) as never };
    const state = freshState(opts(), 10);
    const cursor = new EpochCursor(split, 7, 2, 3, state);
    const epoch0: number[] = [];
    for (const first of [true, false, false]) {
      const b = (await cursor.next(first))!;
      expect(b.examples.map((e) => e.userId)).toEqual(b.indices.map((i) => `u${i}`));
      epoch0.push(...b.indices);
      cursor.advance();
    }
    expect([...epoch0].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(state).toEqual(expect.objectContaining({ epoch: 0, micro: 3 }));
    // Inside an update the epoch's end stops the update ...
    expect(await cursor.next(false)).toBeNull();
    expect(state).toEqual(expect.objectContaining({ epoch: 0, micro: 3 }));
    // ... and the next update starts epoch 1 in a new order.
    const epoch1: number[] = [];
    for (const first of [true, false, false]) {
      epoch1.push(...(await cursor.next(first))!.indices);
      cursor.advance();
    }
    expect([...epoch1].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(epoch1).not.toEqual(epoch0);
    expect(state).toEqual(expect.objectContaining({ epoch: 1, micro: 3 }));
    // A cursor made from a saved position reads on from it.
    const resumed = new EpochCursor(split, 7, 2, 3, { ...state, micro: 1 });
    expect((await resumed.next(true))!.indices).toEqual(epoch1.slice(2, 4));
  });
});

describe('resume', () => {
  const state = (step: number): TrainerState => ({ ...freshState(opts(), 20), step, epoch: 1, micro: 4, examplesSeen: 8 * step });
  const save = (runDir: string, step: number, backbone = new ToyBackbone(step)) => {
    const optimizer = new AdamW({ lr: 0.1, weightDecay: 0 });
    optimizer.apply([{ v: backbone.w, key: 'param0000' }], { param0000: tf.onesLike(backbone.w) });
    return saveCheckpoint(runDir, state(step), optimizer.state(), { saveAdapter: (d) => backbone.saveAdapter(d) });
  };

  it('picks the newest complete checkpoint (by number), ignoring a partial one and a temporary one', async () => {
    const runDir = path.join(tmp, 'run');
    for (const step of [2, 9, 10]) await save(runDir, step);
    // Killed while writing: a checkpoint without its trainer state, and a temporary sibling.
    await fs.mkdir(path.join(runDir, 'checkpoint-12', 'adapter'), { recursive: true });
    await fs.mkdir(path.join(runDir, 'checkpoint-14.tmp-123'), { recursive: true });
    await fs.writeFile(path.join(runDir, 'checkpoint-14.tmp-123', 'trainer_state.json'), '{}');
    expect(await checkpointToResume(true, runDir)).toBe(path.join(runDir, 'checkpoint-10'));
    expect(await checkpointToResume(path.join(runDir, 'checkpoint-2'), runDir)).toBe(path.join(runDir, 'checkpoint-2'));
    expect(await checkpointToResume(true, path.join(tmp, 'none'))).toBeNull();
  });

  it('restores the trained parts, the state with this run\'s totalSteps, and the optimizer moments', async () => {
    const runDir = path.join(tmp, 'run');
    const saved = new ToyBackbone(3);
    await save(runDir, 6, saved);
    const backbone = new ToyBackbone(4);
    const logger = memoryLogger();
    const start = await startingPoint(opts({ resume: true }), runDir, 30, new TrainedParts({ backbone }, { stage: 1 }), logger);
    expect(Array.from(backbone.w.dataSync())).toEqual(Array.from(saved.w.dataSync()));
    expect(start.state).toEqual({ ...state(6), totalSteps: 30 });
    expect(start.optimizer!.step).toBe(1);
    expect(Array.from(start.optimizer!.moments.param0000.m)).toEqual(Array(6).fill(Math.fround(0.1)));
    expect(logger.records).toEqual([{ level: 'info', message: `resumed from ${path.join(runDir, 'checkpoint-6')}`, fields: { step: 6, epoch: 1, micro: 4 } }]);
  });

  it('starts fresh without a checkpoint (saying so only when asked to resume), and refuses the other stage\'s checkpoint', async () => {
    const runDir = path.join(tmp, 'run');
    const parts = new TrainedParts({ backbone: new ToyBackbone() }, { stage: 1 });
    const quiet = memoryLogger();
    expect(await startingPoint(opts(), runDir, 9, parts, quiet)).toEqual({ state: freshState(opts(), 9) });
    expect(quiet.records).toEqual([]);
    const told = memoryLogger();
    expect(await startingPoint(opts({ resume: true }), runDir, 9, parts, told)).toEqual({ state: freshState(opts({ resume: true }), 9) });
    expect(told.records.map((r) => r.message)).toEqual(['no checkpoint to resume from; starting fresh']);
    const dir = await save(runDir, 2);
    await expect(startingPoint(opts({ stage: 2, resume: true }), runDir, 9, parts, memoryLogger())).rejects.toThrow(`${dir} is a stage 1 checkpoint, this is stage 2`);
  });
});

describe('what a stage trains', () => {
  const tokens = (): PreferenceTokens => {
    const v = tf.variable(tf.zeros([2, 2]), true, `toy.tokens.${Math.random()}`);
    return { variables: () => [v], build: () => undefined, save: async () => undefined, load: async () => undefined } as unknown as PreferenceTokens;
  };

  it('stage 1: the adapter; stage 2: the tokens, then the adapter with trainAdapter', () => {
    const backbone = new ToyBackbone();
    const t = tokens();
    const one = new TrainedParts({ backbone, tokens: t }, { stage: 1 });
    expect(one.variables()).toEqual([backbone.w]);
    expect(one.writers().saveTokens).toBeUndefined();
    const two = new TrainedParts({ backbone, tokens: t }, { stage: 2 });
    expect(two.variables()).toEqual(t.variables());
    expect(two.writers().saveAdapter).toBeUndefined();
    expect(new TrainedParts({ backbone, tokens: t }, { stage: 2, trainAdapter: true }).variables()).toEqual([...t.variables(), backbone.w]);
  });

  it('keys the optimizer state by position and checks names and shapes', () => {
    const a = tf.variable(tf.zeros([2]), true, `steps.a.${Math.random()}`);
    const b = tf.variable(tf.zeros([3]), true, `steps.b.${Math.random()}`);
    const k = new KeyedTrainables([a, b], 2);
    expect(k.keyed.map((x) => x.key)).toEqual(['param0000', 'param0001']);
    expect(k.key(b.name)).toBe('param0001');
    expect(k.size).toBe(5);
    expect(() => new KeyedTrainables([], 2)).toThrow('stage 2 has no trainable variables');
    expect(() => new KeyedTrainables([a, a], 1)).toThrow(`two trainable variables share the name '${a.name}'`);
    const wrong = { step: 1, moments: { param0001: { m: new Float32Array(2), v: new Float32Array(2), shape: [2] } } };
    expect(() => k.restoreOptimizer(new AdamW({ lr: 1, weightDecay: 0 }), wrong)).toThrow(`optimizer state param0001 has shape [2] but trainable variable ${b.name} has [3]`);
  });
});

describe('one update', () => {
  const setUp = (losses = [{ loss: ceLoss, weight: 1 }]) => {
    const backbone = new ToyBackbone();
    const o = opts();
    const state = freshState(o, 10);
    const train = toyDataset().split('train');
    const trainables = new KeyedTrainables([backbone.w], 1);
    const optimizer = new AdamW({ lr: o.lr, weightDecay: 0, totalSteps: 10 });
    const update = new TrainingUpdate({ backbone, losses }, trainables, optimizer, new EpochCursor(train, o.seed, o.batchSize, trainingSchedule(train.size, o).microPerEpoch, state), o);
    return { backbone, state, update, optimizer };
  };

  it('trains gradAccum micro-batches, counts the update and reports mean loss, accuracy and the lr it used', async () => {
    const { backbone, state, update, optimizer } = setUp();
    const before = Array.from(backbone.w.dataSync());
    const u = await update.apply(state);
    expect(state).toEqual(expect.objectContaining({ step: 1, micro: 3, examplesSeen: 6 }));
    expect(optimizer.step).toBe(1);
    expect(u.lr).toBe(0.05);
    expect(u.terms).toEqual({ ce: u.loss });
    expect(u.accuracy * 6).toBeCloseTo(Math.round(u.accuracy * 6), 12);
    expect(Array.from(backbone.w.dataSync())).not.toEqual(before);
  });

  it('stops on a non-finite loss before any weight changes, naming the step and the batch', async () => {
    const nan = { name: 'nan', compute: (l: { liked: tf.Tensor2D }) => tf.mul(tf.sum(l.liked), NaN) as tf.Scalar };
    const { backbone, state, update, optimizer } = setUp([{ loss: nan, weight: 1 }]);
    const before = Array.from(backbone.w.dataSync());
    const tensors = tf.memory().numTensors;
    const stopped = update.apply(state);
    await expect(stopped).rejects.toThrow(NonFiniteLoss);
    await expect(stopped).rejects.toThrow(/^loss is NaN at step 1 \(epoch 0, micro-batch 0, examples \d+, \d+, users u\d+, u\d+\)$/);
    expect(Array.from(backbone.w.dataSync())).toEqual(before);
    expect(optimizer.step).toBe(0);
    expect(state).toEqual(expect.objectContaining({ step: 0, micro: 0, examplesSeen: 0 }));
    expect(tf.memory().numTensors).toBe(tensors);
  });
});
