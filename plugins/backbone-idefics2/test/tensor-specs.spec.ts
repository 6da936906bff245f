/**
 * One list of tensors (src/model/specs.ts, from the parsed config) drives loading, export, the
 * random checkpoint writer and the progress total. Checked against transformers' own listing for
 * the tiny preset (goldens/make_idefics2_tensor_list.py: state_dict names, shapes and order, and
 * what save_pretrained writes untied and tied), then each consumer is checked to visit exactly it.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';
import { writeIdefics2Checkpoint } from '../src/checkpoint';
import { parseIdefics2Config } from '../src/model/config';
import { exportIdefics2Weights } from '../src/model/export';
import { idefics2TensorSpecs } from '../src/model/specs';
import { disposeParams, expectedTensorCount, loadIdefics2Weights } from '../src/model/weights';
import { readGolden } from './model-fixtures';

interface Listing {
  state_dict: Array<[string, number[]]>;
  saved: string[];
}
interface TensorGolden {
  untied: Listing;
  tied: Listing;
}

let root: string;
let dir: string;
let golden: TensorGolden;

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics2-specs-'));
  dir = path.join(root, 'tiny');
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: dir, seed: 0 });
  golden = await readGolden<TensorGolden>('idefics2_tiny_tensors.json');
});
afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

async function configOf(d: string) {
  return parseIdefics2Config(JSON.parse(await fs.readFile(path.join(d, 'config.json'), 'utf8')));
}

async function fileTensors(d: string): Promise<Array<[string, number[]]>> {
  const f = await SafetensorsFile.open(path.join(d, 'model.safetensors'));
  try {
    return f.entries().map((e) => [e.name, [...e.shape]]);
  } finally {
    await f.close();
  }
}

describe('the IDEFICS2 tensor spec list', () => {
  it("is transformers' state_dict for the tiny config: same names, shapes and order", async () => {
    const specs = idefics2TensorSpecs(await configOf(dir));
    expect(specs.map((s) => [s.name, s.shape])).toEqual(golden.untied.state_dict);
  });

  it('with tied embeddings it is what save_pretrained writes (no lm_head)', async () => {
    const c = await configOf(dir);
    const tied = idefics2TensorSpecs({ ...c, tieWordEmbeddings: true });
    expect(tied.map((s) => s.name).sort()).toEqual(golden.tied.saved);
    expect(tied.map((s) => s.name)).not.toContain('lm_head.weight');
    expect(expectedTensorCount({ ...c, tieWordEmbeddings: true })).toBe(golden.tied.saved.length);
  });

  it('the checkpoint writer writes exactly the list', async () => {
    const specs = idefics2TensorSpecs(await configOf(dir));
    const written = await fileTensors(dir);
    expect(written.map(([n]) => n).sort()).toEqual(specs.map((s) => s.name).sort());
    const byName = new Map(written);
    for (const s of specs) expect([s.name, byName.get(s.name)]).toEqual([s.name, s.shape]);
  });

  it('loading reads each tensor of the list once, and its progress ends at the list length', async () => {
    const c = await configOf(dir);
    const specs = idefics2TensorSpecs(c);
    const seen: string[] = [];
    let last = [0, 0];
    const { params, report } = await loadIdefics2Weights(dir, c, {
      onProgress: (done, total, name) => {
        seen.push(name);
        last = [done, total];
      },
    });
    try {
      expect([...seen].sort()).toEqual(specs.map((s) => s.name).sort());
      expect(last).toEqual([specs.length, specs.length]);
      expect(report.unused).toEqual([]);
    } finally {
      disposeParams(params);
    }
  });

  it('export returns exactly the list, in its order', async () => {
    const c = await configOf(dir);
    const { params } = await loadIdefics2Weights(dir, c);
    try {
      const out = exportIdefics2Weights(params, c);
      expect(out.map((t) => [t.name, t.shape])).toEqual(idefics2TensorSpecs(c).map((s) => [s.name, s.shape]));
    } finally {
      disposeParams(params);
    }
  });

  it('tied: the head is the embedding (as transformers ties it), a stored lm_head is reported unused, and the total leaves it out', async () => {
    const tiedDir = path.join(root, 'tied');
    await fs.cp(dir, tiedDir, { recursive: true });
    const json = JSON.parse(await fs.readFile(path.join(tiedDir, 'config.json'), 'utf8'));
    json.tie_word_embeddings = true;
    await fs.writeFile(path.join(tiedDir, 'config.json'), JSON.stringify(json));
    const c = await configOf(tiedDir);
    let last = [0, 0];
    const { params, report } = await loadIdefics2Weights(tiedDir, c, { onProgress: (done, total) => (last = [done, total]) });
    try {
      expect(report.unused).toEqual(['lm_head.weight']);
      expect(last).toEqual([golden.tied.saved.length, golden.tied.saved.length]);
      const head = params.text.lmHead.w;
      const embT = tf.transpose(params.text.embed);
      expect(tf.max(tf.abs(tf.sub(head, embT))).dataSync()[0]).toBe(0);
      embT.dispose();
      const out = exportIdefics2Weights(params, c);
      expect(out.map((t) => t.name).sort()).toEqual(golden.tied.saved);
    } finally {
      disposeParams(params);
    }
  });

  it('a checkpoint missing a listed tensor fails naming it and its shape', async () => {
    const bad = path.join(root, 'missing');
    await fs.cp(dir, bad, { recursive: true });
    const f = await SafetensorsFile.open(path.join(bad, 'model.safetensors'));
    const kept = [];
    for (const e of f.entries()) if (e.name !== 'model.connector.perceiver_resampler.latents') kept.push({ name: e.name, dtype: 'F32' as const, shape: [...e.shape], data: await f.readFloat32(e.name) });
    await f.close();
    await writeSafetensors(path.join(bad, 'model.safetensors'), kept);
    await expect(loadIdefics2Weights(bad, await configOf(bad))).rejects.toThrow(/no tensor 'model\.connector\.perceiver_resampler\.latents' \(expected shape \[\d+, \d+\]/);
  });
});
