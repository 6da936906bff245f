/**
 * Stage 2 (SPEC §5) on the tiny IDEFICS2 checkpoint and the tiny synthpick set: a short Trainer run
 * trains the preference tokens and leaves everything else bit-identical (every LoRA variable, and
 * a fingerprint of every base weight) unless trainAdapter is on, in which case the LoRA moves too
 * and the base weights still do not.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { memoryLogger, type WeightedLoss } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone, countParameters, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { PickapicDataset, generateSynthpick, importDataset } from '@userpref/dataset-pickapic';
import { BasePreferenceLoss, ContrastivePreferenceLoss } from '@userpref/loss-preference';
import { PromptTokens } from '@userpref/preference-tokens';
import { Trainer } from '@userpref/training';

let root: string;
let backbone: Idefics2Backbone;
let dataset: PickapicDataset;
const losses: WeightedLoss[] = [
  { loss: new BasePreferenceLoss(), weight: 1 },
  { loss: new ContrastivePreferenceLoss(), weight: 1 },
];

/** sha256 over every tensor reachable from the model's parameters, LoRA modules excluded. */
function baseFingerprint(): { hash: string; tensors: number; elements: number } {
  const found: Array<[string, tf.Tensor]> = [];
  const seen = new Set<unknown>();
  const walk = (node: unknown, at: string) => {
    if (node === null || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    if (node instanceof tf.Tensor) {
      found.push([at, node]);
      return;
    }
    for (const [k, v] of Object.entries(node)) if (k !== 'lora') walk(v, `${at}.${k}`);
  };
  walk(backbone.idefics2.params, 'params');
  found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const h = createHash('sha256');
  let elements = 0;
  for (const [name, t] of found) {
    h.update(`${name}:${t.shape.join('x')}:${t.dtype}\n`);
    const data = t.dataSync();
    h.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    elements += t.size;
  }
  return { hash: h.digest('hex'), tensors: found.length, elements };
}

const snapshot = (vars: tf.Variable[]) => vars.map((v) => Buffer.from((v.dataSync() as Float32Array).slice().buffer));

function trainer(tokens: PromptTokens, trainAdapter: boolean, name: string): Trainer {
  return new Trainer(
    { backbone, dataset, losses, tokens, logger: memoryLogger() },
    { stage: 2, batchSize: 2, gradAccum: 1, epochs: 1, lr: 0.05, weightDecay: 0.01, evalSteps: 0, saveSteps: 0, evalBatchSize: 4, evalLimit: 2, outDir: path.join(root, 'runs'), expName: name, seed: 7, maxSteps: 2, trainAdapter },
  );
}

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-stage2-'));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: path.join(root, 'ckpt'), seed: 0 });
  await generateSynthpick({ preset: 'tiny', seed: 5, outDir: path.join(root, 'raw') });
  await importDataset({ from: [path.join(root, 'raw')], out: path.join(root, 'processed'), logger: memoryLogger(), seed: 5 });
  dataset = new PickapicDataset({ path: 'processed', refPairNum: 2, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize: 32, tiePolicy: 'drop', limit: 8 }, { seed: 7, baseDir: root });
  await dataset.init();
  expect(dataset.split('train').size).toBe(8);
  const run = { seed: 7, baseDir: root };
  backbone = new Idefics2Backbone({ path: 'ckpt' }, run);
  await backbone.init();
  // A stage-1-like adapter: B != 0, so the LoRA path contributes and an unchanged LoRA means something.
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i + 1), 0.05) as tf.Tensor2D);
});

afterAll(async () => {
  backbone?.dispose();
  await dataset?.close();
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe('stage 2 Trainer (tiny checkpoint, tiny synthpick)', () => {
  it('trains only the preference tokens: every LoRA variable and every base weight stays bit-identical', async () => {
    const base = baseFingerprint();
    const config = JSON.parse(await fs.readFile(path.join(root, 'ckpt', 'config.json'), 'utf8'));
    // The walk reaches every weight of the checkpoint (fused layers hold the same numbers).
    expect(base.elements).toBeGreaterThanOrEqual(countParameters(config));
    const lora = backbone.adapterVariables();
    expect(lora.length).toBeGreaterThan(0);
    const loraBefore = snapshot(lora);
    const tokens = new PromptTokens({ length: 3 }, 9);
    tokens.build(backbone.textHiddenSize);
    const tokensBefore = snapshot(tokens.variables());

    const result = await trainer(tokens, false, 'tokens-only').run();
    expect(result.steps).toBe(2);
    expect(Number.isFinite(result.lastLoss)).toBe(true);

    snapshot(backbone.adapterVariables()).forEach((b, i) => expect(b.equals(loraBefore[i])).toBe(true));
    expect(baseFingerprint()).toEqual(base);
    expect(snapshot(tokens.variables())[0].equals(tokensBefore[0])).toBe(false);
    // The checkpoint holds the tokens and no adapter (nothing of it was trained).
    const files = await fs.readdir(result.finalCheckpoint);
    expect(files).toContain('tokens');
    expect(files).not.toContain('adapter');
    tokens.dispose();
  });

  it('with trainAdapter the LoRA variables change too, the base weights still do not', async () => {
    const base = baseFingerprint();
    const loraBefore = snapshot(backbone.adapterVariables());
    const tokens = new PromptTokens({ length: 3 }, 10);
    tokens.build(backbone.textHiddenSize);

    const result = await trainer(tokens, true, 'tokens-and-lora').run();
    expect(result.steps).toBe(2);

    const after = snapshot(backbone.adapterVariables());
    const changed = after.filter((b, i) => !b.equals(loraBefore[i])).length;
    // Every B (index 1, 3, ...) gets a gradient; A moves at least through weight decay.
    expect(changed).toBe(after.length);
    expect(baseFingerprint()).toEqual(base);
    expect(await fs.readdir(result.finalCheckpoint)).toEqual(expect.arrayContaining(['tokens', 'adapter']));
    tokens.dispose();
  });
});
