import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { assemble, ConfigError, memoryLogger, validateOptions, type PluginsConfig } from '../src';

const fixture = path.join(__dirname, 'fixtures', 'userpref-plugin-hinge');

describe('plugin assembly', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('builds a container from a config naming a plugin package that lives outside core', async () => {
    const config: PluginsConfig = { losses: [{ package: fixture, name: 'hinge', weight: 0.5, options: { margin: 2 } }] };
    const asm = await assemble(config, { logger: memoryLogger(), seed: 1 });
    expect(asm.losses).toHaveLength(1);
    expect(asm.losses[0].weight).toBe(0.5);
    expect(asm.losses[0].loss.name).toBe('hinge');
    // The defaults of the schema are filled in.
    expect(asm.options['loss:hinge']).toEqual({ margin: 2, mode: 'mean' });
    // And the loss computes what its author wrote: relu(2 - (3 - 0.5)) = 0, relu(2 - (1 - 2)) = 3 -> mean 1.5
    const liked = tf.tensor2d([[0, 3], [0, 1]]);
    const disliked = tf.tensor2d([[0, 0.5], [0, 2]]);
    const value = asm.losses[0].loss.compute({ liked, disliked }, { positive: 1, negative: 0 });
    expect(value.dataSync()[0]).toBeCloseTo(1.5, 6);
  });

  it('rejects an unknown key naming the plugin, the key and what was expected', async () => {
    const config: PluginsConfig = { losses: [{ package: fixture, name: 'hinge', options: { margin: 1, temprature: 2 } }] };
    await expect(assemble(config, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin 'userpref-plugin-hinge' loss 'hinge': unknown option 'temprature' \(expected one of: margin, mode\)/,
    );
  });

  it('rejects a wrong type with the expected type and the value given', async () => {
    const config: PluginsConfig = { losses: [{ package: fixture, name: 'hinge', options: { margin: 'big' } }] };
    await expect(assemble(config, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin 'userpref-plugin-hinge' loss 'hinge': option 'margin' must be number \(got "big"\)/,
    );
  });

  it('rejects a missing required value', async () => {
    const config: PluginsConfig = { losses: [{ package: fixture, name: 'hinge', options: {} }] };
    await expect(assemble(config, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/plugin 'userpref-plugin-hinge' loss 'hinge': missing required option 'margin'/);
  });

  it('rejects a value outside an enum', async () => {
    const config: PluginsConfig = { losses: [{ package: fixture, name: 'hinge', options: { margin: 1, mode: 'max' } }] };
    await expect(assemble(config, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/option 'mode' must be one of "mean", "sum" \(got "max"\)/);
  });

  it('names what a package offers when the contribution does not exist', async () => {
    const config: PluginsConfig = { losses: [{ package: fixture, name: 'focal' }] };
    await expect(assemble(config, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/has no loss named 'focal' \(it offers: hinge\)/);
  });

  it('fails clearly for a package that is not installed or not a plugin', async () => {
    await expect(assemble({ losses: [{ package: 'userpref-no-such-plugin', name: 'x' }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin package 'userpref-no-such-plugin' was not found/,
    );
    await expect(assemble({ losses: [{ package: 'ajv', name: 'x' }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/is not a userpref plugin/);
  });

  it('assembles scorers (plugins.scorers) under their names, with validated options', async () => {
    const scorerFixture = path.join(__dirname, 'fixtures', 'userpref-plugin-word-count');
    const asm = await assemble({ scorers: [{ package: scorerFixture, name: 'word-count', options: { weight: 2 } }] }, { logger: memoryLogger(), seed: 1 });
    expect([...asm.scorers.keys()]).toEqual(['word-count']);
    expect(asm.options['scorer:word-count']).toEqual({ weight: 2 });
    const scorer = asm.scorers.get('word-count')!;
    await scorer.init();
    const image = (id: string) => ({ id, decode: async () => ({ width: 1, height: 1, data: new Uint8Array(3) }) });
    // 'red fox snow': the first id holds red and fox (2 words x 2), the second holds snow (1 x 2).
    await expect(scorer.score('red fox snow', [image('red-fox'), image('snow-owl')])).resolves.toEqual([4, 2]);
    await expect(assemble({ scorers: [{ package: scorerFixture, name: 'word-count', options: { wieght: 2 } }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin 'userpref-plugin-word-count' scorer 'word-count': unknown option 'wieght'/,
    );
    await expect(assemble({ scorers: [{ package: scorerFixture, name: 'clip' }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/has no scorer named 'clip' \(it offers: word-count\)/);
    await expect(assemble({ scorers: { package: scorerFixture, name: 'word-count' } } as unknown as PluginsConfig, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/plugins.scorers must be a list/);
    // Without scorers the map is empty.
    expect((await assemble({}, { logger: memoryLogger(), seed: 1 })).scorers.size).toBe(0);
  });

  it('validateOptions never mutates its input', () => {
    const input = { margin: 1 };
    const out = validateOptions('x', { type: 'object', properties: { margin: { type: 'number' }, mode: { type: 'string', default: 'mean' } } }, input);
    expect(input).toEqual({ margin: 1 });
    expect(out).toEqual({ margin: 1, mode: 'mean' });
    expect(() => validateOptions('x', { type: 'object', properties: {} }, { a: 1 })).toThrow(ConfigError);
  });
});
