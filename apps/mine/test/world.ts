/**
 * The tiny world the mine app's tests run in: the `tiny` random IDEFICS2 checkpoint and the `tiny`
 * synthpick set (12 users in 3 hidden taste clusters) imported into the processed format, all in
 * one temporary directory.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { memoryLogger } from '@userpref/core';
import { writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { generateSynthpick, importDataset } from '@userpref/dataset-pickapic';

export interface TinyWorld {
  readonly root: string;
  readonly checkpoint: string;
  readonly processed: string;
  readonly truthFile: string;
}

export async function tinyWorld(label: string): Promise<TinyWorld> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `userpref-mine-${label}-`));
  const checkpoint = path.join(root, 'idefics2-tiny');
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: checkpoint, seed: 0 });
  const raw = path.join(root, 'raw');
  const gen = await generateSynthpick({ preset: 'tiny', seed: 7, outDir: raw });
  const processed = path.join(root, 'processed');
  await importDataset({ from: [raw], out: processed, logger: memoryLogger(), seed: 7 });
  return { root, checkpoint, processed, truthFile: gen.truthFile };
}

export async function removeWorld(w: TinyWorld | undefined): Promise<void> {
  if (w) await fs.rm(w.root, { recursive: true, force: true });
}
