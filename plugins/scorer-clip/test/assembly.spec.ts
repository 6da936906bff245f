import * as path from 'path';
import { assemble, memoryLogger } from '@userpref/core';
import { ClipEncoder, ClipScore, AestheticScore, contributions } from '../src';

const FIX = path.join(__dirname, 'fixtures');
const pkg = path.join(__dirname, '..');

describe('scorer-clip from a run config', () => {
  it('assembles clip, pickscore and aesthetic with schema defaults, paths relative to the config folder', async () => {
    const asm = await assemble(
      {
        scorers: [
          { package: pkg, name: 'clip', options: { path: 'clip-tiny' } },
          { package: pkg, name: 'pickscore', options: { path: 'clip-tiny-gelu', batchSize: 2 } },
          { package: pkg, name: 'hps', options: { path: 'hps-tiny' } },
          { package: pkg, name: 'aesthetic', options: { path: 'clip-tiny', head: 'aesthetic-tiny.safetensors' } },
        ],
      },
      { logger: memoryLogger(), seed: 1, baseDir: FIX },
    );
    expect([...asm.scorers.keys()]).toEqual(['clip', 'pickscore', 'hps', 'aesthetic']);
    expect(asm.options['scorer:clip']).toEqual({ path: 'clip-tiny', logitScale: 100, batchSize: 8 });
    // HPS's score is the plain cosine.
    expect(asm.options['scorer:hps']).toEqual({ path: 'hps-tiny', logitScale: 1, batchSize: 8 });
    expect(asm.scorers.get('pickscore')).toBeInstanceOf(ClipScore);
    expect(asm.scorers.get('aesthetic')).toBeInstanceOf(AestheticScore);
    // Relative paths were resolved against baseDir: init finds the fixture files.
    await asm.scorers.get('clip')!.init();
    await asm.scorers.get('clip')!.dispose?.();
  });

  it('loads an encoder once per checkpoint for all scorers that use it, and frees it with the last', async () => {
    const dir = path.join(FIX, 'clip-tiny');
    const clip = new ClipScore({ path: dir, logitScale: 100, batchSize: 8 });
    const aesthetic = new AestheticScore({ path: dir, head: path.join(FIX, 'aesthetic-tiny.safetensors'), batchSize: 8 });
    await Promise.all([clip.init(), aesthetic.init()]);
    expect(ClipEncoder.loadedEncoders().sort()).toEqual([`${dir}#text`, `${dir}#vision`]);
    await clip.dispose();
    // The aesthetic scorer still scores with the shared image tower.
    const img = { id: 'grey', decode: async () => ({ width: 40, height: 40, data: new Uint8Array(40 * 40 * 3).fill(128) }) };
    expect((await aesthetic.score('', [img]))[0]).toEqual(expect.any(Number));
    expect(ClipEncoder.loadedEncoders()).toEqual([`${dir}#vision`]);
    await aesthetic.dispose();
    expect(ClipEncoder.loadedEncoders()).toEqual([]);
  });

  it('rejects a missing path and unknown options, naming the plugin', async () => {
    await expect(assemble({ scorers: [{ package: pkg, name: 'clip', options: {} }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin '@userpref\/scorer-clip' scorer 'clip': missing required option 'path'/,
    );
    await expect(assemble({ scorers: [{ package: pkg, name: 'aesthetic', options: { path: 'x', head: 'y', scale: 2 } }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(/unknown option 'scale'/);
    expect(contributions.map((c) => `${c.kind}:${c.name}`)).toEqual(['scorer:clip', 'scorer:pickscore', 'scorer:hps', 'scorer:aesthetic']);
  });
});
