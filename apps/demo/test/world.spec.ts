/** The demo's world files: the committed ones, and clear errors for bad ones. */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfigFile } from '@userpref/cli';
import { readDemoWorld } from '../src/world';

const configDir = path.join(__dirname, '..', 'config');

describe('readDemoWorld', () => {
  it("the demo's world has no stage-2 overrides; the longer run's keeps the demo's stage 2", async () => {
    expect(await readDemoWorld(path.join(configDir, 'demo.json'))).toEqual({ preset: 'camps-split-xl', seed: 42, stage2Args: [] });
    expect(await readDemoWorld(path.join(configDir, 'demo-long.json'))).toEqual({
      preset: 'camps-split-xl',
      seed: 42,
      stage2Args: ['--set', 'train.train_bz=4', '--set', 'train.lr=0.01'],
    });
    // Those are the demo's own stage-2 settings; the longer run changes only stage 1's.
    const demo = (await loadConfigFile(path.join(configDir, 'demo.json'))) as { train: Record<string, unknown>; plugins: { backbone: { options: { path: string } } } };
    const long = (await loadConfigFile(path.join(configDir, 'demo-long.json'))) as typeof demo & { out: string };
    expect(demo.train).toMatchObject({ train_bz: 4, lr: 0.01, max_steps: 150 });
    expect(long.train).toMatchObject({ train_bz: 8, lr: 0.005, max_steps: 600 });
    expect(long.out).toBe('../../../runs/demo-long');
    // The base path demo.json declares comes back resolved against demo.json's folder.
    expect(long.plugins.backbone.options.path).toBe(path.resolve(configDir, '../base/idefics2-small-kernel'));
  });

  it('defaults without a world file, and names the file for a bad one', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'demo-world-'));
    const config = path.join(dir, 'x.json');
    expect(await readDemoWorld(config)).toEqual({ preset: 'default', seed: 42, stage2Args: [] });
    const world = path.join(dir, 'x.world.json');
    await fs.writeFile(world, JSON.stringify({ seed: 4.5 }));
    await expect(readDemoWorld(config)).rejects.toThrow(`${world}: seed must be an integer`);
    await fs.writeFile(world, JSON.stringify({ stage2Set: { 'train.lr': [1] } }));
    await expect(readDemoWorld(config)).rejects.toThrow(`${world}: stage2Set.train.lr must be a string, number or boolean`);
    await fs.writeFile(world, '{ nope');
    await expect(readDemoWorld(config)).rejects.toThrow(`${world} is not valid JSON`);
    await fs.rm(dir, { recursive: true, force: true });
  });
});
