/**
 * The dataset as a plugin: assembled from a run config by core (options validated, defaults
 * filled, path relative to the config folder), examples shaped as the contract says, images
 * decoded to imageSize x imageSize RGB, prompts cut by characters or left out, `limit`.
 */
import * as path from 'path';
import { assemble, memoryLogger, type PluginsConfig } from '@userpref/core';
import { PickapicDataset } from '../src/dataset';
import { importDataset } from '../src/import';
import { userprefPlugin } from '../src';
import { generateSynthpick } from '../src/synthpick';
import { options, tmpDir } from './helpers';

const root = tmpDir('dataset');
const processed = path.join(root, 'processed');

beforeAll(async () => {
  await generateSynthpick({ preset: 'tiny', seed: 3, outDir: path.join(root, 'raw') });
  await importDataset({ from: [path.join(root, 'raw')], out: processed, logger: memoryLogger() });
});

describe('plugin manifest and assembly', () => {
  it('offers one dataset contribution named pickapic, whose schema documents its options', () => {
    expect(userprefPlugin.packageName).toBe('@userpref/dataset-pickapic');
    const [c] = userprefPlugin.contributions;
    expect([c.kind, c.name]).toEqual(['dataset', 'pickapic']);
    const p = c.optionsSchema.properties;
    expect(Object.keys(p).sort()).toEqual(['imageSize', 'limit', 'path', 'redrawReferencesEachEpoch', 'refPairNum', 'tiePolicy', 'tooFewReferences'].sort());
    expect([p.refPairNum.default, p.imageSize.default, p.tiePolicy.default, p.redrawReferencesEachEpoch.default]).toEqual([8, 512, 'drop', false]);
  });

  it('is assembled from a config by core, with defaults filled and the path resolved against baseDir', async () => {
    const config: PluginsConfig = { dataset: { package: path.join(__dirname, '..'), name: 'pickapic', options: { path: 'processed', refPairNum: 2, limit: 20 } } };
    const asm = await assemble(config, { logger: memoryLogger(), seed: 42, baseDir: root });
    expect(asm.options['dataset:pickapic']).toEqual({ path: 'processed', refPairNum: 2, limit: 20, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize: 512, tiePolicy: 'drop' });
    const ds = asm.dataset!;
    await ds.init();
    const train = ds.split('train');
    expect(train.size).toBe(20);
    expect(ds.stats('train').examples).toBe(20);
    const ex = await train.get(0);
    expect(ex.references).toHaveLength(2);
    expect(ex.likedFirst).toHaveLength(2);
    expect([0, 1]).toContain(ex.target.label0);
    expect(ex.target.image0.id).toMatch(/^[0-9a-f]{64}$/);
    const img = await ex.references[0].liked.decode();
    expect([img.width, img.height, img.data.length]).toEqual([512, 512, 512 * 512 * 3]);
    await (ds as PickapicDataset).close();
  });

  it('rejects bad options with the option named', async () => {
    const config: PluginsConfig = { dataset: { package: path.join(__dirname, '..'), name: 'pickapic', options: { path: 'processed', tiePolicy: 'half' } } };
    await expect(assemble(config, { logger: memoryLogger(), seed: 1, baseDir: root })).rejects.toThrow(/option 'tiePolicy' must be one of "drop", "keep"/);
  });
});

describe('prompts', () => {
  it('pass through verbatim (the backbone processor applies --use_prompt / --max_prompt_len)', async () => {
    const ds = new PickapicDataset(options(processed, { refPairNum: 2 }), { seed: 1, baseDir: '/' });
    await ds.init();
    for (let i = 0; i < 10; i++) {
      const ex = await ds.split('train').get(i);
      expect(ex.target.prompt).toBe(ds.comparisons[ds.split('train').targets()[i]].prompt);
    }
    await ds.close();
  });
});

describe('images', () => {
  it('decode to imageSize x imageSize RGB; the same id is the same object within a dataset', async () => {
    const ds = new PickapicDataset(options(processed, { refPairNum: 1, imageSize: 24 }), { seed: 1, baseDir: '/' });
    await ds.init();
    const e1 = await ds.split('train').get(0);
    const e2 = await ds.split('train').get(0);
    expect(e1.target.image0).toBe(e2.target.image0);
    const px = await e1.target.image1.decode();
    expect([px.width, px.height, px.data.length]).toEqual([24, 24, 24 * 24 * 3]);
    await ds.close();
  });
});
