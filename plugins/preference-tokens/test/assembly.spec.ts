import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { assemble, memoryLogger, type PreferenceTokens } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { PromptTokens } from '../src';

const pkg = path.join(__dirname, '..');

describe('preference tokens assembled from config', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it("'prompt' with the paper's defaults, seeded from the run seed", async () => {
    const asm = await assemble({ tokens: { package: pkg, name: 'prompt' } }, { logger: memoryLogger(), seed: 17 });
    expect(asm.options['tokens:prompt']).toEqual({ length: 10, init: 'uniform', std: 0.02 });
    const tokens = asm.tokens as PreferenceTokens;
    expect(tokens.length).toBe(10);
    tokens.build(6);
    const direct = new PromptTokens({}, 17);
    direct.build(6);
    expect(Array.from(tokens.variables()[0].dataSync())).toEqual(Array.from(direct.variables()[0].dataSync()));
    // One instance per container: the backbone and the trainer see the same tokens.
    expect(asm.container.get<PreferenceTokens>(Symbol.for('userpref.PreferenceTokens'), { name: 'prompt' })).toBe(tokens);
    direct.dispose();
    tf.dispose(tokens.variables());
  });

  it("'prompt-pool' options from config reach the pool; its prefix length is topK x length", async () => {
    const asm = await assemble(
      { tokens: { package: pkg, name: 'prompt-pool', options: { poolSize: 4, length: 3, topK: 2, pullCoefficient: 0.5 } } },
      { logger: memoryLogger(), seed: 1 },
    );
    expect(asm.options['tokens:prompt-pool']).toEqual({ poolSize: 4, length: 3, topK: 2, pullCoefficient: 0.5, keys: 'prompt-mean', keyInit: 'same', query: 'history-mean', reseatAfter: 0, reseatBelow: 0.5, seedKeysAfter: 0, init: 'uniform', std: 0.02 });
    const tokens = asm.tokens as PreferenceTokens;
    expect(tokens.length).toBe(6);
    tokens.build(5);
    const q = tf.ones([2, 5]) as tf.Tensor2D;
    const { embeddings, auxLoss } = tokens.prefix({ historyMean: q, preferenceDirection: q });
    expect(embeddings.shape).toEqual([2, 6, 5]);
    expect(auxLoss?.shape).toEqual([]);
    tf.dispose([q, embeddings, auxLoss as tf.Scalar, ...tokens.variables()]);
  });

  it('rejects bad options with the schema message', async () => {
    await expect(assemble({ tokens: { package: pkg, name: 'prompt', options: { init: 'xavier' } } }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin '@userpref\/preference-tokens' tokens 'prompt': option 'init' must be one of "uniform", "normal", "zeros"/,
    );
    await expect(assemble({ tokens: { package: pkg, name: 'prompt-pool', options: { topK: 0 } } }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /option 'topK' must be >= 1/,
    );
    await expect(assemble({ tokens: { package: pkg, name: 'prompt-pool', options: { poolSize: 2, topK: 3 } } }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /topK 3 is larger than the pool \(2 prompts\)/,
    );
  });
});
