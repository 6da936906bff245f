/**
 * The tiny random checkpoint with another position grid: vision_config.image_size set so that
 * numPatchesPerSide = perSide (tiny's patch is 4: 19 -> image_size 76), every tensor drawn by the
 * workspace's generator from the changed config (only the position embedding changes shape; the
 * generator seeds each tensor by its name). Used by the grid golden
 * (goldens/make_vision_grid_golden.py, via goldens/write_grid_checkpoint.ts) and its test.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { writeShardedCheckpoint } from '@userpref/safetensors';
import { idefics2TensorSpecs, initTensor, writeIdefics2Checkpoint } from '../src/checkpoint';
import { parseIdefics2Config } from '../src/model/config';

export async function writeGridCheckpoint(outDir: string, perSide: number, seed = 0): Promise<void> {
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir, seed });
  const configFile = path.join(outDir, 'config.json');
  const config = JSON.parse(await fs.readFile(configFile, 'utf8')) as { vision_config: { image_size: number; patch_size: number } };
  config.vision_config.image_size = perSide * config.vision_config.patch_size;
  await fs.writeFile(configFile, JSON.stringify(config, null, 2) + '\n');
  for (const f of await fs.readdir(outDir)) {
    if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(f)) await fs.rm(path.join(outDir, f));
  }
  const tensors = idefics2TensorSpecs(parseIdefics2Config(config)).map((spec) => ({ name: spec.name, dtype: 'F32' as const, shape: spec.shape, data: initTensor(spec, seed) }));
  await writeShardedCheckpoint(outDir, tensors, {});
}
