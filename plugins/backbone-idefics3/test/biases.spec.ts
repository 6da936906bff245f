/**
 * Llama's attention_bias and mlp_bias against transformers: idefics3-tiny's weights plus seeded
 * biases on every q/k/v/o and gate/up/down projection of the text model
 * (goldens/make_idefics3_bias_goldens.py; they change the logits by about 43% relative). The
 * biases come in a second shard with a model.safetensors.index.json, as a large checkpoint is
 * stored. Logits of a right-padded batch to 1e-5 relative, and the checkpoint's every tensor used.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile } from '@userpref/safetensors';
import { Idefics3Model } from '../src/model/idefics3';
import { Idefics3Processor } from '../src/processor/processor';
import { processIdefics3Image } from '../src/processor/image';
import { checkpointDir, FIXTURES, paddedLastLogits, readImage, relErr, tileBatch } from './fixtures';

const TOL = 1e-5;
const NAME = 'idefics3-bias-tiny';

interface BiasGolden {
  bias_tensors: string[];
  padded: { images: number[][]; input_ids: number[][]; pad_token_id: number; logits: number[][]; logits_unpadded: number[][]; biased_vs_plain_rel_diff: number };
}

async function shardNames(file: string): Promise<string[]> {
  const f = await SafetensorsFile.open(file);
  try {
    return f.names();
  } finally {
    await f.close();
  }
}

describe('attention_bias and mlp_bias vs transformers', () => {
  let golden: BiasGolden;
  let model: Idefics3Model;
  let dir: string;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = JSON.parse(await fs.readFile(path.join(FIXTURES, 'goldens', `${NAME}.json`), 'utf8')) as BiasGolden;
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics3-bias-'));
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    await fs.copyFile(path.join(checkpointDir('idefics3-tiny'), 'model.safetensors'), path.join(dir, shards[0]));
    await fs.copyFile(path.join(FIXTURES, NAME, 'biases.safetensors'), path.join(dir, shards[1]));
    const weightMap: Record<string, string> = {};
    for (const [i, s] of shards.entries()) for (const n of await shardNames(path.join(dir, s))) weightMap[n] = shards[i];
    await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await fs.copyFile(path.join(FIXTURES, NAME, 'config.json'), path.join(dir, 'config.json'));
    model = await Idefics3Model.load(dir);
  });

  afterAll(async () => {
    model?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads both flags and uses every bias of the checkpoint', () => {
    expect(model.config.text).toEqual(expect.objectContaining({ attentionBias: true, mlpBias: true }));
    expect(golden.bias_tensors).toHaveLength(2 * 7);
    expect(model.loadReport.unused).toEqual([]);
  });

  it('last-position logits of a right-padded batch match transformers, and each sequence alone', async () => {
    const g = golden.padded;
    const expected = { imageSeqLen: model.config.imageSeqLen, tileSize: model.config.vision.imageSize, imageTokenId: model.config.imageTokenId };
    const proc = await Idefics3Processor.fromPretrained(checkpointDir('idefics3-tiny'), { usePrompt: true, maxPromptLen: null }, expected);
    const processed = new Map(await Promise.all(g.images.flat().map(async (i) => [i, processIdefics3Image(await readImage(i), proc.imageConfig)] as const)));
    const rows = paddedLastLogits(model, g, (images) => tileBatch(images.map((i) => processed.get(i)!)));
    const errs = [0, 1].map((b) => relErr(rows[b], g.logits[b]));
    for (const e of errs) expect(e).toBeLessThan(TOL);
    for (const b of [0, 1]) expect(relErr(rows[b], g.logits_unpadded[b])).toBeLessThan(TOL);
    // The biases matter: without them transformers' logits are far off.
    expect(g.biased_vs_plain_rel_diff).toBeGreaterThan(1e-2);
    process.stdout.write(`attention/mlp biases: max relative error vs transformers ${Math.max(...errs).toExponential(2)}\n`);
  });
});
