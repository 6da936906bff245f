/**
 * The full model against transformers on a 19 x 19 position grid, where torch's float32 arange
 * puts patch 12 of a full row in bucket 11 (golden: goldens/make_vision_grid_golden.py on the
 * tiny checkpoint with vision image_size 76, rebuilt here by writeGridCheckpoint).
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Model } from '../src/model/idefics2';
import { patchLayout } from '@userpref/mllm';
import { writeGridCheckpoint } from './grid-checkpoint';
import { checkFingerprint, readGolden, recipeBatch, relErr, type ModelGolden } from './model-fixtures';

const TOL = 1e-5;

interface GridGolden {
  fingerprint: ModelGolden['fingerprint'];
  image_sizes: Array<[number, number]>;
  image_size: number;
  input_ids: number[];
  images: number[];
  position_ids: number[][];
  vision_image0_first64: number[];
  vision_abs_sum: number[];
  logits: number[];
}

describe('Idefics2Model vs transformers on a 19 x 19 position grid', () => {
  let dir: string;
  let golden: GridGolden;
  let model: Idefics2Model;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = await readGolden<GridGolden>('idefics2_grid19.json');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics2-grid19-'));
    await writeGridCheckpoint(dir, 19);
    await checkFingerprint(dir, golden.fingerprint);
    model = await Idefics2Model.load(dir);
  });

  afterAll(async () => {
    model?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('the checkpoint has a grid of 19 and the golden shows the bucket that torch merges', () => {
    expect(model.config.vision.numPatchesPerSide).toBe(19);
    expect(golden.position_ids[0].slice(0, 19)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 13, 14, 15, 16, 17, 18]);
  });

  it('position ids of 19 x 19, 13 x 19 and 19 x 15 real patches are the ones transformers used', () => {
    const S = golden.image_size;
    const { pixelValues, mask } = recipeBatch(golden.images, golden.image_sizes, S);
    pixelValues.dispose();
    const patch = S / 19;
    const { positionIds } = patchLayout(mask, golden.images.length, S, S, patch, 19);
    const ours = golden.images.map((_, j) => Array.from(positionIds.slice(j * 361, (j + 1) * 361)));
    expect(ours).toEqual(golden.position_ids);
  });

  it('vision output and last-position logits match', () => {
    const { pixelValues, mask } = recipeBatch(golden.images, golden.image_sizes, golden.image_size);
    const vis = model.visionTower(pixelValues, mask);
    const hidden = vis.hidden.dataSync();
    expect(relErr(hidden.slice(0, 64), golden.vision_image0_first64)).toBeLessThan(TOL);
    const [n, P, D] = vis.hidden.shape;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = j * P * D; i < (j + 1) * P * D; i++) s += Math.abs(hidden[i]);
      expect(Math.abs(s - golden.vision_abs_sum[j]) / golden.vision_abs_sum[j]).toBeLessThan(TOL);
    }
    const T = golden.input_ids.length;
    const out = model.forward({ inputIds: golden.input_ids, batch: 1, seqLen: T, pixelValues, pixelAttentionMask: mask });
    const err = relErr(out.logits.dataSync(), golden.logits);
    // eslint-disable-next-line no-console
    console.log(`grid 19: logits max |diff| / max |transformers| = ${err.toExponential(2)}`);
    expect(err).toBeLessThan(TOL);
    tf.dispose([pixelValues, vis.hidden, out.logits]);
  });
});
